"""The layer cache of Dockerfile builds (ocibuild.dockerfile.cache): a RUN step whose inputs
have a fresh, verified entry in `--cache-dir` or `--cache-repo` does not run.

Proof that a step did not run: every step below writes random bytes, so a step that ran
again would write another layer; a hit gives the layer byte for byte, and a build whose
every step hit never made the stage's tree on disk (work/rootfs does not exist). Against a
real registry on 127.0.0.1 (the busybox base of tests/core/dockerfile_run_test.py)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from ocibuild.dockerfile import builder, cache as step_cache, cache_entry
from ocibuild.dockerfile.cache import Settings
from ocibuild.errors import OciBuildError
from ocibuild.image.layer import Layer
from ocibuild.reference import parse_reference
from tests.core.conftest import run_ocibuild
from tests.core.rootfs_base import busybox_layers, world_dir
from tests.fixtures.registry import start_registry

RANDOM = "head -c 32 /dev/urandom >"
DOCKERFILE = f"""FROM BASE
RUN {RANDOM} /one
ARG V=1
ENV E=1
RUN echo $V $E > /two && {RANDOM} /two.r
COPY ctx.txt /
RUN {RANDOM} /three
RUN true
"""


@pytest.fixture(scope="module")
def reg(tmp_path_factory) -> Iterator[object]:
    root = tmp_path_factory.mktemp("cache-registry")
    with start_registry(root / "registry") as registry:
        yield registry


def _push_base(reg, tmp: Path, name: str, extra: str = "") -> str:
    ctx = world_dir(str(tmp / f"base-{name}"))
    busybox_layers(ctx)
    (ctx / "extra.txt").write_text(extra)
    (ctx / "Dockerfile").write_text("FROM scratch\nADD busybox.tar /\n" +
                                    ("COPY extra.txt /\n" if extra else "") +
                                    'CMD ["/bin/sh"]\n')
    proc = run_ocibuild("build", "--context", str(ctx), "--destination",
                        f"{reg.host}/{name}", "--insecure", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return f"{reg.host}/{name}"


@pytest.fixture(scope="module")
def base(reg, tmp_path_factory) -> str:
    return _push_base(reg, tmp_path_factory.mktemp("base"), "busybox:1")


class Run:
    def __init__(self, built: builder.Built, work: Path) -> None:
        self.built, self.work = built, work

    @property
    def cache(self) -> List[str]:
        return [s["cache"] for s in self.built.run_steps]

    @property
    def digests(self) -> List[str]:
        return [layer.digest for layer in self.built.layers]

    @property
    def keys(self) -> List[str]:
        return [s["cache_key"] for s in self.built.run_steps]


def _build(tmp_path: Path, base: str, name: str, cache: Settings, dockerfile: str = DOCKERFILE,
           ctx_text: str = "from the context\n", build_args=(), blob_cache=None) -> Run:
    ctx = tmp_path / name / "ctx"
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(dockerfile.replace("BASE", base))
    (ctx / "ctx.txt").write_text(ctx_text)
    work = tmp_path / name / "work"
    work.mkdir()
    registries = builder.Registries(insecure=(base.partition("/")[0],))
    built = builder.build(builder.Options(
        str(ctx / "Dockerfile"), str(ctx), registries=registries, cache=cache,
        build_args=tuple(build_args), blob_cache=blob_cache), str(work))
    return Run(built, work)


def _dir(tmp_path: Path) -> Settings:
    return Settings(directory=str(tmp_path / "cache"))


def _repo(reg, name: str) -> Settings:
    return Settings(repo=f"{reg.host}/{name}",
                    registries=builder.Registries(insecure=(reg.host,)))


# -- hits: the step does not run -----------------------------------------------------------

@pytest.mark.parametrize("store", ["dir", "repo"])
def test_a_second_build_hits_every_run_step_and_runs_nothing(tmp_path: Path, base: str, reg,
                                                             store: str) -> None:
    settings = _dir(tmp_path) if store == "dir" else _repo(reg, f"cache-{tmp_path.name}")
    cold = _build(tmp_path, base, "cold", settings)
    assert cold.cache == ["miss"] * 4
    warm = _build(tmp_path, base, "warm", settings)
    assert warm.cache == ["hit"] * 4
    assert warm.digests == cold.digests  # random bytes: a step that ran would differ
    assert warm.built.config == cold.built.config
    assert not (warm.work / "rootfs").exists()  # no tree on disk: nothing ran
    assert warm.built.run_steps[0] == {
        "at": f"{tmp_path}/warm/ctx/Dockerfile:2: RUN", "cache": "hit",
        "cache_key": cold.keys[0], "cache_source": store, "mechanism": None,
        "made_with": cold.built.run_steps[0]["mechanism"], "layer": cold.digests[1]}
    assert warm.built.run_steps[3]["layer"] is None  # `RUN true` changed nothing
    assert warm.built.cache == {"hits": 4, "misses": 0}


def test_a_changed_input_misses_from_that_step_on(tmp_path: Path, base: str, reg) -> None:
    settings = _dir(tmp_path)
    first = _build(tmp_path, base, "first", settings)
    cases = {
        "instruction": ({"dockerfile": DOCKERFILE.replace("/two.r", "/two.s")},
                        ["hit", "miss", "miss", "miss"]),
        "arg": ({"build_args": [("V", "2")]}, ["hit", "miss", "miss", "miss"]),
        "env": ({"dockerfile": DOCKERFILE.replace("ENV E=1", "ENV E=2")},
                ["hit", "miss", "miss", "miss"]),
        "parent layer": ({"ctx_text": "changed\n"}, ["hit", "hit", "miss", "miss"]),
        "base": ({"base": _push_base(reg, tmp_path, "busybox:2", "more")},
                 ["miss", "miss", "miss", "miss"]),
        "nothing": ({}, ["hit", "hit", "hit", "hit"]),
    }
    for name, (change, expected) in cases.items():
        kwargs = dict(change)
        run = _build(tmp_path, kwargs.pop("base", base), name.replace(" ", "-"), settings,
                     **kwargs)
        assert run.cache == expected, name
        same = expected.index("miss") if "miss" in expected else 4
        assert run.keys[:same] == first.keys[:same], name
        assert not set(run.keys[same:]) & set(first.keys), name


BIND = f"""FROM BASE
RUN --mount=type=bind,source=ctx.txt,target=/in cat /in > /seen && {RANDOM} /seen.r
RUN --mount=type=cache,id=c,target=/c {RANDOM} /cached.r
RUN --mount=type=tmpfs,target=/t {RANDOM} /tmp.r
"""


def test_a_bind_mounts_content_is_in_the_key_a_cache_mounts_is_not(tmp_path: Path,
                                                                   base: str) -> None:
    """What a bind mount shows decides the step's layer, so it is in the key; a cache
    mount's content is not (BuildKit's rule: a cache must not change a step's result)."""
    settings = _dir(tmp_path)
    first = _build(tmp_path, base, "first", settings, BIND)
    assert first.cache == ["miss"] * 3
    same = _build(tmp_path, base, "same", settings, BIND)
    assert same.cache == ["hit"] * 3 and same.digests == first.digests
    changed = _build(tmp_path, base, "changed", settings, BIND, ctx_text="other\n")
    assert changed.cache == ["miss", "miss", "miss"]
    assert changed.keys[0] != first.keys[0]
    other_cache = _build(tmp_path, base, "other-id", settings,
                         BIND.replace("id=c", "id=d"))
    assert other_cache.cache == ["hit", "miss", "miss"]


