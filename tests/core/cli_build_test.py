"""`ocibuild build` as a user runs it: a subprocess, checked with skopeo, umoci and a real
registry on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import List

import pytest

from tests.fixtures.image_checks import skopeo_inspect, skopeo_inspect_archive, umoci_unpack
from tests.fixtures import registry as registries
from tests.fixtures.fault_proxy import FaultProxy
from tests.fixtures.registry import Registry, start_registry
from tests.fixtures.tools import require, run

from .conftest import SOURCE_ROOT, make_tree, run_ocibuild, write

registry = registries.registry  # the fixture: a real registry on loopback


def build(*args: str, cwd: Path) -> dict:
    proc = run_ocibuild("build", *args, "--json", cwd=cwd)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    result = json.loads(proc.stdout)
    assert result["kind"] == "build-result"
    return result


def app(root: Path) -> Path:
    """A directory layer and a file layer's sources."""
    make_tree(root / "app")
    write(root / "main.py", b"print('hi')\n", 0o755)
    return root


def layers(root: Path) -> List[str]:
    return ["--layer", f"{root / 'app'}:/app", "--layer", str(root / "main.py")]


def test_scratch_with_a_directory_and_a_file_layer(tmp_path: Path) -> None:
    src = app(tmp_path / "src")
    out = tmp_path / "out"
    result = build("--base", "scratch", *layers(src), "--entrypoint", '["python3", "/main.py"]',
                   "--env", "A=1", "--env", "B=two words", "--workdir", "/app", "--user", "65532",
                   "--label", "team=web", "--annotation", "org.example.k=v", "--tag", "1.0",
                   "--output", str(out), "--digest-file", str(tmp_path / "digest"), cwd=tmp_path)
    manifest = skopeo_inspect(out, "1.0", raw=True)
    assert result["manifest_digest"] == (tmp_path / "digest").read_text().strip()
    assert result["images"] == [{"platform": "linux/amd64", "manifest_digest":
                                 result["manifest_digest"],
                                 "config_digest": manifest["config"]["digest"]}]
    assert manifest["annotations"] == {"org.example.k": "v"}
    assert len(manifest["layers"]) == 2
    config = skopeo_inspect(out, "1.0", config=True)
    assert config["config"] == {"Entrypoint": ["python3", "/main.py"], "Env": ["A=1", "B=two words"],
                                "WorkingDir": "/app", "User": "65532",
                                "Labels": {"team": "web"}}
    assert [h["created_by"] for h in config["history"]] == ["ocibuild build: /app",
                                                           "ocibuild build: /main.py"]
    rootfs = umoci_unpack(out, "1.0", tmp_path / "bundle")
    assert (rootfs / "main.py").read_bytes() == b"print('hi')\n"
    assert (rootfs / "app/data/nested/deep/c.bin").read_bytes() == bytes(range(256)) * 40
    assert os.readlink(rootfs / "app/data/link") == "a.txt"
    assert sorted(os.listdir(tmp_path)) == ["bundle", "digest", "out", "src"]


def test_human_summary_without_json_and_progress_lines_without_a_terminal(
        tmp_path: Path) -> None:
    src = app(tmp_path / "src")
    proc = run_ocibuild("build", "--base", "scratch", *layers(src), "--output",
                        str(tmp_path / "out"), cwd=tmp_path)
    # stderr is a pipe here, as in CI: one plain line per stage, no terminal control codes.
    assert proc.returncode == 0 and proc.stderr == "ocibuild: building 2 layer(s) from files\n"
    quiet = run_ocibuild("build", "--base", "scratch", *layers(src), "--output",
                         str(tmp_path / "quiet"), "--quiet", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == ""
    digest = skopeo_inspect(tmp_path / "out", "latest")["Digest"]
    assert proc.stdout == (f"built image {digest} (linux/amd64)\n"
                           f"wrote the OCI layout {tmp_path / 'out'}\n")


def _tree_with(root: Path, umask: int, mtime: int) -> Path:
    old = os.umask(umask)
    try:
        src = app(root)
    finally:
        os.umask(old)
    for path in [src, *src.rglob("*")]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return src


def test_same_files_same_digests_whatever_the_directory_mtimes_and_umask(
        tmp_path: Path) -> None:
    digests = []
    for name, umask, mtime in (("a", 0o022, 1_000_000_000), ("bb/c", 0o077, 1_700_000_000)):
        src = _tree_with(tmp_path / name / "src", umask, mtime)
        digests.append(build("--base", "scratch", *layers(src), "--output",
                             str(tmp_path / name / "out"), cwd=tmp_path / name)
                       ["manifest_digest"])
    assert digests[0] == digests[1]


def test_a_source_date_epoch_that_is_no_number_is_one_error(tmp_path: Path) -> None:
    src = app(tmp_path / "src")
    proc = run_ocibuild("build", "--base", "scratch", *layers(src), "--output", "out",
                        cwd=tmp_path, extra_env={"SOURCE_DATE_EPOCH": "yesterday"})
    assert proc.returncode == 2 and not (tmp_path / "out").exists()
    assert proc.stderr == ("ocibuild: error: SOURCE_DATE_EPOCH='yesterday' is not a number of "
                           "seconds since 1970-01-01 UTC; set it to e.g. $(git log -1 "
                           "--format=%ct) or unset it\n")


def test_source_date_epoch_sets_created(tmp_path: Path) -> None:
    src = app(tmp_path / "src")
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": SOURCE_ROOT,
           "SOURCE_DATE_EPOCH": "1700000000"}
    subprocess.run([sys.executable, "-m", "ocibuild", "build", "--base", "scratch",
                    *layers(src), "--output", str(tmp_path / "out")], env=env, check=True,
                   capture_output=True)
    assert skopeo_inspect(tmp_path / "out", "latest")["Created"] == "2023-11-14T22:13:20Z"


