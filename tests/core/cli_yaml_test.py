"""`ocibuild build -f image.yaml` as a user runs it: a subprocess, checked with skopeo; the
file builds what the same flags build, and every malformed file is one line-numbered error."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.fixtures.image_checks import skopeo_inspect
from tests.fixtures.tools import require, run

from .conftest import SOURCE_ROOT, run_ocibuild, write

EXAMPLE = Path(SOURCE_ROOT).parent.parent / "examples/cli"


def build(*args: str, cwd: Path) -> dict:
    proc = run_ocibuild("build", *args, "--json", cwd=cwd)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    return json.loads(proc.stdout)


SITE_YAML = b"""\
# The examples/cli site on scratch, served by a base's busybox httpd: files and settings only.
base: scratch
paths:
  - source: site/
    path: /site
  - source: httpd.conf
    path: /etc/httpd.conf
entrypoint:
  command: /bin/busybox httpd -f -v -c /etc/httpd.conf
cmd: -p 8080 -h /site
environment:
  SITE_ROOT: /site
  PORT: 8080
work-dir: /site
accounts:
  run-as: "65532"
annotations:
  org.opencontainers.image.source: https://example.com/pants-oci
  org.opencontainers.image.title: cli-example-site
labels:
  team: infra
archs: [amd64, arm64]
tags: [latest, "1.0"]
"""


def example(tmp_path: Path) -> Path:
    """examples/cli's site with a scratch image file (no Debian packages: no network)."""
    shutil.copytree(EXAMPLE / "site", tmp_path / "cli/site", symlinks=True)
    write(tmp_path / "cli/image.yaml", SITE_YAML)
    write(tmp_path / "cli/httpd.conf", b".html:text/html\n")
    return tmp_path / "cli"


def config_of(layout: Path, arch: str, ref: str = "latest") -> dict:
    out = run([require("skopeo"), "--override-arch", arch, "inspect", "--config",
               f"oci:{layout}:{ref}"]).stdout
    return json.loads(out)


SITE_CONFIG = {
    "Entrypoint": ["/bin/busybox", "httpd", "-f", "-v", "-c", "/etc/httpd.conf"],
    "Cmd": ["-p", "8080", "-h", "/site"], "Env": ["SITE_ROOT=/site", "PORT=8080"],
    "WorkingDir": "/site", "User": "65532", "Labels": {"team": "infra"}}
SITE_ANNOTATIONS = {"org.opencontainers.image.source": "https://example.com/pants-oci",
                    "org.opencontainers.image.title": "cli-example-site"}


def test_a_site_on_scratch_builds_an_index_of_two_platforms(tmp_path: Path) -> None:
    src = example(tmp_path)
    out = tmp_path / "site"
    result = build("-f", str(src / "image.yaml"), "--output", str(out), cwd=tmp_path)
    index = skopeo_inspect(out, "1.0", raw=True)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert index["annotations"] == SITE_ANNOTATIONS
    assert [m["platform"] for m in index["manifests"]] == [
        {"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64"}]
    assert [m["digest"] for m in index["manifests"]] == \
        [i["manifest_digest"] for i in result["images"]]
    for arch, image in zip(("amd64", "arm64"), result["images"]):
        manifest = json.loads((out / "blobs/sha256" / image["manifest_digest"][7:]).read_text())
        assert manifest["annotations"] == SITE_ANNOTATIONS
        assert len(manifest["layers"]) == 2
        config = config_of(out, arch)
        assert (config["architecture"], config["config"]) == (arch, SITE_CONFIG)
        assert [h["created_by"] for h in config["history"]] == [
            "ocibuild build: /site", "ocibuild build: /etc/httpd.conf"]
    assert sorted(m["annotations"]["org.opencontainers.image.ref.name"] for m in
                  json.loads((out / "index.json").read_text())["manifests"]) == ["1.0", "latest"]