def test_a_repo_hit_is_kept_in_the_directory(tmp_path: Path, base: str, reg) -> None:
    import time

    repo = _repo(reg, "kept")
    cold = _build(tmp_path, base, "cold", repo)
    an_hour_ago = float(int(time.time()) - 3600)
    _poison(reg, "kept", cold.keys[0], cold.built.layers[1],
            blob_dir=str(cold.work / "layers"), now=an_hour_ago)
    both = Settings(str(tmp_path / "cache"), repo.repo, registries=repo.registries)
    assert _build(tmp_path, base, "via-repo", both).built.run_steps[0]["cache_source"] == "repo"
    run = _build(tmp_path, base, "via-dir", _dir(tmp_path))
    assert [s["cache_source"] for s in run.built.run_steps] == ["dir"] * 4
    # The copy keeps the entry's age: --cache-ttl runs from when the step ran.
    store = step_cache.LocalStore(str(tmp_path / "cache"))
    kept = store.entry(run.keys[0], "gzip")[0]
    assert kept.created == an_hour_ago


def test_the_repo_entry_is_kanikos_one_layer_image(tmp_path: Path, base: str, reg) -> None:
    from ocibuild.registry.pull import fetch_manifest

    run = _build(tmp_path, base, "cold", _repo(reg, "layout"))
    key = run.keys[0]
    ref = parse_reference(f"{reg.host}/layout")
    transport = builder.Registries(insecure=(reg.host,)).transport(ref)
    manifest = json.loads(fetch_manifest(transport, ref, key).content)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert [(d["mediaType"], d["digest"]) for d in manifest["layers"]] == [
        ("application/vnd.oci.image.layer.v1.tar+gzip", run.digests[1])]
    store = step_cache.RegistryStore(f"{reg.host}/layout",
                                     builder.Registries(insecure=(reg.host,)))
    config = json.loads(store._config(_descriptor(manifest["config"])))
    assert config["rootfs"] == {"type": "layers", "diff_ids": [run.built.layers[1].diff_id]}
    assert config["config"]["Labels"] == {
        "dev.pants-oci.cache.key": key, "dev.pants-oci.cache.semantics": "1",
        "dev.pants-oci.cache.mechanism": run.built.run_steps[0]["mechanism"]}
    runs = [h["created_by"] for h in run.built.config["history"] if
            h["created_by"].startswith("RUN ")]
    assert [h["created_by"] for h in config["history"]] == runs[:1]
    assert config["history"][0]["author"] == "ocibuild"
    empty = json.loads(fetch_manifest(transport, ref, run.keys[3]).content)
    assert empty["layers"] == []  # `RUN true`: an entry without a layer


