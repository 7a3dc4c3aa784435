"""`python -m ocibuild` end to end in subprocesses: layer -> assemble -> docker-archive."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from ocibuild.layout import OciLayout, resolve_image

from .conftest import SOURCE_ROOT, SYSTEM_PATH, make_tree, run_ocibuild


def ok(proc) -> dict:
    assert (proc.returncode, proc.stderr) == (0, "")
    return json.loads(proc.stdout)


def user_error(proc) -> str:
    """The message on stderr, after checking stdout says the same as an error document."""
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    error = json.loads(proc.stdout)
    assert error == {"version": 1, "kind": "error", "error": "bad-input", "exit_code": 2,
                     "message": error["message"], "detail": ""}
    assert proc.stderr == f"ocibuild: error: {error['message']}\n"
    return proc.stderr


def spec(path: Path, value: object) -> str:
    path.write_text(json.dumps(value))
    return path.name


def test_layer_assemble_docker_archive(tmp_path: Path) -> None:
    make_tree(tmp_path / "in")
    layer_spec = spec(tmp_path / "layer-spec.json", {
        "mappings": [{"source": "in", "dest": "app"},
                     {"source": "in/bin/run.sh", "dest": "usr/bin/run", "mode": "0700"}],
        "compression": "zstd", "level": 5, "mtime": 1700000000})
    layer = ok(run_ocibuild("layer", "--spec", layer_spec, "--out-dir", "out", cwd=tmp_path))
    assert json.loads((tmp_path / "out/layer.json").read_text()) == layer
    assert set(layer) == {"version", "kind", "mediaType", "digest", "size", "diffID"}
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
    blob = tmp_path / "out/blobs/sha256" / layer["digest"][7:]
    assert blob.stat().st_size == layer["size"]

    request = {
        "base": None, "platform": "linux/arm64", "layers": [layer],
        "history": ["layer"], "settings": {"entrypoint": ["/usr/bin/run"], "env": [["A", "1"]]},
        "annotations": [], "created_epoch": 1700000000, "ref_names": ["latest"]}
    assemble_spec = spec(tmp_path / "assemble-spec.json", request)
    meta = ok(run_ocibuild("assemble", "--spec", assemble_spec, "--out-dir", "image",
                           cwd=tmp_path))
    assert (meta["version"], meta["kind"], meta["platform"]) == (1, "assemble-result",
                                                                 "linux/arm64")
    # `ocibuild run` (what the plugin runs) answers the same for the same request.
    spec(tmp_path / "run-assemble.json", {"version": 1, "kind": "assemble", **request})
    assert ok(run_ocibuild("run", "--request", "run-assemble.json", "--out-dir", "image2",
                           cwd=tmp_path)) == meta
    image = resolve_image(OciLayout(tmp_path / "image"), ref_name="latest")
    assert image.config["created"] == "2023-11-14T22:13:20Z"
    assert image.manifest_descriptor.digest == meta["manifest_digest"]

    shutil.copy(blob, tmp_path / "image/blobs/sha256")
    result = ok(run_ocibuild("docker-archive", "--layout", "image", "--ref-name", "latest",
                             "--repo-tag", "team/app:1.0", "--out", "dist/app.tar",
                             cwd=tmp_path))
    assert result == {"version": 1, "kind": "docker-archive-result", "out": "dist/app.tar",
                      "manifest_digest": meta["manifest_digest"]}
    with tarfile.open(tmp_path / "dist/app.tar") as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] == ["team/app:1.0"]


def test_layer_output_does_not_depend_on_umask_or_cwd_path(tmp_path: Path) -> None:
    digests = []
    for name, umask in (("a", 0o022), ("b/c", 0o077)):
        work = tmp_path / name
        old = os.umask(umask)
        try:
            make_tree(work / "in")
        finally:
            os.umask(old)
        layer_spec = spec(work / "s.json", {"mappings": [{"source": "in", "dest": "/"}]})
        digests.append(ok(run_ocibuild("layer", "--spec", layer_spec, "--out-dir", "o",
                                       cwd=work))["digest"])
    assert digests[0] == digests[1]


@pytest.mark.parametrize("value, message", [
    ({"mappings": []},
     "ocibuild: error: the layer spec 's.json': `mappings` maps no files; give "
     "[{\"source\": \"dist/app.pex\", \"dest\": \"app/app.pex\"}]\n"),
    ({"mappings": [{"source": "nope", "dest": "x"}]},
     "ocibuild: error: layer input 'nope' does not exist\n"),
    ({"mappings": [{"source": "in", "dest": "x", "mode": "rwx"}]},
     "ocibuild: error: the layer spec 's.json': `mappings[0].mode` 'rwx' must be an integer "
     "or an octal string, e.g. \"0755\" or 493\n"),
    ({"mappings": [{"source": "in", "dest": "x"}], "compresion": "zstd"},
     "ocibuild: error: the layer spec 's.json': unknown key(s) compresion; known: mappings, "
     "compression, level, mtime, owner, compressor, gzip_engine, executables\n"),
    ({"mappings": [{"source": "in", "dest": "x"}], "compression": "lz4"},
     "ocibuild: error: compression 'lz4': must be gzip, zstd or none, e.g. \"gzip\"\n"),
    ({"mappings": [{"source": "in", "dest": "x"}], "mtime": -1},
     "ocibuild: error: mtime -1: must be a whole number of seconds since 1970-01-01 UTC, "
     "e.g. 0 or $SOURCE_DATE_EPOCH\n"),
])
def test_layer_bad_spec(tmp_path: Path, value, message) -> None:
    (tmp_path / "in").mkdir()
    proc = run_ocibuild("layer", "--spec", spec(tmp_path / "s.json", value), "--out-dir", "o",
                        cwd=tmp_path)
    assert user_error(proc) == message
    assert not (tmp_path / "o/layer.json").exists()


def test_escaping_symlink_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    os.symlink("../../etc/passwd", tmp_path / "in/x")
    proc = run_ocibuild("layer", "--spec", spec(tmp_path / "s.json", {
        "mappings": [{"source": "in", "dest": "app"}]}), "--out-dir", "o", cwd=tmp_path)
    assert user_error(proc) == (
        "ocibuild: error: symlink 'in/x' -> '../../etc/passwd' points outside the input 'in'; "
        "make it relative inside the input or copy the file\n"
    )
    assert not (tmp_path / "o").exists()


def test_unreadable_spec_and_bad_assemble(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{")
    proc = run_ocibuild("assemble", "--spec", "bad.json", "--out-dir", "o", cwd=tmp_path)
    assert user_error(proc) == (
        "ocibuild: error: the assemble request 'bad.json' is not valid JSON: Expecting "
        "property name enclosed in double quotes: line 1 column 2 (char 1)\n")
    proc = run_ocibuild("assemble", "--spec", spec(tmp_path / "a.json", {
        "layers": [], "platform": "linux/x86_64"}), "--out-dir", "o", cwd=tmp_path)
    assert user_error(proc).startswith(
        "ocibuild: error: platform 'linux/x86_64': unknown architecture 'x86_64'")
    proc = run_ocibuild("docker-archive", "--layout", "nowhere", "--out", "x.tar", cwd=tmp_path)
    assert user_error(proc) == (
        "ocibuild: error: 'nowhere' is not an OCI image layout: it has no index.json; create "
        "one with `skopeo copy docker://IMAGE oci:DIR:TAG`\n"
    )


def test_layer_refuses_another_compressor_than_its_cache_key_names(tmp_path: Path) -> None:
    make_tree(tmp_path / "in")
    version = ok(run_ocibuild("compressor-version", cwd=tmp_path))["compressor"]
    assert version.startswith("pgzip 3 deflate 0.8.1, zlib ")
    good = spec(tmp_path / "good.json", {"mappings": [{"source": "in", "dest": "app"}],
                                         "compressor": version})
    ok(run_ocibuild("layer", "--spec", good, "--out-dir", "out", cwd=tmp_path))
    bad = spec(tmp_path / "bad.json", {"mappings": [{"source": "in", "dest": "app"}],
                                       "compressor": "pgzip 1 zlib 0.0.1"})
    message = user_error(run_ocibuild("layer", "--spec", bad, "--out-dir", "out2", cwd=tmp_path))
    assert "not 'pgzip 1 zlib 0.0.1' as the caller expects" in message
    assert not (tmp_path / "out2").exists()


def test_layer_owner(tmp_path: Path) -> None:
    make_tree(tmp_path / "in")
    owned = spec(tmp_path / "owned.json", {"mappings": [{"source": "in", "dest": "srv/data"}],
                                           "owner": [65532, 65533]})
    layer = ok(run_ocibuild("layer", "--spec", owned, "--out-dir", "out", cwd=tmp_path))
    with tarfile.open(tmp_path / "out/blobs/sha256" / layer["digest"][7:]) as tar:
        owners = {m.name: (m.uid, m.gid) for m in tar}
    assert owners["srv"] == (0, 0)  # created on the way: stays root's
    assert owners["srv/data"] == (65532, 65533)
    assert all(v == (65532, 65533) for k, v in owners.items() if k.startswith("srv/data/"))
    bad = spec(tmp_path / "bad.json", {"mappings": [{"source": "in", "dest": "x"}],
                                       "owner": "nonroot"})
    assert "`owner` must be a JSON array, not string ('nonroot')" in user_error(
        run_ocibuild("layer", "--spec", bad, "--out-dir", "out2", cwd=tmp_path))


# Unreadable inputs. Root reads any file, so as root the command runs without the
# capabilities that let it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), as any CI user would.

def _drop_read_override() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH: dropped before exec
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_unprivileged(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", SYSTEM_PATH), "PYTHONPATH": SOURCE_ROOT,
           "LANG": "C.UTF-8"}
    try:
        return subprocess.run([sys.executable, "-m", "ocibuild", *args], cwd=cwd, env=env,
                              capture_output=True, text=True,
                              preexec_fn=_drop_read_override if os.geteuid() == 0 else None)
    except subprocess.SubprocessError as err:
        pytest.skip(f"cannot drop root's read capabilities here: {err}")


def locked(path: Path) -> Path:
    path.chmod(0)
    return path


def test_an_unreadable_spec(tmp_path: Path) -> None:
    locked(Path(tmp_path / spec(tmp_path / "s.json", {"mappings": []})))
    proc = run_unprivileged("layer", "--spec", "s.json", "--out-dir", "o", cwd=tmp_path)
    assert user_error(proc) == "ocibuild: error: cannot read the layer spec 's.json': Permission denied\n"


@pytest.mark.parametrize("what", ["file", "directory"])
def test_an_unreadable_layer_input(tmp_path: Path, what: str) -> None:
    make_tree(tmp_path / "in")
    unreadable = locked(tmp_path / ("in/data/a.txt" if what == "file" else "in/data/nested"))
    proc = run_unprivileged("layer", "--spec", spec(tmp_path / "s.json", {
        "mappings": [{"source": "in", "dest": "app"}]}), "--out-dir", "o", cwd=tmp_path)
    assert user_error(proc) == (f"ocibuild: error: cannot read the layer input "
                                f"'{unreadable.relative_to(tmp_path)}': Permission denied\n")
    assert not (tmp_path / "o").exists()


def built_layout(tmp_path: Path) -> OciLayout:
    make_tree(tmp_path / "in")
    ok(run_ocibuild("layer", "--spec", spec(tmp_path / "l.json", {
        "mappings": [{"source": "in", "dest": "app"}]}), "--out-dir", "layer", cwd=tmp_path))
    layer = json.loads((tmp_path / "layer/layer.json").read_text())
    ok(run_ocibuild("assemble", "--spec", spec(tmp_path / "a.json", {
        "layers": [layer]}), "--out-dir", "image", cwd=tmp_path))
    shutil.copytree(tmp_path / "layer/blobs", tmp_path / "image/blobs", dirs_exist_ok=True)
    return OciLayout(tmp_path / "image")


def test_an_unreadable_blob_or_index_of_a_layout(tmp_path: Path) -> None:
    layout = built_layout(tmp_path)
    image = resolve_image(layout)
    locked(Path(layout.blob_path(image.layers[0].digest)))
    proc = run_unprivileged("docker-archive", "--layout", "image", "--repo-tag", "a:1",
                            "--out", "a.tar", cwd=tmp_path)
    assert user_error(proc) == (f"ocibuild: error: cannot read the blob {image.layers[0].digest} "
                                "of layout 'image': Permission denied\n")
    assert not (tmp_path / "a.tar").exists()
    locked(tmp_path / "image/index.json")
    proc = run_unprivileged("assemble", "--spec", spec(tmp_path / "b.json", {
        "base": {"layout": "image"}, "layers": []}), "--out-dir", "out", cwd=tmp_path)
    assert user_error(proc) == (
        "ocibuild: error: cannot read the index 'image/index.json': Permission denied\n")


def test_an_unreadable_archive(tmp_path: Path) -> None:
    layout = built_layout(tmp_path)
    ok(run_ocibuild("docker-archive", "--layout", layout.path, "--repo-tag", "a:1",
                    "--out", "a.tar", cwd=tmp_path))
    locked(tmp_path / "a.tar")
    proc = run_unprivileged("unpack-layout", "--archive", "a.tar", "--out-dir", "u",
                            cwd=tmp_path)
    assert user_error(proc) == (
        "ocibuild: error: cannot read the OCI archive 'a.tar': Permission denied\n")
    assert not (tmp_path / "u").exists()


def test_an_unreadable_assemble_request(tmp_path: Path) -> None:
    """The request is all assemble reads of the new layers (their descriptors are inline)."""
    built_layout(tmp_path)
    layer = json.loads((tmp_path / "layer/layer.json").read_text())
    locked(Path(tmp_path / spec(tmp_path / "b.json", {"layers": [layer]})))
    proc = run_unprivileged("assemble", "--spec", "b.json", "--out-dir", "out", cwd=tmp_path)
    assert user_error(proc) == (
        "ocibuild: error: cannot read the assemble request 'b.json': Permission denied\n")
    assert not (tmp_path / "out").exists()


def test_an_oversized_spec_is_refused_unread(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_bytes(b" " * (64 << 20) + b"{}")
    proc = run_ocibuild("assemble", "--spec", "s.json", "--out-dir", "o", cwd=tmp_path)
    assert user_error(proc) == ("ocibuild: error: the assemble request 's.json' is over "
                                "67108864 bytes; refusing to read it\n")


def test_a_deeply_nested_spec(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"mappings": ' + "[" * 100_000 + "]" * 100_000 + "}")
    proc = run_ocibuild("layer", "--spec", "s.json", "--out-dir", "o", cwd=tmp_path)
    assert user_error(proc) == ("ocibuild: error: the layer spec 's.json' nests deeper than 64 "
                                "levels: not a document this tool reads\n")


ASSEMBLE = "ocibuild: error: the assemble request 's.json':"


@pytest.mark.parametrize("value,message", [
    ({"mappings": [{"source": "in", "dest": "x"}], "compressor": 1},
     "ocibuild: error: the layer spec 's.json': `compressor` must be a JSON string, not "
     "integer (1)\n"),
    ({"layers": "layer.json"}, f"{ASSEMBLE} `layers` must be a JSON array, not string "
     "('layer.json')\n"),
    ({"layers": [], "ref_names": "latest"}, f"{ASSEMBLE} `ref_names` must be a JSON array, "
     "not string ('latest')\n"),
    ({"layers": [], "annotations": {"a": "1"}}, f"{ASSEMBLE} `annotations` must be a JSON "
     "array, not object ({'a': '1'})\n"),
    ({"layers": [], "annotations": [["a", 1]]}, f"{ASSEMBLE} `annotations[0][1]` must be a "
     "JSON string, not integer (1)\n"),
    ({"layers": [], "settings": ["cmd"]}, f"{ASSEMBLE} `settings` must be a JSON object, not "
     "array (['cmd'])\n"),
    ({"layers": [], "settings": {"user": 0}}, f"{ASSEMBLE} `settings.user` must be a JSON "
     "string, not integer (0)\n"),
    ({"layers": [], "settings": {"env": {"A": "1"}}}, f"{ASSEMBLE} `settings.env` must be a "
     "JSON array, not object ({'A': '1'})\n"),
    ({"layers": [], "settings": {"env": [["A", 1]]}}, f"{ASSEMBLE} `settings.env[0][1]` must "
     "be a JSON string, not integer (1)\n"),
    ({"layers": [], "settings": {"cmd": 5}}, f"{ASSEMBLE} `settings.cmd` must be a JSON "
     "array, not integer (5)\n"),
    ({"layers": [7]}, f"{ASSEMBLE} `layers[0]` must be a JSON object, not integer (7)\n"),
    # What the old spec took: the path of a layer.json, not its descriptor.
    ({"layers": ["out/layer.json"]}, f"{ASSEMBLE} `layers[0]` must be a JSON object, not "
     "string ('out/layer.json')\n"),
    ({"layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "x",
                  "size": 1, "diffID": "x"}]},
     f"{ASSEMBLE} `layers[0].digest` 'x' must be 'sha256:' and 64 lowercase hex digits\n"),
    ({"layers": [], "metadata_out": "meta.json"}, f"{ASSEMBLE} unknown key(s) metadata_out; "
     "known: layers, base, platform, history, settings, annotations, created_epoch, "
     "ref_names, repository\n"),
])
def test_wrongly_typed_spec_fields(tmp_path: Path, value: dict, message: str) -> None:
    (tmp_path / "in").mkdir()
    command = "layer" if "mappings" in value else "assemble"
    proc = run_ocibuild(command, "--spec", spec(tmp_path / "s.json", value), "--out-dir", "o",
                        cwd=tmp_path)
    assert user_error(proc) == message
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flag,value", [("--jobs", "0"), ("--chunk-size", "-1"),
                                        ("--jobs", "many")])
def test_push_jobs_and_chunk_size_must_be_positive(tmp_path: Path, flag: str,
                                                   value: str) -> None:
    proc = run_ocibuild("push", "--layout", "l", "--to", "localhost:5000/x", flag, value,
                        cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.endswith(
        f"error: argument {flag}: {value!r} must be a whole number >= 1, e.g. 4\n")


def test_an_operating_system_error_is_a_user_error_not_a_traceback(tmp_path: Path) -> None:
    make_tree(tmp_path / "in")
    (tmp_path / "taken").write_text("a file where the output directory should go")
    proc = run_ocibuild("layer", "--spec", spec(tmp_path / "s.json", {
        "mappings": [{"source": "in", "dest": "app"}]}), "--out-dir", "taken", cwd=tmp_path)
    assert user_error(proc) == "ocibuild: error: 'taken/blobs': Not a directory\n"


def test_run_takes_a_typed_request_and_checks_its_version_and_kind(tmp_path: Path) -> None:
    """`ocibuild run` is what the plugin runs: the request's kind picks the command."""
    make_tree(tmp_path / "in")
    request = {"version": 1, "kind": "layer", "mappings": [{"source": "in", "dest": "app"}]}
    by_run = ok(run_ocibuild("run", "--request", spec(tmp_path / "r.json", request),
                             "--out-dir", "a", cwd=tmp_path))
    by_layer = ok(run_ocibuild("layer", "--spec", "r.json", "--out-dir", "b", cwd=tmp_path))
    assert by_run == by_layer and by_run["kind"] == "layer-descriptor"
    for bad, message in (
            ({**request, "version": 2}, "is version 2 of the ocibuild protocol; this ocibuild "
             "reads version 1"),
            ({**request, "kind": "lyer"}, "is a 'lyer' document; known: assemble, base-tree, build, "
             "compressor-version, debian-layer, docker-archive, dockerfile-image, dockerfile-plan, "
             "dockerfile-step, index, layer, provenance, push, referrers, sbom, sign, "
             "unpack-layout, verify"),
            ({**request, "mappings": [{"source": "in", "dest": 7}]},
             "`mappings[0].dest` must be a JSON string, not integer (7)")):
        spec(tmp_path / "bad.json", bad)
        assert message in user_error(run_ocibuild("run", "--request", "bad.json", "--out-dir",
                                                  "c", cwd=tmp_path))