def test_a_base_from_an_oci_layout_keeps_its_layers(tmp_path: Path) -> None:
    src = app(tmp_path / "src")
    base = build("--base", "scratch", "--layer", str(src / "app"), "--env", "BASE=1",
                 "--tag", "v1", "--output", str(tmp_path / "base"), cwd=tmp_path)
    base_manifest = skopeo_inspect(tmp_path / "base", "v1", raw=True)
    outs = [build("--base", f"oci:{tmp_path / 'base'}:v1", "--layer", str(src / "main.py"),
                  "--output", str(tmp_path / out), cwd=tmp_path) for out in ("one", "two")]
    assert outs[0]["manifest_digest"] == outs[1]["manifest_digest"]
    manifest = skopeo_inspect(tmp_path / "one", "latest", raw=True)
    assert manifest["layers"][:1] == base_manifest["layers"]
    assert manifest["annotations"] == {
        "org.opencontainers.image.base.digest": base["manifest_digest"]}
    assert skopeo_inspect(tmp_path / "one", "latest", config=True)["config"]["Env"] == \
        ["BASE=1"]
    rootfs = umoci_unpack(tmp_path / "one", "latest", tmp_path / "bundle")
    assert sorted(os.listdir(rootfs)) == ["bin", "data", "empty", "main.py"]


def _skopeo_raw(reg: Registry, ref: str) -> dict:
    argv = [require("skopeo"), "inspect", "--raw", *reg.skopeo_src_flags(), f"docker://{ref}"]
    return json.loads(run(argv).stdout)


def test_push_to_a_registry_then_build_on_it(registry: Registry, tmp_path: Path) -> None:
    src = app(tmp_path / "src")
    insecure = ["--insecure-registry", registry.host]
    base = build("--base", "scratch", "--layer", str(src / "app"), "--push",
                 f"{registry.host}/team/base:1", *insecure, cwd=tmp_path)
    assert base["refs"] == [f"{registry.host}/team/base:1@{base['manifest_digest']}"]
    pushed = build("--base", f"{registry.host}/team/base:1", "--layer", str(src / "main.py"),
                   "--push", f"{registry.host}/team/app:2", "--tag", "latest", *insecure,
                   "--image-refs", str(tmp_path / "refs"), "--docker-archive",
                   str(tmp_path / "app.tar"), cwd=tmp_path)
    digest = pushed["manifest_digest"]
    assert (tmp_path / "refs").read_text() == (f"{registry.host}/team/app:2@{digest}\n"
                                               f"{registry.host}/team/app:latest@{digest}\n")
    base_layer = _skopeo_raw(registry, f"{registry.host}/team/base:1")["layers"][0]["digest"]
    assert pushed["mounted"] == [base_layer]
    manifest = _skopeo_raw(registry, f"{registry.host}/team/app:latest")
    assert manifest["layers"][0]["digest"] == base_layer
    assert manifest["annotations"]["org.opencontainers.image.base.name"] == \
        f"{registry.host}/team/base:1"
    with tarfile.open(tmp_path / "app.tar") as tar:
        archive = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert archive[0]["RepoTags"] == [f"{registry.host}/team/app:2",
                                      f"{registry.host}/team/app:latest"]
    assert len(skopeo_inspect_archive(tmp_path / "app.tar")["Layers"]) == 2