def _descriptor(raw: dict):
    from ocibuild.image.manifest import Descriptor

    return Descriptor.from_json(raw)


# -- what is not trusted -------------------------------------------------------------------

def _poison(reg, repo: str, key: str, layer: Optional[Layer], labels_key: Optional[str] = None,
            blob_dir: Optional[str] = None, now: float = None, extra_layers=()) -> None:
    """Push an entry for `key` whose parts are as given (the layer's blob from blob_dir)."""
    import time

    image = cache_entry.make(labels_key or key, layer, "RUN poisoned", {"os": "linux",
                             "architecture": "amd64"}, "root", now or time.time())
    if extra_layers:
        from dataclasses import replace

        image = replace(image, layers=(*image.layers, *extra_layers))
    step_cache.RegistryStore(f"{reg.host}/{repo}", builder.Registries(insecure=(reg.host,))
                             ).put(key, image, blob_dir)


def test_a_poisoned_repo_entry_is_refused_and_the_step_runs(tmp_path: Path, base: str, reg,
                                                            capsys) -> None:
    """Each way an entry can lie about its layer; a generated family over the first step."""
    settings = _repo(reg, "poisoned")
    cold = _build(tmp_path, base, "cold", settings)
    blobs = str(cold.work / "layers")
    one, two = cold.built.layers[1], cold.built.layers[2]
    key = cold.keys[0]
    where = f"{reg.host}/poisoned:{key}"
    wrong = "sha256:" + "0" * 64
    cases = {
        "wrong diff_id": (dict(layer=Layer(one.media_type, one.digest, one.size, wrong)),
                          f"the layer {one.digest} decompresses to a tar of diff_id "
                          f"{one.diff_id}, not {wrong}"),
        "other layer": (dict(layer=Layer(two.media_type, two.digest, two.size, one.diff_id)),
                        f"the layer {two.digest} decompresses to a tar of diff_id "
                        f"{two.diff_id}, not {one.diff_id}"),
        "wrong size": (dict(layer=Layer(one.media_type, one.digest, one.size - 1, one.diff_id)),
                       f"GET http://{reg.host}/v2/poisoned/blobs/{one.digest}: the registry "
                       f"sent more than the blob's {one.size - 1} bytes ({one.digest}); not "
                       "using it"),
        "another key's entry": (dict(layer=one, labels_key="f" * 64),
                                f"it was made for another key ({'f' * 64!r})"),
        "another media type": (dict(layer=Layer("application/vnd.oci.image.layer.v1.tar",
                                                one.digest, one.size, one.diff_id)),
                               "its layer is 'application/vnd.oci.image.layer.v1.tar'; this "
                               "build writes 'application/vnd.oci.image.layer.v1.tar+gzip'"),
        "two layers": (dict(layer=one, extra_layers=(two,)),
                       "it has 2 layers; an entry has one at most"),
    }
    for i, (name, (parts, reason)) in enumerate(cases.items()):
        _poison(reg, "poisoned", key, blob_dir=blobs, **parts)
        capsys.readouterr()
        run = _build(tmp_path, base, f"case{i}", settings)
        err = capsys.readouterr().err
        at = f"{tmp_path}/case{i}/ctx/Dockerfile:2: RUN"
        refusal = [line for line in err.splitlines() if "is not used" in line]
        assert len(refusal) == 1, (name, err)
        assert reason in refusal[0], (name, refusal[0])
        assert refusal[0].startswith(f"ocibuild: warning: {at}: the cache entry {where} is "
                                     "not used: "), name
        assert refusal[0].endswith("; running the step"), name
        assert run.cache[0] == "miss", name
        assert run.digests[1] != one.digest  # it ran: new random bytes
        # The step's real layer replaced the poison: the next build hits it.
        assert _build(tmp_path, base, f"again{i}", settings).cache == ["hit"] * 4, name