def test_a_crash_is_reported_as_an_error_document_with_its_traceback(tmp_path: Path) -> None:
    """A bug (here: a request the parser lets through that a command cannot take) is exit 1
    with the traceback, and the plugin still gets a document saying it was a crash."""
    proc = run_ocibuild("run", "--request", "/dev/null/x", cwd=tmp_path)
    assert proc.returncode == 2  # an unreadable request is the user's
    spec(tmp_path / "r.json", {"kind": "layer", "mappings": [{"source": "x", "dest": "y"}]})
    crash = subprocess.run(
        [sys.executable, "-c", "import sys; from ocibuild import cli\n"
         "cli.RUNNERS['layer'] = (*cli.RUNNERS['layer'][:2], lambda r, o: 1 / 0)\n"
         "sys.exit(cli.main(['run', '--request', 'r.json']))"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": SOURCE_ROOT}, capture_output=True,
        text=True)
    error = json.loads(crash.stdout)
    assert (crash.returncode, error["error"], error["exit_code"]) == (1, "crash", 1)
    assert error["message"] == "ZeroDivisionError: division by zero"
    assert "Traceback" in error["detail"] and "Traceback" in crash.stderr


def test_a_reader_that_went_away_is_no_traceback(tmp_path: Path) -> None:
    """`ocibuild ... | head -1` once the work is done: the closed pipe ends it quietly."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        proc = subprocess.run([sys.executable, "-m", "ocibuild", "compressor-version"],
                              stdout=write_end, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": SOURCE_ROOT}, cwd=tmp_path)
    finally:
        os.close(write_end)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def _push_with_file_size_limit(tmp_path: Path, host: str, limit: int, *extra: str):
    """`ocibuild push` whose process may write at most `limit` bytes to any file: a write past
    it fails (EFBIG; Python ignores SIGXFSZ), as a full disk or a crash half-way would."""
    import resource

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    # No .pyc written: one cut short by the limit would break every later import.
    env = {"PATH": os.environ.get("PATH", SYSTEM_PATH), "PYTHONPATH": SOURCE_ROOT,
           "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "ocibuild", "push", "--layout", str(tmp_path / "out"),
         "--to", f"{host}/team/app:1", "--insecure", *extra], cwd=tmp_path, env=env,
        capture_output=True, text=True, preexec_fn=limited)


def test_digest_and_refs_files_are_replaced_whole_or_left_as_they_were(tmp_path: Path) -> None:
    """--digest-file and --refs-file (the plugin's dist/*.digest and *.refs) are written to a
    temp file and renamed: a push failing while writing them leaves the old file whole (the
    same holds for a kill: the temp is all it had written), and a reader holding the old
    file keeps its content."""
    from tests.fixtures.registry import start_registry

    make_tree(tmp_path / "app")
    built = run_ocibuild("build", "--base", "scratch", "--layer", "app/:/app", "--output",
                         "out", "--quiet", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    digest_file, refs_file = tmp_path / "dist/app.digest", tmp_path / "dist/app.refs"
    digest_file.parent.mkdir()
    with start_registry(tmp_path / "registry") as registry:
        files = ["--digest-file", str(digest_file), "--refs-file", str(refs_file)]
        old = b"sha256:" + b"0" * 64 + b"\n"
        for path in (digest_file, refs_file):
            path.write_bytes(old)
        os.link(digest_file, tmp_path / "held")  # a reader's open file: its inode
        killed = _push_with_file_size_limit(tmp_path, registry.host, 40, *files)
        assert killed.stderr == f"ocibuild: error: cannot write the digest file " \
            f"{str(digest_file)!r}: File too large; it is left as it was\n"
        assert digest_file.read_bytes() == old and refs_file.read_bytes() == old
        pushed = _push_with_file_size_limit(tmp_path, registry.host, 1 << 20, *files)
        assert pushed.returncode == 0, pushed.stderr
        digest = json.loads(pushed.stdout)["manifest_digest"]
        assert digest_file.read_text() == digest + "\n"
        assert refs_file.read_text() == f"{registry.host}/team/app:1@{digest}\n"
        assert (tmp_path / "held").read_bytes() == old  # replaced, not rewritten in place
        again = _push_with_file_size_limit(tmp_path, registry.host, 1 << 20, *files,
                                           "--append-refs")
        assert again.returncode == 0, again.stderr
        assert refs_file.read_text() == f"{registry.host}/team/app:1@{digest}\n" * 2
    assert [p.name for p in digest_file.parent.iterdir() if p.name.startswith(".partial-")] \
        == []  # the killed push's temp was swept by the next one