def test_the_file_builds_what_the_same_flags_build(tmp_path: Path) -> None:
    src = example(tmp_path)
    from_file = build("-f", str(src / "image.yaml"), "--output", str(tmp_path / "a"),
                      cwd=tmp_path)
    from_flags = build(
        "--base", "scratch", "--layer", f"{src / 'site'}:/site",
        "--layer", f"{src / 'httpd.conf'}:/etc/httpd.conf",
        "--entrypoint", '["/bin/busybox", "httpd", "-f", "-v", "-c", "/etc/httpd.conf"]',
        "--cmd", '["-p", "8080", "-h", "/site"]', "--env", "SITE_ROOT=/site",
        "--env", "PORT=8080", "--workdir", "/site", "--user", "65532",
        "--annotation", "org.opencontainers.image.source=https://example.com/pants-oci",
        "--annotation", "org.opencontainers.image.title=cli-example-site",
        "--label", "team=infra", "--platform", "linux/amd64", "--platform", "linux/arm64",
        "--tag", "latest", "--tag", "1.0", "--output", str(tmp_path / "b"), cwd=tmp_path)
    assert from_file["manifest_digest"] == from_flags["manifest_digest"]
    assert from_file["images"] == from_flags["images"]


def test_flags_override_scalars_and_add_to_lists(tmp_path: Path) -> None:
    src = example(tmp_path)
    write(tmp_path / "extra.txt", b"extra\n")
    out = tmp_path / "out"
    result = build("-f", str(src / "image.yaml"), "--cmd=--port=9090", "--user", "1000",
                   "--env", "PORT=9090", "--env", "MODE=prod", "--label", "tier=web",
                   "--label", "team=web", "--layer", f"{tmp_path / 'extra.txt'}:/extra.txt",
                   "--platform", "linux/arm64", "--tag", "2.0", "--output", str(out),
                   cwd=tmp_path)
    assert [i["platform"] for i in result["images"]] == ["linux/amd64", "linux/arm64"]
    config = config_of(out, "amd64", "2.0")
    assert config["config"] == {
        **SITE_CONFIG, "Cmd": ["--port=9090"], "User": "1000",
        "Env": ["SITE_ROOT=/site", "PORT=9090", "MODE=prod"],
        "Labels": {"team": "web", "tier": "web"}}
    assert config["history"][-1]["created_by"] == "ocibuild build: /extra.txt"


def test_paths_are_relative_to_the_file_and_a_command_may_be_a_list(tmp_path: Path) -> None:
    write(tmp_path / "proj/app/main.py", b"print('hi')\n")
    write(tmp_path / "proj/image.yaml", b"""\
base: scratch
paths:
  - source: app/main.py
entrypoint:
  command: ["python3", "/main.py", "two words"]
tags: [1.0]
""")
    build("-f", "proj/image.yaml", "--output", "out", cwd=tmp_path)
    config = skopeo_inspect(tmp_path / "out", "1.0", config=True)
    assert config["config"]["Entrypoint"] == ["python3", "/main.py", "two words"]
    assert config["history"][0]["created_by"] == "ocibuild build: /main.py"


HEAD = "base: scratch\npaths:\n  - source: app/\n"
KEYS = ("`base`, `contents`, `paths`, `entrypoint`, `cmd`, `environment`, `work-dir`, "
        "`accounts`, `annotations`, `labels`, `archs`, `tags`")
DEBIAN = "contents:\n  repositories: [http://deb.debian.org/debian trixie]\n"