def test_a_damaged_directory_entry_is_refused_and_the_step_runs(tmp_path: Path, base: str,
                                                                capsys) -> None:
    settings = _dir(tmp_path)
    cold = _build(tmp_path, base, "cold", settings)
    layer = cold.built.layers[1]
    blob = tmp_path / "cache/blobs/sha256" / layer.digest[7:]
    data = blob.read_bytes()
    blob.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    capsys.readouterr()
    run = _build(tmp_path, base, "damaged", settings)
    err = capsys.readouterr().err
    assert (f"ocibuild: warning: {tmp_path}/damaged/ctx/Dockerfile:2: RUN: the cache entry "
            f"{tmp_path}/cache/steps/{cold.keys[0]} is not used: its layer {layer.digest} is "
            f"not in {tmp_path}/cache with that digest and {layer.size} bytes; running the "
            "step\n") in err
    assert run.cache == ["miss", "miss", "miss", "miss"]
    (tmp_path / "cache/steps" / run.keys[0]).write_bytes(b"{not json")
    capsys.readouterr()
    again = _build(tmp_path, base, "not-json", settings)
    assert again.cache == ["miss"] * 4  # it ran: new random bytes, so every later key is new
    assert (f"/cache/steps/{run.keys[0]} is not used: {tmp_path}/cache/steps/{run.keys[0]}: "
            "the manifest is not valid JSON: ") in capsys.readouterr().err


# -- --cache-ttl ---------------------------------------------------------------------------

