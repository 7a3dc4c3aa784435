"""A registry base end to end with ./pants: pin, package, publish with mounts, offline rebuild.

The registry uses token auth (as Docker Hub, GHCR and Harbor do); credentials come from a
docker config.json, as `docker login` writes it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from textwrap import dedent

from ocibuild.layout import OciLayout
from ocibuild.registry.credentials import Credentials
from tests.e2e.repo import copy_repo, run_pants, stop_pantsd
from tests.fixtures.registry import Registry, token_registry  # noqa: F401 (fixtures)
from tests.fixtures.registry_images import push_multi_platform
from tests.fixtures.tools import require, run


def _write_app(repo: Path, host: str) -> None:
    (repo / "app").mkdir()
    (repo / "app/hello.txt").write_text("hello from the app layer\n")
    (repo / "app/BUILD").write_text(dedent(f"""\
        oci_pull(name="base", image="{host}/base/multi:1.0", platforms=["linux/amd64"])
        files(name="files", sources=["hello.txt"])
        oci_image(name="image", base=":base", dependencies=[":files"], repository="team/app",
                  image_tags=["1.0", "latest"])
        oci_image(name="other", base=":base", dependencies=[":files"], workdir="/app")
        """))


def test_pin_package_publish_and_rebuild_offline(token_registry: Registry, tmp_path: Path) -> None:
    owner = Credentials(token_registry.username, token_registry.password)
    digests = push_multi_platform(token_registry, tmp_path, "base/multi", creds=owner)
    base_layer = OciLayout(tmp_path / "multi").read_blob_json(digests["amd64"])["layers"][0]["digest"]
    repo = copy_repo(tmp_path / "repo", pantsd=True)
    _write_app(repo, token_registry.host)
    option = f"--oci-registries={ {'local': {'address': token_registry.host, 'insecure': True, 'default': True}} !r}"

    unpinned = run_pants(repo, option, "package", "app:image", check=False)
    assert unpinned.returncode != 0
    assert f'add `digest="{digests["index"]}"`, or run `pants oci-pin app:base`' in unpinned.stderr
    assert not (repo / "dist").exists()

    pinned = run_pants(repo, option, "oci-pin", "app:base")
    assert f"-> {digests['index']}" in pinned.stdout
    assert f'digest="{digests["index"]}"' in (repo / "app/BUILD").read_text()

    run_pants(repo, option, "package", "app:image")
    meta = json.loads((repo / "dist/app/image.json").read_text())
    assert meta["layers"][0]["digest"] == base_layer and meta["layers"][0]["from_base"]

    docker = tmp_path / "docker"
    docker.mkdir()
    auth = base64.b64encode(f"{owner.username}:{owner.password}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {token_registry.host: {"auth": auth}}}))
    env = {"DOCKER_CONFIG": str(docker)}
    first = run_pants(repo, option, "publish", "app:image", extra_env=env)
    name = f"{token_registry.host}/team/app"
    assert f"{name}:1.0 published to {name}@{meta['manifest_digest']}" in first.stderr
    pushed = json.loads(first.stdout.strip().splitlines()[-1])
    # The base layer is mounted from base/multi on the same registry, not uploaded.
    assert pushed["mounted"] == [base_layer]
    # Uploaded: the app layer and the config, then the referrers' blobs (both SBOMs, the
    # provenance, and the empty config of their artifact manifests).
    image_blobs = {meta["layers"][1]["digest"], meta["config_digest"]}
    referred = {"sha256:" + hashlib.sha256((repo / f"dist/app/image.{f}.json").read_bytes())
                .hexdigest() for f in ("spdx", "cdx", "provenance")}
    empty = "sha256:" + hashlib.sha256(b"{}").hexdigest()
    assert sorted(pushed["uploaded"]) == sorted(image_blobs | referred | {empty})
    assert len(pushed["referrers"]) == 3
    assert (repo / "dist/app/image.digest").read_text() == meta["manifest_digest"] + "\n"
    assert (repo / "dist/app/image.refs").read_text().splitlines() == [
        f"{name}:1.0@{meta['manifest_digest']}", f"{name}:latest@{meta['manifest_digest']}"]
    info = json.loads(run([require("skopeo"), "inspect", "--tls-verify=false",
                           f"--creds={owner.username}:{owner.password}",
                           f"docker://{name}:latest"]).stdout)
    assert info["Digest"] == meta["manifest_digest"]

    again = run_pants(repo, option, "publish", "app:image", extra_env=env)
    repeat = json.loads(again.stdout.strip().splitlines()[-1])
    assert (repeat["uploaded"], repeat["mounted"], repeat["tags_written"]) == ([], [], [])
    for output in (first, again, unpinned, pinned):
        assert owner.password not in output.stdout + output.stderr
    assert not any(owner.password.encode() in p.read_bytes()
                   for p in (repo / "dist").rglob("*") if p.is_file())

    # With the registry gone, images on the pinned base still build: nothing is fetched again.
    # A new Pants process, so what it needs comes from the store, not from pantsd's memory.
    token_registry.process.terminate()
    token_registry.process.wait()
    stop_pantsd(repo)
    run_pants(repo, option, "package", "app:other", pantsd=False)
    assert (repo / "dist/app/other.json").exists()
