"""RUN-step cache keys (ocibuild.dockerfile.cache_key), cache entries as untrusted documents
(ocibuild.dockerfile.cache_entry) and kaniko's --cache-ttl spelling."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st

from ocibuild import canonical_json
from ocibuild.cli_dockerfile import duration
from ocibuild.digest import bytes_digest
from ocibuild.dockerfile import cache_entry
from ocibuild.dockerfile.cache_entry import Refused
from ocibuild.dockerfile.cache_key import SEMANTICS, Material, StepInputs, step_inputs
from ocibuild.errors import OciBuildError
from ocibuild.image.layer import Layer

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def _inputs(**change) -> StepInputs:
    fields = dict(parent=[D1], config={"Env": ["PATH=/bin"], "User": "", "WorkingDir": "/w"},
                  argv=["/bin/sh", "-c", "make"], flags={"network": "default"}, heredocs=[],
                  args={"V": "1"}, platform="linux/amd64", compression="gzip", epoch=0)
    fields.update(change)
    return step_inputs(**fields)


def test_the_key_is_sha256_of_the_canonical_json_of_every_input() -> None:
    inputs = _inputs()
    assert inputs.to_json() == {
        "semantics": SEMANTICS, "instruction": "RUN", "parent": [D1],
        "config": {"Env": ["PATH=/bin"], "WorkingDir": "/w"},
        "argv": ["/bin/sh", "-c", "make"], "flags": [["network", "default"]], "heredocs": [],
        "args": {"V": "1"}, "platform": "linux/amd64", "compression": "gzip", "epoch": 0,
        "material": []}
    assert inputs.key == bytes_digest(canonical_json.dumps(inputs.to_json()))[7:]
    # Unset and empty config fields are one thing (docker has no difference either).
    assert _inputs(config={"Env": ["PATH=/bin"], "WorkingDir": "/w"}).key == inputs.key
    # The order the builder holds ARGs and flags in is not an input.
    assert _inputs(args={"B": "2", "A": "1"}).key == _inputs(args={"A": "1", "B": "2"}).key
    # Config fields a step does not read are not inputs (Labels, Cmd, ExposedPorts...).
    assert _inputs(config={"Env": ["PATH=/bin"], "WorkingDir": "/w", "Labels": {"a": "b"},
                           "Cmd": ["x"]}).key == inputs.key


CHANGES = {
    "parent": [D2], "parent appended": [D1, D2], "no parent": [],
    "env": {"Env": ["PATH=/usr/bin"], "WorkingDir": "/w"},
    "user": {"Env": ["PATH=/bin"], "WorkingDir": "/w", "User": "1000"},
    "workdir": {"Env": ["PATH=/bin"], "WorkingDir": "/x"},
    "shell": {"Env": ["PATH=/bin"], "WorkingDir": "/w", "Shell": ["/bin/bash", "-c"]},
    "argv": ["/bin/sh", "-c", "make all"], "flags": {"network": "default", "mount": "type=tmpfs"},
    "heredocs": [("EOF", "echo hi\n", True)], "heredoc quoting": [("EOF", "echo hi\n", False)],
    "arg value": {"V": "2"}, "arg added": {"V": "1", "W": ""}, "no args": {},
    "platform": "linux/arm64", "compression": "zstd", "epoch": 1700000000,
    "material": [Material("bind", "/src", (("source_digest", D1),))],
}
FIELD = {"parent appended": "parent", "no parent": "parent", "env": "config", "user": "config",
         "workdir": "config", "shell": "config", "heredoc quoting": "heredocs",
         "arg value": "args", "arg added": "args", "no args": "args"}


def test_every_input_changes_the_key() -> None:
    keys = {"unchanged": _inputs().key}
    for name, value in CHANGES.items():
        keys[name] = _inputs(**{FIELD.get(name, name): value}).key
    assert len(set(keys.values())) == len(keys)  # 22 distinct keys
    assert all(len(k) == 64 and int(k, 16) >= 0 for k in keys.values())


def test_a_secret_never_enters_a_key() -> None:
    for kind in ("secret", "ssh"):
        with pytest.raises(ValueError, match="a secret is never material of a cache key"):
            _inputs(material=[Material(kind, "/run/secrets/x", (("id", "x"),))]).key


_text = st.text(max_size=8)
_inputs_strategy = st.builds(
    StepInputs, parent=st.lists(st.sampled_from([D1, D2]), max_size=3).map(tuple),
    config=st.dictionaries(st.sampled_from(["Env", "User", "WorkingDir", "Shell"]), _text)
    .map(lambda d: tuple(sorted(d.items()))),
    argv=st.lists(_text, max_size=3).map(tuple),
    flags=st.dictionaries(_text, st.one_of(st.none(), _text), max_size=2)
    .map(lambda d: tuple(sorted(d.items()))),
    heredocs=st.lists(st.tuples(_text, _text, st.booleans()), max_size=2).map(tuple),
    args=st.dictionaries(_text, _text, max_size=3).map(lambda d: tuple(sorted(d.items()))),
    platform=st.sampled_from(["linux/amd64", "linux/arm64"]),
    compression=st.sampled_from(["gzip", "zstd"]), epoch=st.integers(0, 2 ** 40))


@settings(max_examples=300, deadline=None)
@given(a=_inputs_strategy, b=_inputs_strategy)
def test_keys_are_equal_exactly_when_the_inputs_are(a: StepInputs, b: StepInputs) -> None:
    """300 generated pairs (plus a copy of each): no two different inputs share a key, and no
    value can be spelled so that it runs into the next field (canonical JSON, not joining)."""
    assert (a.key == b.key) == (a.to_json() == b.to_json())
    assert replace(a).key == a.key


def test_arg_text_cannot_impersonate_another_field() -> None:
    """kaniko joins its key's parts as strings; here a value holding what would be a field
    separator stays a value."""
    assert _inputs(args={"V": "1", "W": "2"}).key != _inputs(args={"V": '1","W":"2'}).key
    assert _inputs(argv=["a b"]).key != _inputs(argv=["a", "b"]).key


# -- entries: untrusted documents ----------------------------------------------------------

LAYER = Layer("application/vnd.oci.image.layer.v1.tar+gzip", D1, 10, D2)
KEY = "a" * 64


def _parse(manifest: bytes, config: bytes, key: str = KEY):
    return cache_entry.parse(manifest, key, "gzip", "REPO:KEY", lambda d: config)


def test_an_entry_made_here_reads_back() -> None:
    image = cache_entry.make(KEY, LAYER, "RUN x", {"os": "linux", "architecture": "amd64"},
                             "proot", 1700000000.0)
    entry = _parse(image.manifest_bytes, image.config_bytes)
    assert entry == cache_entry.Entry(KEY, LAYER.descriptor, D2, 1700000000.0, "proot")
    with pytest.raises(Refused, match=r"^its config is not the blob sha256:"):
        _parse(image.manifest_bytes, image.config_bytes + b" ")


@pytest.mark.parametrize("text,seconds", [
    ("2023-11-14T22:13:20Z", 1700000000.0),
    ("2023-11-14T22:13:20.5Z", 1700000000.5),
    ("2023-11-14T22:13:20.123456789Z", 1700000000.123456789),  # Go's time.Time, as kaniko
    ("2023-11-15T00:13:20+02:00", 1700000000.0),
    ("2023-11-14T20:13:20-02:00", 1700000000.0)])
def test_created_is_read_as_rfc3339(text: str, seconds: float) -> None:
    assert cache_entry._seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "yesterday", "2023-11-14", "2023-13-40T99:99:99Z",
                                  "2023-11-14T22:13:20", "1700000000"])
def test_a_created_that_is_no_time_is_refused(text: str) -> None:
    with pytest.raises(Refused):
        cache_entry._seconds(text)


_json = st.recursive(st.none() | st.booleans() | st.integers(-2, 2 ** 64) | _text,
                     lambda inner: st.lists(inner, max_size=3) |
                     st.dictionaries(_text, inner, max_size=3), max_leaves=12)
_descriptor = st.fixed_dictionaries(
    {"mediaType": st.sampled_from(["application/vnd.oci.image.layer.v1.tar+gzip",
                                   "application/vnd.oci.image.config.v1+json", "x", ""]),
     "digest": st.sampled_from([D1, D2, "sha256:x", "md5:1"]),
     "size": st.one_of(st.integers(-1, 2 ** 40), st.just(True), _text)})
_manifest = st.fixed_dictionaries(
    {"mediaType": st.sampled_from(["application/vnd.oci.image.manifest.v1+json",
                                   "application/vnd.docker.distribution.manifest.v2+json",
                                   "application/vnd.oci.image.index.v1+json"]),
     "config": st.one_of(_descriptor, _json),
     "layers": st.one_of(st.lists(_descriptor, max_size=2), _json)})
_config = st.fixed_dictionaries(
    {"created": st.one_of(st.just("2023-11-14T22:13:20Z"), _json),
     "rootfs": st.one_of(st.fixed_dictionaries(
         {"diff_ids": st.one_of(st.lists(st.sampled_from([D1, D2, "x"]), max_size=2), _json)}),
         _json),
     "config": st.one_of(st.fixed_dictionaries({"Labels": st.one_of(st.fixed_dictionaries(
         {cache_entry.LABEL_KEY: st.sampled_from([KEY, "b" * 64]),
          cache_entry.LABEL_SEMANTICS: st.sampled_from([str(SEMANTICS), "0"])}), _json)}),
         _json)})


@settings(max_examples=500, deadline=None)
@given(manifest=st.one_of(_manifest, _json), config=st.one_of(_config, _json),
       garbage=st.binary(max_size=20))
def test_any_hostile_entry_is_refused_or_is_exactly_what_it_says(manifest, config,
                                                                 garbage) -> None:
    """500 generated entries: parsing never fails otherwise than with Refused, and what it
    accepts names one layer of this build's media type whose diff_id its config records."""
    manifest_bytes = json.dumps(manifest).encode() if not garbage else garbage
    config_bytes = json.dumps(config).encode()
    if isinstance(manifest, dict) and isinstance(manifest.get("config"), dict):
        manifest["config"] = {**manifest["config"], "digest": bytes_digest(config_bytes),
                              "size": len(config_bytes)}
        manifest_bytes = json.dumps(manifest).encode()
    try:
        entry = _parse(manifest_bytes, config_bytes)
    except Refused:
        return
    assert entry.key == KEY
    assert config["config"]["Labels"][cache_entry.LABEL_KEY] == KEY
    if entry.layer is not None:
        assert entry.layer.media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
        assert 0 < entry.layer.size <= cache_entry.MAX_LAYER
        assert config["rootfs"]["diff_ids"] == [entry.diff_id]
    else:
        assert entry.diff_id is None and not (config.get("rootfs") or {}).get("diff_ids")
    assert manifest["config"]["mediaType"] in ("application/vnd.oci.image.config.v1+json",
                                               "application/vnd.docker.container.image.v1+json")