def test_a_push_only_build_downloads_no_base_layer_the_destination_has(
        registry: Registry, tmp_path: Path) -> None:
    """--push without --output: the base's manifests and config are read, its layers never
    downloaded when the destination has them or can mount them; on another registry, each
    missing layer is fetched (verified) on its way there, and the image is complete."""
    src = app(tmp_path / "src")
    with FaultProxy(registry.host) as source, \
            start_registry(tmp_path / "other") as other:
        insecure = ["--insecure-registry", source.host, "--insecure-registry", other.host]
        base = build("--base", "scratch", "--layer", str(src / "app"), "--push",
                     f"{source.host}/team/base:1", *insecure, cwd=tmp_path)
        base_layer = _skopeo_raw(registry, f"{registry.host}/team/base:1")["layers"][0]["digest"]
        blob_get = f"/blobs/{base_layer}"
        assert source.count("GET", blob_get) == 0

        same = build("--base", f"{source.host}/team/base:1", "--layer", str(src / "main.py"),
                     "--push", f"{source.host}/team/app:2", *insecure, cwd=tmp_path)
        assert same["mounted"] == [base_layer]
        assert source.count("GET", blob_get) == 0  # mounted, never downloaded

        elsewhere = build("--base", f"{source.host}/team/base:1", "--layer",
                          str(src / "main.py"), "--push", f"{other.host}/else/app:1", *insecure,
                          cwd=tmp_path)
        assert base_layer in elsewhere["uploaded"]
        assert source.count("GET", blob_get) == 1  # fetched once, on its way to `other`
        run([require("skopeo"), "copy", "--quiet", *other.skopeo_src_flags(),
             f"docker://{other.host}/else/app:1", f"oci:{tmp_path / 'copied'}:app"])
        assert (tmp_path / "copied/blobs/sha256" / base_layer[7:]).is_file()

        again = build("--base", f"{source.host}/team/base:1", "--layer", str(src / "main.py"),
                      "--push", f"{other.host}/else/app:2", *insecure, cwd=tmp_path)
        assert again["uploaded"] == [] and source.count("GET", blob_get) == 1
        assert base["manifest_digest"]


def test_two_platforms_push_an_index(registry: Registry, tmp_path: Path) -> None:
    src = app(tmp_path / "src")
    result = build("--base", "scratch", *layers(src), "--platform", "linux/amd64",
                   "--platform", "linux/arm64", "--push", f"{registry.host}/team/multi:1",
                   "--insecure-registry", registry.host, cwd=tmp_path)
    index = _skopeo_raw(registry, f"{registry.host}/team/multi:1")
    assert [m["platform"] for m in index["manifests"]] == [
        {"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64"}]
    assert [m["digest"] for m in index["manifests"]] == \
        [i["manifest_digest"] for i in result["images"]]
    assert len({m["digest"] for m in index["manifests"]}) == 2
    # Built on that index: each platform's image on the base's image for that platform.
    on_it = build("--base", f"{registry.host}/team/multi:1", "--layer", str(src / "main.py"),
                  "--platform", "linux/arm64", "--platform", "linux/amd64",
                  "--insecure-registry", registry.host, "--output", str(tmp_path / "out"),
                  cwd=tmp_path)
    out_index = json.loads((tmp_path / "out/index.json").read_text())["manifests"][0]
    assert out_index["digest"] == on_it["manifest_digest"]
    bases = {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]}
    for image in on_it["images"]:
        manifest = json.loads((tmp_path / "out/blobs/sha256" /
                               image["manifest_digest"].split(":")[1]).read_text())
        assert manifest["annotations"]["org.opencontainers.image.base.digest"] == \
            bases[image["platform"].split("/")[1]]
    assert [i["platform"] for i in on_it["images"]] == ["linux/arm64", "linux/amd64"]
    # Complete: every blob of both images (the base's included) is in the layout.
    run([require("skopeo"), "copy", "--quiet", "--all", f"oci:{tmp_path / 'out'}:latest",
         f"oci:{tmp_path / 'copy'}:latest"])


def error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("args, message", [
    (["--layer", "missing:/x", "--output", "out"],
     "ocibuild build: error: argument --layer: 'missing:/x': 'missing' does not exist "
     "(SRC[:DEST], e.g. --layer app/:/app or --layer dist/app.pex)"),
    (["--layer", "src/main.py", "--env", "NOEQUALS", "--output", "out"],
     "ocibuild build: error: argument --env: 'NOEQUALS' must be KEY=VALUE, "
     "e.g. --env PORT=8080"),
    (["--layer", "src/main.py"],
     "ocibuild build: error: one of the arguments --output --push is required"),
    (["--layer", "src/main.py", "--platform", "linux/amd64", "--platform", "linux/arm64",
      "--docker-archive", "x.tar", "--output", "out"],
     "ocibuild: error: --docker-archive holds one image, but 2 platforms were asked for "
     "(linux/amd64, linux/arm64); give one --platform, or drop --docker-archive and load "
     "the layout with podman"),
    (["--layer", "src/main.py", "--platform", "linux/sparc", "--output", "out"],
     "ocibuild: error: platform 'linux/sparc': unknown architecture 'sparc'; use one of "),
    (["--base", "oci:nowhere", "--output", "out"],
     "ocibuild: error: --base 'oci:nowhere': 'nowhere' is not a directory; an OCI layout is "
     "a directory, e.g. --base oci:build/base:latest"),
])
def test_bad_flags(tmp_path: Path, args: List[str], message: str) -> None:
    app(tmp_path / "src")
    base = [] if "--base" in args else ["--base", "scratch"]
    proc = run_ocibuild("build", *base, *args, cwd=tmp_path)
    assert error(proc).startswith(message)
    assert sorted(os.listdir(tmp_path)) == ["src"]