@pytest.mark.parametrize("store", ["dir", "repo"])
def test_entries_older_than_the_ttl_are_ignored(tmp_path: Path, base: str, reg,
                                                store: str) -> None:
    import time

    settings = _dir(tmp_path) if store == "dir" else _repo(reg, f"ttl-{tmp_path.name}")
    cold = _build(tmp_path, base, "cold", settings)
    old = time.time() - 15 * 24 * 3600  # kaniko's default TTL is 14 days
    layer = cold.built.layers[1]
    if store == "dir":
        image = cache_entry.make(cold.keys[0], layer, "RUN", {"os": "linux",
                                 "architecture": "amd64"}, "root", old)
        step_cache.LocalStore(settings.directory).put(cold.keys[0], image,
                                                      str(cold.work / "layers"))
    else:
        _poison(reg, settings.repo.partition("/")[2], cold.keys[0], layer,
                blob_dir=str(cold.work / "layers"), now=old)
    from dataclasses import replace

    longer = _build(tmp_path, base, "longer", replace(settings, ttl_s=16 * 24 * 3600))
    assert longer.cache == ["hit"] * 4
    expired = _build(tmp_path, base, "expired", settings)
    assert expired.cache == ["miss"] * 4  # the first step ran: its layer (and all after) new
    assert _build(tmp_path, base, "renewed", settings).cache == ["hit"] * 4


# -- the CLI -------------------------------------------------------------------------------

def test_the_cli_reports_hits_and_misses_and_keeps_base_blobs(tmp_path: Path, base: str,
                                                              reg) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {base}\nRUN {RANDOM} /one\n")

    def build(name: str, *extra: str):
        proc = run_ocibuild("build", "--context", str(ctx), "--output", str(tmp_path / name),
                            "--insecure-registry", reg.host, "--cache-dir",
                            str(tmp_path / "cache"), "--json", *extra, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout), proc.stderr

    cold, cold_err = build("cold")
    key = cold["run_steps"][0]["cache_key"]
    assert cold["cache"] == {"hits": 0, "misses": 1}
    assert f"ocibuild: {ctx}/Dockerfile:2: RUN: cache miss (key {key})\n" in cold_err
    warm, warm_err = build("warm")
    assert warm["cache"] == {"hits": 1, "misses": 0}
    assert warm["manifest_digest"] == cold["manifest_digest"]
    assert warm_err == (f"ocibuild: {ctx}/Dockerfile:2: RUN: cache hit in the cache directory "
                        f"(key {key}; made with mechanism {cold['run_steps'][0]['mechanism']}); "
                        "not run\n")
    off, _ = build("off", "--cache=false")
    assert off["cache"] is None and off["manifest_digest"] != cold["manifest_digest"]
    assert sorted(os.listdir(tmp_path / "cache")) == ["bases", "blobs", "steps"]
    base_layers = [d["digest"] for d in json.loads(
        (tmp_path / "warm/blobs/sha256" / warm["manifest_digest"][7:]).read_text())["layers"]]
    kept = set(os.listdir(tmp_path / "cache/blobs/sha256"))
    assert {d[7:] for d in base_layers} <= kept  # the base's and the step's


def test_base_blobs_come_from_the_cache_dir_and_tags_from_the_registry(tmp_path: Path) -> None:
    """With --cache-dir a warm build reads no blob from the registry: here the base's blobs
    are gone from the registry's storage and it still builds; a tag still resolves there."""
    dockerfile = "FROM BASE\nCOPY ctx.txt /\n"
    blob_cache = str(tmp_path / "cache")
    with start_registry(tmp_path / "registry") as own:
        name = _push_base(own, tmp_path, "moving:1")
        cold = _build(tmp_path, name, "cold", Settings(), dockerfile, blob_cache=blob_cache)
        storage = tmp_path / "registry/storage/docker/registry/v2/blobs/sha256"
        hidden = [(storage / d[7:9] / d[7:], tmp_path / f"hidden-{d[7:]}")
                  for d in [layer.digest for layer in cold.built.layers[:-1]]]
        for blob, aside in hidden:
            shutil.move(str(blob), str(aside))
        warm = _build(tmp_path, name, "warm", Settings(), dockerfile, blob_cache=blob_cache)
        assert warm.digests == cold.digests
        cached = Path(blob_cache) / "blobs/sha256" / cold.built.layers[0].digest[7:]
        cached.write_bytes(b"damaged")  # not used: fetched again, which cannot be done now
        with pytest.raises(OciBuildError) as err:
            _build(tmp_path, name, "damaged", Settings(), dockerfile, blob_cache=blob_cache)
        assert f"/v2/moving/blobs/{cold.built.layers[0].digest}: 404" in str(err.value)
        assert not cached.exists()
        for blob, aside in hidden:
            shutil.move(str(aside), str(blob))
        again = _build(tmp_path, name, "refetched", Settings(), dockerfile,
                       blob_cache=blob_cache)
        assert again.digests == cold.digests
        _push_base(own, tmp_path, "moving:1", "now different")  # the tag moves on
        moved = _build(tmp_path, name, "moved", Settings(), dockerfile, blob_cache=blob_cache)
        assert moved.digests[:-1] != cold.digests[:-1]
        assert moved.digests[0] == cold.digests[0]