@pytest.mark.parametrize("text, message", [
    (HEAD + "environ: {A: b}\n",
     f"image.yaml:4: unknown key `environ`; the keys here are {KEYS}"),
    (HEAD + "entrypoint:\n  type: service\n",
     "image.yaml:5: unknown key `entrypoint.type`; the keys here are `command`"),
    (HEAD + "work-dir: [a]\n", "image.yaml:4: `work-dir` must be a string, not a list"),
    (HEAD + "tags: latest\n", "image.yaml:4: `tags` must be a list, not the string 'latest'"),
    (HEAD + "environment:\n  - A=b\n",
     "image.yaml:5: `environment` must be a mapping of strings, not a list"),
    (HEAD + "labels: {a: {b: c}}\n",
     "image.yaml:4: `labels` must be a mapping of strings, not a mapping with a mapping at `a`"),
    (HEAD + "labels: &l {a: b}\nannotations: *l\n",
     "image.yaml:4: anchors and aliases (&name, *name) are not supported; write the value out"),
    (HEAD + "---\nbase: scratch\n",
     "image.yaml:4: a second YAML document (after `---`); an image file holds one"),
    (HEAD + "environment: {1: b}\n",
     "image.yaml:4: `environment`: a key must be a string, not the number '1'; quote it"),
    (HEAD + "base: scratch\n", "image.yaml:4: `base` is given twice"),
    (HEAD + "work-dir:\n", "image.yaml:4: `work-dir` is empty; give a string or remove the key"),
    (HEAD + "work-dir: !!binary aGk=\n",
     "image.yaml:4: `work-dir`: the tag 'tag:yaml.org,2002:binary' is not supported; "
     "write plain text"),
    (HEAD + "cmd: \"a 'b\"\n",
     "image.yaml:4: `cmd`: \"a 'b\" does not split into words: No closing quotation"),
    (HEAD + "archs: [sparc]\n", "image.yaml:4: `archs[0]`: platform 'linux/sparc': unknown "
     "architecture 'sparc'; use one of amd64, arm64, arm, 386, ppc64le, ppc64, s390x, riscv64, "
     "mips64le, mips64, mipsle, mips, loong64, wasm, e.g. \"linux/amd64\" or \"linux/arm64\""),
    (HEAD + "environment: {A: [b]\n",
     "image.yaml:5: invalid YAML: expected ',' or '}', but got '<stream end>'"),
    ("base: scratch\npaths:\n  - source: ../app/\n",
     "image.yaml:3: `paths[0].source`: '../app/' must be a relative path inside {dir!r} "
     "(the file's directory), without '..'"),
    ("base: scratch\npaths:\n  - source: /etc\n",
     "image.yaml:3: `paths[0].source`: '/etc' must be a relative path inside {dir!r} "
     "(the file's directory), without '..'"),
    ("base: scratch\npaths:\n  - source: escape/passwd\n",
     "image.yaml:3: `paths[0].source`: 'escape/passwd' leads outside {dir!r} (through a "
     "symlink); copy what it needs inside"),
    ("base: scratch\npaths:\n  - source: missing/\n",
     "image.yaml:3: `paths[0].source`: 'missing/' does not exist in {dir!r}"),
    ("base: scratch\npaths:\n  - path: /x\n",
     "image.yaml:3: `paths[0]` needs a `source` (a file or directory, relative to this "
     "file), e.g. `source: app/`"),
    ("base: scratch\npaths:\n  - source: app/\n    path: /../x\n",
     "image.yaml:3: `paths[0].path`: '/../x' must be a path in the image without "
     "'..', e.g. /app"),
    ("base: scratch\npaths: [[[[[[[[[a]]]]]]]]]\n",
     "image.yaml:2: nested deeper than 8 levels; no key of an image file nests so deep"),
    ("- base\n", "image.yaml:1: an image file is a mapping (`base: ...`, `paths: ...`), "
     "not a list"),
    ("", "image.yaml: the file is empty; give at least `base:` and `paths:`, or Debian "
     "packages in `contents:` (see docs/cli.md)"),
    (DEBIAN, "image.yaml:2: `contents` needs `packages`, e.g. `packages: [python3-minimal]`"),
    (DEBIAN + "  packages: [python3]\n  max-layers: 1\n",
     "image.yaml:4: `contents.max-layers` must be an integer from 2 to 100 (one layer for the "
     "largest package and one shared by the rest, at least), not 1"),
    ("contents:\n  repositories: [http://deb.debian.org/debian]\n",
     "image.yaml:2: `contents.repositories[0]` must be `MIRROR SUITE`, e.g. "
     "`http://deb.debian.org/debian trixie`, or a mapping with `mirror`, `suite` and "
     "optionally `keyring`"),
    ("contents:\n  repositories:\n    - {mirror: ftp://x/debian, suite: trixie}\n",
     "image.yaml:3: `contents.repositories[0]`: the mirror 'ftp://x/debian' must be an "
     "http:// or https:// URL, e.g. http://deb.debian.org/debian"),
    (DEBIAN + "  packages: [python3]\n  keyring: ../k.gpg\n",
     "image.yaml:4: `contents.keyring`: '../k.gpg' must be a relative path inside {dir!r} "
     "(the file's directory), without '..'"),
    (DEBIAN + "  packages: [python3]\n  fallback-mirrors: ['https://x/{date}']\n",
     "image.yaml:4: `contents.fallback-mirrors[0]`: the fallback mirror 'https://x/{date}' "
     "uses {date}; the placeholders are {archive}, {suite}, {timestamp}, each bare (no format "
     "spec, conversion, attribute or index)"),
    (DEBIAN + "  packages: [python3]\nbase: oci:app\n",
     "the base is built from Debian packages (`contents`), so it cannot also be "
     "'oci:{dir}/app'; drop `base:` (or --base)"),
    (HEAD + "accounts:\n  users:\n    - {username: app}\n",
     "image.yaml:6: `accounts.users[0]` needs `uid`"),
    (HEAD + "accounts:\n  users:\n    - {username: app, uid: -1}\n",
     "image.yaml:6: `accounts.users[0].uid` must be a whole number below 2^31, not '-1'"),
    (HEAD + "accounts:\n  groups:\n    - {groupname: 'a b', gid: 5}\n",
     "image.yaml:6: accounts.groups[0].groupname 'a b' must be 1 to 32 letters, digits, '.', "
     "'_' or '-' (not starting with '-' or '.', not all digits), e.g. app"),
    (HEAD + "accounts:\n  user: []\n",
     "image.yaml:5: unknown key `accounts.user`; the keys here are `run-as`, `users`, `groups`"),
    ("paths:\n  - source: app/\n", "image.yaml: give the base image: `base: scratch` (or "
     "an oci:DIR, or REGISTRY/REPO[:TAG]), or --base"),
])
def test_a_malformed_file_is_one_error_with_its_line(tmp_path: Path, text: str,
                                                      message: str) -> None:
    write(tmp_path / "app/a.txt", b"a\n")
    os.symlink("/etc", tmp_path / "escape")
    write(tmp_path / "image.yaml", text.encode())
    proc = run_ocibuild("build", "-f", "image.yaml", "--output", "out", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "ocibuild: error: " + message.replace("{dir!r}", repr(str(tmp_path.resolve())))
        .replace("{dir}", str(tmp_path.resolve()))]
    assert json.loads(proc.stdout)["kind"] == "error"
    assert not (tmp_path / "out").exists()


def test_without_base_or_file(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", b"a\n")
    proc = run_ocibuild("build", "--layer", "a.txt", "--output", "out", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "ocibuild: error: give the base image: --base scratch, --base oci:DIR[:REF_NAME] or "
        "--base REGISTRY/REPO[:TAG] (or -f image.yaml)")


def test_an_oci_base_is_relative_to_the_file_and_apko_arch_names_are_taken(
        tmp_path: Path) -> None:
    src = example(tmp_path)
    build("-f", str(src / "image.yaml"), "--output", str(tmp_path / "proj/base"), cwd=tmp_path)
    write(tmp_path / "proj/more/x.txt", b"x\n")
    write(tmp_path / "proj/image.yaml",
          b"base: oci:base:1.0\npaths:\n  - source: more/\n    path: /more\n"
          b"archs: [aarch64]\n")
    result = build("-f", "proj/image.yaml", "--output", "out", cwd=tmp_path)
    assert [i["platform"] for i in result["images"]] == ["linux/arm64"]
    config = skopeo_inspect(tmp_path / "out", "latest", config=True)
    assert config["config"] == SITE_CONFIG  # the base's settings, kept
    assert len(config["rootfs"]["diff_ids"]) == 3