def test_a_failing_push_leaves_no_output(tmp_path: Path) -> None:
    app(tmp_path / "src")
    proc = run_ocibuild("build", "--base", "127.0.0.1:1/none:1", "--layer", "src/main.py",
                        "--insecure-registry", "127.0.0.1:1", "--output", "deep/out",
                        "--digest-file", "digest", cwd=tmp_path)
    assert error(proc).startswith("ocibuild: error: pulling the base image "
                                  "'127.0.0.1:1/none:1': ")
    assert sorted(os.listdir(tmp_path)) == ["src"]


def test_a_build_request_document_builds_what_the_flags_build(tmp_path: Path) -> None:
    src = app(tmp_path / "src")
    flags = build("--base", "scratch", *layers(src), "--cmd", "/main.py",
                  "--output", str(tmp_path / "flags"), cwd=tmp_path)
    request = {"version": 1, "kind": "build", "base": "scratch",
               "layers": [{"source": str(src / "app"), "dest": "/app"},
                          {"source": str(src / "main.py"), "dest": "/main.py"}],
               "settings": {"cmd": ["/main.py"]}, "output": str(tmp_path / "doc")}
    (tmp_path / "request.json").write_text(json.dumps(request))
    proc = run_ocibuild("run", "--request", "request.json", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert json.loads(proc.stdout) == {**flags, "output": str(tmp_path / "doc")}


def test_zstd_layers_and_an_output_directory_in_use_is_left_alone(tmp_path: Path) -> None:
    src = app(tmp_path / "src")
    build("--base", "scratch", *layers(src), "--compression", "zstd", "--output",
          str(tmp_path / "out"), cwd=tmp_path)
    manifest = skopeo_inspect(tmp_path / "out", "latest", raw=True)
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+zstd"}
    before = sorted(p.name for p in (tmp_path / "out").rglob("*"))
    proc = run_ocibuild("build", "--base", "scratch", *layers(src), "--output", "out",
                        cwd=tmp_path)
    assert error(proc) == ("ocibuild: error: the output directory 'out' exists and is not "
                           "empty; it is left as it is: give a new directory, or remove it "
                           "first")
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == before


def test_a_push_only_build_with_accounts_fetches_the_base_layers_it_reads(
        registry: Registry, tmp_path: Path) -> None:
    """`accounts.users` on a registry base with --push alone: the accounts step reads the
    base's /etc/passwd as unpacked, so each base layer is fetched once (verified) and the
    image pushed is complete; the base's users are kept, the new one appended."""
    write(tmp_path / "root/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    write(tmp_path / "root/etc/group", b"root:x:0:\n")
    write(tmp_path / "image.yaml", b"accounts:\n  users:\n    - {username: app, uid: 1000}\n"
          b"  run-as: app\n")
    with FaultProxy(registry.host) as source:
        insecure = ["--insecure-registry", source.host]
        build("--base", "scratch", "--layer", f"{tmp_path / 'root'}/:/", "--push",
              f"{source.host}/team/base:1", *insecure, cwd=tmp_path)
        base_layer = _skopeo_raw(registry, f"{registry.host}/team/base:1")["layers"][0]["digest"]
        pushed = build("-f", str(tmp_path / "image.yaml"), "--base",
                       f"{source.host}/team/base:1", "--push", f"{source.host}/team/app:1",
                       *insecure, cwd=tmp_path)
        assert source.count("GET", f"/blobs/{base_layer}") == 1
        assert pushed["mounted"] == [base_layer]
    run([require("skopeo"), "copy", "--quiet", *registry.skopeo_src_flags(),
         f"docker://{registry.host}/team/app:1", f"oci:{tmp_path / 'copied'}:app"])
    rootfs = umoci_unpack(tmp_path / "copied", "app", tmp_path / "bundle")
    assert (rootfs / "etc/passwd").read_bytes() == (
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/sbin/nologin\n")
    assert (rootfs / "home/app").is_dir()