def test_a_step_after_a_hit_sees_the_hit_on_disk(tmp_path: Path, base: str) -> None:
    """miss, hit, miss in one stage: the tree on disk, made by the first step, is brought up
    to date with the cached layer before the third step runs (it reads what the hit made)."""
    dockerfile = (f"FROM BASE\nRUN echo one > /one\nRUN {RANDOM} /two\n"
                  f"RUN cat /two > /three && {RANDOM} /three.r\n")
    settings = _dir(tmp_path)
    cold = _build(tmp_path, base, "cold", settings, dockerfile)
    os.unlink(tmp_path / "cache/steps" / cold.keys[0])  # the first step runs again...
    os.unlink(tmp_path / "cache/steps" / cold.keys[2])
    run = _build(tmp_path, base, "warm", settings, dockerfile)
    assert run.cache == ["miss", "hit", "miss"]
    assert run.digests[:-1] == cold.digests[:-1]  # ...to the same layer, so the second hits
    from tests.core.conftest import decompressed, tar_members

    def member(work: Path, digest: str, name: str) -> bytes:
        blob = work / "layers/blobs/sha256" / digest[7:]
        return dict((m.name, data) for m, data in tar_members(decompressed(blob)))[name]

    assert member(run.work, run.digests[-1], "three") == member(cold.work, cold.digests[2], "two")


def test_copy_from_a_stage_whose_steps_hit_reads_the_cached_layer(tmp_path: Path,
                                                                   base: str) -> None:
    dockerfile = (f"FROM BASE AS made\nRUN {RANDOM} /x\n"
                  "FROM made AS more\nRUN cp /x /y\n"
                  "FROM scratch\nCOPY --from=made /x /x\nCOPY --from=more /y /y\n")
    settings = _dir(tmp_path)
    cold = _build(tmp_path, base, "cold", settings, dockerfile)
    warm = _build(tmp_path, base, "warm", settings, dockerfile)
    assert (cold.cache, warm.cache) == (["miss", "miss"], ["hit", "hit"])
    assert warm.digests == cold.digests and len(warm.digests) == 2
    assert not (warm.work / "rootfs").exists()


def test_a_cache_that_cannot_be_written_is_a_warning_not_a_failed_build(
        tmp_path: Path, base: str, capsys) -> None:
    (tmp_path / "cache").write_text("a file, not a directory")
    capsys.readouterr()
    run = _build(tmp_path, base, "b", _dir(tmp_path), f"FROM BASE\nRUN {RANDOM} /one\n",
                 blob_cache=str(tmp_path / "cache"))
    err = capsys.readouterr().err
    assert run.cache == ["miss"]
    assert (f"ocibuild: warning: --cache-dir {tmp_path}/cache: {tmp_path}/cache/blobs: Not a "
            "directory; base images are downloaded without it\n") in err
    assert (f"ocibuild: warning: {tmp_path}/b/ctx/Dockerfile:2: RUN: storing the cache entry "
            f"{tmp_path}/cache/steps/{run.keys[0]} failed ({tmp_path}/cache/blobs: Not a "
            "directory); the build goes on without it\n") in err


