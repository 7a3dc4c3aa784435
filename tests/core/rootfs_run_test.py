"""RUN steps run for real, under each mechanism this machine offers, and their layers read back.

"pod" is the locked-down case the project is for: an unprivileged user (65534, no
capabilities) under a seccomp filter refusing user namespaces and mounts
(tests/core/rootfs_pod.py): proot + fakeroot run there. "user" is the same user unconfined:
user namespaces, when the kernel allows them. "root" is kaniko's model: chroot.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

import ocibuild
from tests.core.rootfs_base import busybox_layers, debian_full_layers, debian_layers, world_dir
from tests.fixtures.debian_repo import ar_archive

SOURCE_ROOT = str(Path(ocibuild.__file__).resolve().parent.parent)
POD = str(Path(__file__).resolve().parent / "rootfs_pod.py")
NOBODY = 65534


def _seccomp_available() -> bool:
    return subprocess.run(["/usr/bin/python3", "-c", "import seccomp"],
                          capture_output=True).returncode == 0


@pytest.fixture()
def work():
    path = world_dir(tempfile.mkdtemp(prefix="ocibuild-rootfs-test-"))
    shutil.copytree(os.path.join(SOURCE_ROOT, "ocibuild"), path / "src" / "ocibuild",
                    ignore=shutil.ignore_patterns("__pycache__"))
    os.chmod(path / "src", 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pod(work: Path, layers, steps, where: str) -> dict:
    """Run `steps` on `layers` in a fresh tree, as `where` ("pod", "user" or "root")."""
    if where != "root" and os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("setpriv is needed to run as an unprivileged user")
    if where == "pod" and not _seccomp_available():
        pytest.fail("python3-seccomp is missing: run tests/install-test-tools")
    if where == "root" and os.geteuid() != 0:
        pytest.skip("the root mechanism needs the tests to run as root")
    run_dir = work / f"run-{where}-{len(list(work.iterdir()))}"
    run_dir.mkdir()
    out = run_dir / "out"
    out.mkdir()
    spec = {"source_root": str(work / "src"), "layers": layers, "root": str(run_dir / "root"),
            "out": str(out), "steps": steps, "seccomp": where == "pod"}
    (run_dir / "spec.json").write_text(json.dumps(spec))
    argv = ["/usr/bin/python3", POD, str(run_dir / "spec.json")]
    if where != "root" and os.geteuid() == 0:
        for path in (run_dir, out):
            os.chown(path, NOBODY, NOBODY)
        argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                "--inh-caps=-all"] + argv
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": str(run_dir), "TMPDIR": str(run_dir)}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["logs"] = [(out / f"step{i}.log").read_text(errors="replace")
                      for i in range(len(result["steps"]))]
    result["out"] = out
    return result


def entries(result: dict, step: int) -> dict:
    digest = result["steps"][step]["layer"]["digest"].split(":")[1]
    data = gzip.decompress((result["out"] / "blobs" / "sha256" / digest).read_bytes())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        found = {}
        for m in tar:
            content = tar.extractfile(m).read() if m.isfile() else None
            found[m.name] = (m.type.decode(), oct(m.mode), m.uid, m.gid, m.linkname or None,
                             (m.devmajor, m.devminor) if m.ischr() or m.isblk() else None,
                             content)
    return found


WHERE = ["pod", "user", "root"]
EXPECTED_MECHANISM = {"pod": "proot", "root": "root"}


def _mechanism_ok(where: str, result: dict) -> None:
    mechanisms = {s["result"]["mechanism"] for s in result["steps"]}
    print(f"{where}: RUN mechanism {sorted(mechanisms)}")  # for the record (pytest -s)
    if where == "user":
        assert mechanisms <= {"userns", "proot"}, mechanisms
    else:
        assert mechanisms == {EXPECTED_MECHANISM[where]}, (mechanisms, result.get("error"))


@pytest.mark.parametrize("where", WHERE)
def test_shell_steps_add_change_and_delete_files(work, where):
    layers = busybox_layers(work)
    result = pod(work, layers, [
        {"argv": ["/bin/sh", "-c", "echo hi > /etc/motd && mkdir -p /app && echo a > /app/a "
                                   "&& rm /etc/group && ln -s /app/a /app/link"]},
        {"argv": ["/bin/sh", "-c", "rm /app/a && echo b > /app/b && chmod 4755 /app/b"]},
        {"argv": ["/bin/sh", "-c", "exit 3"]},
    ], where)
    assert "error" not in result, result["error"]
    _mechanism_ok(where, result)
    assert [s["result"]["exit_code"] for s in result["steps"]] == [0, 0, 3], result["logs"]
    assert entries(result, 0) == {
        "app": ("5", "0o755", 0, 0, None, None, None),
        "app/a": ("0", "0o644", 0, 0, None, None, b"a\n"),
        "app/link": ("2", "0o777", 0, 0, "/app/a", None, None),
        "etc": ("5", "0o755", 0, 0, None, None, None),
        "etc/.wh.group": ("0", "0o644", 0, 0, None, None, b""),
        "etc/motd": ("0", "0o644", 0, 0, None, None, b"hi\n"),
    }
    assert entries(result, 1) == {
        "app": ("5", "0o755", 0, 0, None, None, None),
        "app/.wh.a": ("0", "0o644", 0, 0, None, None, b""),
        "app/b": ("0", "0o4755", 0, 0, None, None, b"b\n"),
    }
    assert entries(result, 2) == {}


@pytest.mark.parametrize("where", WHERE)
def test_a_step_as_user_owns_what_it_makes(work, where):
    layers = busybox_layers(work)
    result = pod(work, layers, [
        {"argv": ["/bin/sh", "-c", "mkdir /home && mkdir -m 777 /home/app"]},
        {"argv": ["/bin/sh", "-c", "id -u > /home/app/id && echo $HOME > /home/app/home"],
         "user": [1000, 1000], "cwd": "/home/app", "env": {"HOME": "/home/app"}},
    ], where)
    assert "error" not in result, result["error"]
    _mechanism_ok(where, result)
    layer = entries(result, 1)
    assert layer["home/app/id"] == ("0", "0o644", 1000, 1000, None, None, b"1000\n")
    assert layer["home/app/home"][6] == b"/home/app\n"
    assert layer["home/app"][:4] == ("5", "0o777", 0, 0)


def _deb(path: Path) -> str:
    """A package whose files dpkg must chown (a setgid binary owned by group 42, a directory
    owned by 1000) and whose postinst chowns and makes a device (through python3, a dynamically
    linked program, as real maintainer scripts call chown and mknod)."""
    def tar(members) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.GNU_FORMAT) as t:
            for name, kind, mode, uid, gid, data in members:
                info = tarfile.TarInfo(name)
                info.type, info.mode, info.uid, info.gid, info.size = kind, mode, uid, gid, len(data)
                t.addfile(info, io.BytesIO(data))
        return buf.getvalue()
    postinst = (b"#!/bin/sh\nset -e\npython3 -c \"import os; os.chown('/srv/data', 7, 7); "
                b"os.mknod('/srv/null', 0o20666, os.makedev(1, 3))\"\n")
    control = tar([("./control", tarfile.REGTYPE, 0o644, 0, 0,
                    b"Package: ownertest\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\n"
                    b"Description: test\n"),
                   ("./postinst", tarfile.REGTYPE, 0o755, 0, 0, postinst)])
    data = tar([("./usr/", tarfile.DIRTYPE, 0o755, 0, 0, b""),
                ("./usr/bin/", tarfile.DIRTYPE, 0o755, 0, 0, b""),
                ("./usr/bin/crontab", tarfile.REGTYPE, 0o2755, 0, 42, b"#!/bin/sh\n"),
                ("./srv/", tarfile.DIRTYPE, 0o755, 0, 0, b""),
                ("./srv/data", tarfile.REGTYPE, 0o640, 0, 0, b"d"),
                ("./srv/home/", tarfile.DIRTYPE, 0o750, 1000, 1000, b"")])
    deb = path / "ownertest_1.0_all.deb"
    deb.write_bytes(ar_archive([("debian-binary", b"2.0\n"), ("control.tar.gz", control),
                                ("data.tar.gz", data)]))
    deb.chmod(0o644)
    return str(deb)


@pytest.mark.parametrize("where", WHERE)
def test_dpkg_install_keeps_owners_setgid_and_devices(work, where):
    layers = debian_layers(work)
    deb = _deb(work)
    # The .deb goes in through a layer, as COPY would put it.
    copy = work / f"copy-{where}.tar"
    with tarfile.open(copy, "w") as t:
        t.add(deb, "pkgs/ownertest.deb")
    copy.chmod(0o644)
    result = pod(work, layers + [(str(copy), "application/vnd.oci.image.layer.v1.tar")], [
        # dpkg by its path: busybox's sh would run its own (static) dpkg applet for "dpkg".
        {"argv": ["/bin/sh", "-c", "/usr/bin/dpkg -i /pkgs/ownertest.deb"]},
        {"argv": ["/bin/sh", "-c", "/usr/bin/python3 -c \"import os; os.chown('/srv/home', 0, 0)\"; "
                                   "/usr/bin/python3 -c \"import os, stat; st = os.stat('/srv/data'); "
                                   "n = os.stat('/srv/null'); print(st.st_uid, st.st_gid, "
                                   "stat.S_ISCHR(n.st_mode), os.major(n.st_rdev))\" > /srv/listing"]},
    ], where)
    assert "error" not in result, result["error"]
    _mechanism_ok(where, result)
    assert [s["result"]["exit_code"] for s in result["steps"]] == [0, 0], "\n".join(result["logs"])
    layer = entries(result, 0)
    assert layer["usr/bin/crontab"][:4] == ("0", "0o2755", 0, 42)
    assert layer["srv/data"][:4] == ("0", "0o640", 7, 7)
    assert layer["srv/home"][:4] == ("5", "0o750", 1000, 1000)
    assert layer["srv/null"][:6] == ("3", "0o644", 0, 0, None, (1, 3))  # umask 022, as root
    assert layer["var/lib/dpkg/status"][6].startswith(b"Package: ownertest\nStatus: install ok installed")
    second = entries(result, 1)
    assert second["srv/home"][:4] == ("5", "0o750", 0, 0)
    # Inside the step, programs see the image's owners and device, not the build user's.
    assert second["srv/listing"][6] == b"7 7 True 1\n"
    if where != "root":
        assert {s["result"]["ownership"] for s in result["steps"]} == {"fakeroot"}


@pytest.fixture(scope="module")
def full_base():
    path = world_dir(tempfile.mkdtemp(prefix="ocibuild-rootfs-debian-"))
    yield debian_full_layers(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("where", WHERE)
def test_useradd_and_chown_to_the_new_user(work, full_base, where):
    result = pod(work, full_base, [
        {"argv": ["/bin/sh", "-c", "useradd -m -u 1001 -s /bin/sh app && mkdir /data "
                                   "&& chown app:app /data && chmod 2770 /data "
                                   "&& install -o app -m 4750 /bin/true /data/tool"]},
        {"argv": ["/bin/sh", "-c", "id > /data/whoami; touch /data/made"],
         "user": [1001, 1001], "cwd": "/data"},
    ], where)
    assert "error" not in result, result["error"]
    _mechanism_ok(where, result)
    assert [s["result"]["exit_code"] for s in result["steps"]] == [0, 0], "\n".join(result["logs"])
    layer = entries(result, 0)
    assert b"\napp:x:1001:1001::/home/app:/bin/sh\n" in layer["etc/passwd"][6]
    assert layer["etc/shadow"][:4] == ("0", "0o640", 0, 42)
    assert layer["home/app"][:4] == ("5", "0o700", 1001, 1001)
    assert layer["home/app/.bashrc"][2:4] == (1001, 1001)
    assert layer["data"][:4] == ("5", "0o2770", 1001, 1001)
    # The group of the set-gid /data, as the kernel gives it (fakeroot alone would say 0).
    assert layer["data/tool"][:4] == ("0", "0o4750", 1001, 1001)
    second = entries(result, 1)
    assert second["data/whoami"][6] == b"uid=1001(app) gid=1001(app) groups=1001(app)\n"
    assert second["data/made"][:4] == ("0", "0o644", 1001, 1001)


@pytest.mark.parametrize("where", WHERE)
def test_apt_get_install_from_a_mirror_on_loopback(work, full_base, where, tmp_path):
    from tests.fixtures.debian_repo import DebianRepo, make_deb

    repo_root = world_dir(str(work / "repo"))
    with DebianRepo(repo_root) as repo:
        repo.add(make_deb(tmp_path, "hello-run", files={
            "usr/share/hello-run/greeting": b"hello\n",
            "usr/bin/hello-run": (b"#!/bin/sh\necho hello\n", 0o4755)}))
        repo.publish()
        keyring = work / "test-archive.gpg"
        shutil.copy(repo.keyring, keyring)
        keyring.chmod(0o644)
        copy = work / f"apt-{where}.tar"
        with tarfile.open(copy, "w") as t:
            t.add(keyring, "etc/apt/keyrings/test.gpg")
            line = f"deb [signed-by=/etc/apt/keyrings/test.gpg] {repo.url} testing main\n".encode()
            info = tarfile.TarInfo("etc/apt/sources.list")
            info.size = len(line)
            t.addfile(info, io.BytesIO(line))
        copy.chmod(0o644)
        result = pod(work, full_base + [(str(copy), "application/vnd.oci.image.layer.v1.tar")], [
            {"argv": ["/bin/sh", "-c", "apt-get -o APT::Sandbox::User=root update && "
                                       "apt-get -o APT::Sandbox::User=root install -y hello-run"
                                       " && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin"],
             "env": {"DEBIAN_FRONTEND": "noninteractive"}},
        ], where)
    assert "error" not in result, result["error"]
    _mechanism_ok(where, result)
    assert [s["result"]["exit_code"] for s in result["steps"]] == [0], "\n".join(result["logs"])
    layer = entries(result, 0)
    assert layer["usr/share/hello-run/greeting"] == ("0", "0o644", 0, 0, None, None, b"hello\n")
    assert layer["usr/bin/hello-run"][:4] == ("0", "0o4755", 0, 0)
    assert b"Package: hello-run\nStatus: install ok installed" in layer["var/lib/dpkg/status"][6]
    assert not [p for p in layer if p.startswith("var/lib/apt/lists/") and "partial" not in p]


@pytest.mark.parametrize("where", WHERE)
def test_what_a_static_binarys_chown_gives_under_each_mechanism(work, where):
    """busybox-static's chown bypasses fakeroot: proot -0 makes it 'succeed' and it is lost,
    a user namespace refuses it (only the build user is mapped), root does it. Each result
    says so."""
    result = pod(work, busybox_layers(work), [
        {"argv": ["/bin/sh", "-c", "touch /x && chown 1000:1000 /x"]},
    ], where)
    assert "error" not in result, result["error"]
    _mechanism_ok(where, result)
    step = result["steps"][0]["result"]
    mechanism = step["mechanism"]
    if mechanism == "root":
        assert (step["exit_code"], step["ownership"], step["lost"]) == (0, "real", [])
        assert entries(result, 0)["x"][:4] == ("0", "0o644", 1000, 1000)
        return
    assert step["ownership"] == "none"
    assert step["lost"] == ["chown and mknod are not recorded: the image has no glibc as new "
                            "as the host's libfakeroot needs"]
    if mechanism == "proot":
        assert step["exit_code"] == 0
        assert entries(result, 0)["x"][:4] == ("0", "0o644", 0, 0)
    else:
        assert step["exit_code"] == 1
        assert "Invalid argument" in result["logs"][0]


@pytest.mark.parametrize("where", WHERE)
def test_an_image_cannot_aim_the_executors_own_files_at_the_host(work, where):
    """/.ocibuild-run is where the userns executor puts libfakeroot: an image holding it as
    a symlink to a host directory is refused, and nothing is written there."""
    victim = world_dir(str(work / "victim"))
    if os.geteuid() == 0:
        os.chown(victim, NOBODY, NOBODY)
    hostile = work / f"hostile-{where}.tar"
    with tarfile.open(hostile, "w") as t:
        info = tarfile.TarInfo(".ocibuild-run")
        info.type, info.linkname = tarfile.SYMTYPE, str(victim)
        t.addfile(info)
    hostile.chmod(0o644)
    result = pod(work, debian_layers(work) + [(str(hostile), "application/vnd.oci.image.layer.v1.tar")],
                 [{"argv": ["/bin/sh", "-c", "true"]}], where)
    assert os.listdir(victim) == []
    if result.get("error"):
        assert result["error"] == ("the image has /.ocibuild-run, a name RUN steps reserve for "
                                   "their own files; remove it in the step that made it")
    else:  # root and proot never write there
        assert result["steps"][0]["result"]["mechanism"] in ("root", "proot")


@pytest.mark.parametrize("where", WHERE)
def test_unreadable_and_set_uid_files_made_by_static_binaries(work, where):
    """A static chmod 000 leaves a file the build user cannot read, chmod u+s a set-uid file of
    the build user's on the host: both are kept as modes in the layer, and on disk the tree is
    usable and set-id free again for the next step."""
    result = pod(work, busybox_layers(work), [
        {"argv": ["/bin/sh", "-c", "echo s > /secret && chmod 000 /secret && mkdir /locked && "
                                   "echo x > /locked/x && chmod 000 /locked && "
                                   "cp /bin/busybox /suid && chmod 4755 /suid"]},
        {"argv": ["/bin/sh", "-c", "echo more > /after"]},
    ], where)
    assert "error" not in result, result["error"]
    _mechanism_ok(where, result)
    layer = entries(result, 0)
    assert layer["secret"] == ("0", "0o0", 0, 0, None, None, b"s\n")
    assert layer["locked"][:2] == ("5", "0o0") and layer["locked/x"][6] == b"x\n"
    assert layer["suid"][:2] == ("0", "0o4755")
    assert list(entries(result, 1)) == ["after"]