# -- --cache-ttl: Go durations -------------------------------------------------------------

@pytest.mark.parametrize("text,seconds", [("336h", 336 * 3600.0), ("1h30m", 5400.0),
                                          ("90m", 5400.0), ("1.5h", 5400.0), ("10s", 10.0),
                                          ("300ms", 0.3), ("0s", 0.0), ("2h0m0s", 7200.0)])
def test_cache_ttl_takes_gos_duration_spelling(text: str, seconds: float) -> None:
    assert duration(text, "--cache-ttl") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "h", "1d", "-1h", "1h 30m", "1H"])
def test_a_cache_ttl_that_is_no_duration_is_an_error(text: str) -> None:
    with pytest.raises(OciBuildError) as err:
        duration(text, "--cache-ttl")
    assert str(err.value) == (f"--cache-ttl={text!r}: give a duration such as 336h, 90m or "
                              "1h30m")


def test_what_an_entry_says_is_never_printed_raw() -> None:
    """Its mechanism label is printed on every hit: a name or "unknown"; its other text only
    quoted, so a hostile entry cannot write escape sequences to the build's terminal."""
    for said, kept in (("proot", "proot"), ("\x1b[2Jroot", "unknown"), ("x" * 40, "unknown"),
                       (7, "unknown")):
        image = cache_entry.make(KEY, LAYER, "RUN x", {}, "root", 1700000000.0)
        config = json.loads(image.config_bytes)
        config["config"]["Labels"][cache_entry.LABEL_MECHANISM] = said
        config_bytes = canonical_json.dumps(config)
        manifest = json.loads(image.manifest_bytes)
        manifest["config"].update(digest=bytes_digest(config_bytes), size=len(config_bytes))
        assert _parse(json.dumps(manifest).encode(), config_bytes).mechanism == kept
    for manifest in ({"mediaType": "\x1b]0;owned\x07", "config": {}},
                     {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "a", "digest": D1, "size": 1},
                      "layers": [{"mediaType": "\x1b[31m", "digest": D1, "size": 1}]}):
        with pytest.raises(Refused) as err:
            _parse(json.dumps(manifest).encode(), b"{}")
        assert str(err.value).isprintable(), str(err.value)
