"""Image configs derived from a base's: whole configs, with Dockerfile semantics."""

from __future__ import annotations

import copy

import pytest

from ocibuild import canonical_json, mediatypes
from ocibuild.errors import OciBuildError
from ocibuild.image import mutate
from ocibuild.image.config import ImageSettings, rfc3339
from ocibuild.image.image import Image
from ocibuild.image.layer import Layer
from ocibuild.platform import Platform

AMD64 = Platform("linux", "amd64")
BASE = {
    "architecture": "amd64",
    "os": "linux",
    "created": "2023-05-01T10:00:00.123456789Z",
    "config": {
        "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C", "BARE"],
        "Entrypoint": ["/docker-entrypoint.sh"],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "Labels": {"maintainer": "base", "keep": "yes"},
        "ExposedPorts": {"80/tcp": {}},
        "WorkingDir": "/",
        "StopSignal": "SIGQUIT",
    },
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
    "history": [{"created": "2023-05-01T10:00:00Z", "created_by": "ADD rootfs"}],
}
NEW = "sha256:" + "2" * 64


def apply(base: dict, settings: ImageSettings, platform: Platform = AMD64) -> dict:
    """The config of `base` with platform, created, settings and one new layer, derived as
    `ocibuild.assemble` derives an image."""
    image = mutate.with_platform(Image(canonical_json.dumps(base)), platform)
    image = mutate.with_settings(mutate.with_created(image, "1970-01-01T00:00:00Z"), settings)
    layer = Layer(mediatypes.OCI_LAYER_GZIP, "sha256:" + "3" * 64, 10, NEW,
                  "pants-oci: //app:bin")
    return mutate.add_layers(image, [layer], created="1970-01-01T00:00:00Z").config


def test_settings_on_a_base() -> None:
    base = copy.deepcopy(BASE)
    settings = ImageSettings.from_json({
        "entrypoint": ["/app/app.pex"],
        "env": {"LANG": "C.UTF-8", "APP_MODE": "prod", "A_FIRST": "1"},
        "labels": {"maintainer": "me", "org.example.team": "core"},
        "exposed_ports": ["8080", "53/udp"],
        "volumes": ["/data"],
        "user": "65532:65532",
        "workdir": "/app",
        "stop_signal": "term",
    })
    assert apply(base, settings) == {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            # The base's order, LANG replaced in place; new names after, in the given order.
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "BARE",
                    "APP_MODE=prod", "A_FIRST=1"],
            # Entrypoint without cmd: the base's Cmd is dropped, as a Dockerfile does.
            "Entrypoint": ["/app/app.pex"],
            "Labels": {"maintainer": "me", "keep": "yes", "org.example.team": "core"},
            "ExposedPorts": {"80/tcp": {}, "8080/tcp": {}, "53/udp": {}},
            "Volumes": {"/data": {}},
            "User": "65532:65532",
            "WorkingDir": "/app",
            "StopSignal": "SIGTERM",
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64, NEW]},
        "history": [
            {"created": "2023-05-01T10:00:00Z", "created_by": "ADD rootfs"},
            {"created": "1970-01-01T00:00:00Z", "created_by": "pants-oci: //app:bin"},
        ],
    }
    assert base == BASE  # pure: the base is untouched


def test_entrypoint_with_cmd_and_cmd_alone() -> None:
    both = apply(BASE, ImageSettings(entrypoint=("/bin/app",), cmd=("--serve",)))["config"]
    assert (both["Entrypoint"], both["Cmd"]) == (["/bin/app"], ["--serve"])
    cmd_only = apply(BASE, ImageSettings(cmd=("nginx", "-T")))["config"]
    assert (cmd_only["Entrypoint"], cmd_only["Cmd"]) == (["/docker-entrypoint.sh"],
                                                         ["nginx", "-T"])


def test_empty_lists_clear() -> None:
    conf = apply(BASE, ImageSettings(entrypoint=(), cmd=("sh",)))["config"]
    assert "Entrypoint" not in conf and conf["Cmd"] == ["sh"]


def test_nothing_set_keeps_the_base_config() -> None:
    assert apply(BASE, ImageSettings())["config"] == BASE["config"]


def test_scratch() -> None:
    config = apply({}, ImageSettings(cmd=("/hello",)), Platform("linux", "arm64", "v8"))
    assert config == {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Cmd": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": [NEW]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "pants-oci: //app:bin"}],
    }


def test_from_json_validates() -> None:
    with pytest.raises(OciBuildError) as err:
        ImageSettings.from_json({"exposed_ports": ["80/xyz"]})
    assert str(err.value) == (
        "exposed port '80/xyz': protocol must be tcp, udp or sctp, e.g. \"8080/tcp\""
    )
    with pytest.raises(OciBuildError) as err:
        ImageSettings.from_json({"entrypoint": "/app/app.pex"})
    assert str(err.value) == (
        "settings.entrypoint '/app/app.pex': must be a list of strings, "
        'e.g. ["/app/app.pex", "--port", "8080"]'
    )
    with pytest.raises(OciBuildError) as err:
        ImageSettings.from_json({"entrypiont": ["x"]})
    assert str(err.value) == (
        "settings: unknown key(s) entrypiont; known: entrypoint, cmd, env, workdir, user, "
        "labels, exposed_ports, volumes, stop_signal"
    )
    with pytest.raises(OciBuildError, match="volume 'data': must be an absolute path"):
        ImageSettings.from_json({"volumes": ["data"]})


def test_rfc3339() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1700000000) == "2023-11-14T22:13:20Z"
    with pytest.raises(OciBuildError) as err:
        rfc3339(-5)
    assert str(err.value) == (
        "created epoch -5: must be a whole number of seconds since 1970-01-01 UTC, e.g. 0 or "
        "$SOURCE_DATE_EPOCH"
    )