def test_kanikos_default_cache_repo_is_the_destinations_plus_cache(tmp_path: Path, base: str,
                                                                    reg) -> None:
    from ocibuild.registry.pull import fetch_manifest

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {base}\nRUN {RANDOM} /one\n")
    proc = run_ocibuild("build", "--context", str(ctx), "-d", f"{reg.host}/app/web:1",
                        "--insecure", "--insecure-registry", reg.host, "--cache=true",
                        "--no-push", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    key = json.loads(proc.stdout)["run_steps"][0]["cache_key"]
    ref = parse_reference(f"{reg.host}/app/web/cache")
    transport = builder.Registries(insecure=(reg.host,)).transport(ref)
    assert json.loads(fetch_manifest(transport, ref, key).content)["layers"]  # pushed anyway


def test_an_unreachable_cache_repo_is_one_warning_and_the_build_goes_on(
        tmp_path: Path, base: str, capsys) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(repo=f"127.0.0.1:{port}/cache",
                        registries=builder.Registries(insecure=(f"127.0.0.1:{port}",)))
    capsys.readouterr()
    run = _build(tmp_path, base, "b", settings, f"FROM BASE\nRUN {RANDOM} /1\nRUN {RANDOM} /2\n")
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert run.cache == ["miss", "miss"]
    assert len(err) == 1, err
    assert err[0].startswith(f"ocibuild: warning: {tmp_path}/b/ctx/Dockerfile:2: RUN: the cache "
                             f"entry 127.0.0.1:{port}/cache:{run.keys[0]} is not used: GET "
                             f"http://127.0.0.1:{port}/v2/cache/manifests/{run.keys[0]}: 0: ")
    assert err[0].endswith("; running the step; the cache repository is not used for the rest "
                           "of this build")


def test_a_consistent_entry_with_members_no_layer_of_ours_has_is_refused(
        tmp_path: Path, base: str, reg, capsys) -> None:
    """The entry's records and its layer agree, but the layer names a member as no layer of
    this builder does (the model would ignore it, the RUN tree's unpacker refuse it): a
    generated family of such names, each refused, and the step runs."""
    import gzip
    import io
    import tarfile

    from ocibuild.digest import bytes_digest

    settings = _repo(reg, "hostile-members")
    one_step = f"FROM BASE\nRUN {RANDOM} /one\n"
    cold = _build(tmp_path, base, "cold", settings, one_step)
    names = ["../escape", "/etc/passwd", "a/../../b", "ok/..", ""]
    links = ["../../host", "/etc/shadow"]
    cases = [(n, tarfile.REGTYPE, "") for n in names] + \
        [("link", tarfile.LNKTYPE, target) for target in links]
    layers = tmp_path / "hostile"
    for i, (name, kind, target) in enumerate(cases):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(tarfile.TarInfo("fine"), io.BytesIO(b""))
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info, io.BytesIO(b""))
        blob = gzip.compress(raw.getvalue(), mtime=0)
        digest = bytes_digest(blob)
        (layers / "blobs/sha256").mkdir(parents=True, exist_ok=True)
        (layers / "blobs/sha256" / digest[7:]).write_bytes(blob)
        layer = Layer("application/vnd.oci.image.layer.v1.tar+gzip", digest, len(blob),
                      bytes_digest(raw.getvalue()))
        _poison(reg, "hostile-members", cold.keys[0], layer, blob_dir=str(layers))
        capsys.readouterr()
        run = _build(tmp_path, base, f"case{i}", settings, one_step)
        err = capsys.readouterr().err
        shown_name = name if kind == tarfile.REGTYPE else target
        assert (f"is not used: the layer {digest} has a member named {shown_name!r}, which "
                "no layer of this builder has; running the step\n") in err, (name, err)
        assert run.cache[0] == "miss"
        assert not (tmp_path / "escape").exists() and not (tmp_path / "host").exists()
