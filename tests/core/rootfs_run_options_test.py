"""RUN step options at the engine level (ocibuild.rootfs.run), run for real under each
mechanism (tests/core/rootfs_run_test.py's "pod" = proot under a seccomp filter, "user" =
userns when the kernel allows it, "root" = chroot): mounts seen by the step and absent from
its layer (their mount points too), read-only enforced where the kernel can, --network=none
cutting a loopback server off, supplementary groups, and the timeout."""

from __future__ import annotations

import os
import socketserver
import threading
from pathlib import Path

import pytest

from tests.core.rootfs_base import busybox_layers
from tests.core.rootfs_run_test import WHERE, _mechanism_ok, entries, pod, work  # noqa: F401

READ_ONLY_LOST = ("read-only mounts are writable under proot (the writes go to a throw-away "
                  "copy, never to the tree nor to the mount's source)")


def _open(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("where", WHERE)
def test_mounts_are_seen_by_the_step_and_never_layered(work, where):
    src = _open(work / f"src-{where}", 0o777)
    (src / "in.txt").write_text("from the bind\n")
    (src / "in.txt").chmod(0o666)  # so that only the mount can refuse the write
    cache = _open(work / f"cache-{where}", 0o777)
    secret = work / f"secret-{where}"
    secret.write_text("s3cret\n")
    secret.chmod(0o444)
    empty = _open(work / f"tmpfs-{where}", 0o777)
    script = ("cat /src/in.txt /run/secrets/token > /seen && ls -a /scratch >> /seen && "
              "echo more > /cache/made && (echo x > /src/in.txt) 2>/dev/null && "
              "echo writable > /ro || echo read-only > /ro")
    result = pod(work, busybox_layers(work), [
        {"argv": ["/bin/sh", "-c", script],
         "mounts": [["/src", str(src), True], ["/cache", str(cache), False],
                    ["/run/secrets/token", str(secret), True], ["/scratch", str(empty), False]]},
    ], where)
    assert "error" not in result, result["error"]
    _mechanism_ok(where, result)
    mechanism = result["steps"][0]["result"]["mechanism"]
    assert result["steps"][0]["result"]["exit_code"] == 0, result["logs"]
    ro = b"writable\n" if mechanism == "proot" else b"read-only\n"
    # Neither the mounts' contents nor the mount points made for them (/src, /cache,
    # /run/secrets/token with /run and /run/secrets, /scratch) are in the layer.
    assert entries(result, 0) == {
        "ro": ("0", "0o644", 0, 0, None, None, ro),
        "seen": ("0", "0o644", 0, 0, None, None, b"from the bind\ns3cret\n.\n..\n"),
    }
    assert (cache / "made").read_text() == "more\n"
    expected_lost = [READ_ONLY_LOST] if mechanism == "proot" else []
    assert [x for x in result["steps"][0]["result"]["lost"] if "mount" in x] == expected_lost
    assert (src / "in.txt").read_text() == ("x\n" if mechanism == "proot" else "from the bind\n")


@pytest.mark.parametrize("where", WHERE)
def test_a_mount_over_an_existing_directory_hides_it_and_keeps_it(work, where):
    src = _open(work / f"src-{where}")
    (src / "a").write_text("mounted\n")
    result = pod(work, busybox_layers(work), [
        {"argv": ["/bin/sh", "-c", "mkdir /app && echo image > /app/a"]},
        {"argv": ["/bin/sh", "-c", "cat /app/a > /seen; echo made > /new"],
         "mounts": [["/app", str(src), False]]},
        {"argv": ["/bin/sh", "-c", "cat /app/a > /after"]},
    ], where)
    assert "error" not in result, result["error"]
    assert entries(result, 1) == {"new": ("0", "0o644", 0, 0, None, None, b"made\n"),
                                  "seen": ("0", "0o644", 0, 0, None, None, b"mounted\n")}
    assert entries(result, 2) == {"after": ("0", "0o644", 0, 0, None, None, b"image\n")}


@pytest.mark.parametrize("where", WHERE)
def test_mount_targets_through_a_symlink_stay_in_the_tree(work, where):
    """/var/run -> /run as in Debian: the target is followed inside the image, never out."""
    src = _open(work / f"src-{where}")
    (src / "f").write_text("x\n")
    result = pod(work, busybox_layers(work), [
        {"argv": ["/bin/sh", "-c", "mkdir -p /var /run && ln -s /run /var/run && "
                                   "ln -s ../../.. /escape"]},
        {"argv": ["/bin/sh", "-c", "cat /run/m/f /escape/etc/x/f > /seen"],
         "mounts": [["/var/run/m", str(src), True], ["/escape/etc/x", str(src), True]]},
    ], where)
    assert "error" not in result, result["error"]
    assert result["steps"][1]["result"]["exit_code"] == 0, result["logs"]
    assert entries(result, 1) == {"seen": ("0", "0o644", 0, 0, None, None, b"x\nx\n")}
    assert not os.path.exists("/etc/x")


@pytest.mark.parametrize("target", ["/", "/dev/shm", "/proc/x", "/.ocibuild-run/x"])
def test_mount_targets_that_cannot_be_mounted_are_refused(work, target):
    src = _open(work / "src")
    result = pod(work, busybox_layers(work), [
        {"argv": ["/bin/true"], "mounts": [[target, str(src), True]]}], "root"
        if os.geteuid() == 0 else "user")
    first = target.strip("/").split("/")[0]
    shown = "/" + first if first else "/"
    assert result["error"] == (
        f"RUN --mount target {target}: cannot mount over {shown} (the step's root, or where "
        "the host's /dev, /proc and /sys are bound); choose another target")


class _Hello(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"hello\n")


@pytest.fixture()
def hello():
    """A TCP server on the host's loopback that greets whoever connects."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


@pytest.mark.parametrize("where", WHERE)
def test_network_none_cuts_the_step_off_and_keeps_loopback(work, where, hello):
    fetch = (f"nc 127.0.0.1 {hello} < /dev/null > /got || echo cut > /got; "
             "ifconfig lo | grep -q UP && echo up > /lo || echo down > /lo; "
             "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort > /ifaces")
    result = pod(work, busybox_layers(work), [
        {"argv": ["/bin/sh", "-c", fetch], "network": "default"},
        {"argv": ["/bin/sh", "-c", fetch], "network": "none"},
    ], where)
    mechanism = "proot" if where == "pod" else None
    if mechanism == "proot" or (where == "user" and "error" in result and "proot" in
                                result["error"]):
        assert result["error"] == (
            "RUN --network=none cannot be honoured by the RUN mechanism 'proot' (chosen "
            "because user namespaces are refused here): it has no network namespace to cut "
            "the step's network; run the build as root or where user namespaces are "
            "allowed, or drop --network=none")
        return
    assert "error" not in result, result["error"]
    assert entries(result, 0)["got"][6] == b"hello\n", result["logs"]
    cut = entries(result, 1)
    assert cut["got"][6] == b"cut\n"
    assert cut["lo"][6] == b"up\n"
    assert cut["ifaces"][6] == b"lo\n"


@pytest.mark.parametrize("where", WHERE)
def test_supplementary_groups_under_each_mechanism(work, where):
    result = pod(work, busybox_layers(work), [
        {"argv": ["/bin/sh", "-c", "id -G > /groups"], "user": [0, 0], "groups": [10, 20]},
    ], where)
    assert "error" not in result, result["error"]
    mechanism = result["steps"][0]["result"]["mechanism"]
    lost = result["steps"][0]["result"]["lost"]
    if mechanism == "root":
        assert entries(result, 0)["groups"][6] == b"0 10 20\n"
        assert lost == []
    else:
        assert entries(result, 0)["groups"][6] == b"0\n"
        assert (f"supplementary groups 10,20 are not given under {mechanism} (only the user's "
                "own uid and gid are mapped)") in lost


@pytest.mark.parametrize("where", WHERE)
def test_a_step_over_its_timeout_is_stopped(work, where):
    result = pod(work, busybox_layers(work), [
        {"argv": ["/bin/sh", "-c", "sleep 30"], "timeout": 1}], where)
    assert result["error"] == "the RUN step ['/bin/sh', '-c', 'sleep 30'] ran longer than 1 s " \
                              "and was stopped"


@pytest.mark.parametrize("where", WHERE)
def test_a_colon_in_a_mount_target_under_proot_is_refused(work, where):
    """proot's -b splits host:guest at a colon: such a target would bind somewhere else."""
    src = _open(work / f"src-{where}")
    (src / "f").write_text("x\n")
    result = pod(work, busybox_layers(work), [
        {"argv": ["/bin/sh", "-c", "cat /a:b/f > /seen"], "mounts": [["/a:b", str(src), True]]},
    ], where)
    if where == "pod":
        assert result["error"] == ("RUN --mount target /a:b: a path holding ':' cannot be "
                                   "given to proot's -b; choose another target")
        assert not list(work.glob("run-pod-*/root/a:b"))  # the stub made for it is gone
    elif result["steps"][0]["result"]["mechanism"] != "proot":
        assert entries(result, 0) == {"seen": ("0", "0o644", 0, 0, None, None, b"x\n")}


@pytest.mark.parametrize("where", WHERE)
def test_the_stub_clean_up_never_follows_a_symlink_the_step_made(work, where):
    """The step moves the mount point's parent away and puts a link to a host directory in
    its place: removing the stubs after the step must not rmdir the host's `n`."""
    src = _open(work / f"src-{where}")
    host = _open(work / f"host-{where}", 0o777)
    _open(host / "n", 0o777)
    result = pod(work, busybox_layers(work), [
        {"argv": ["/bin/sh", "-c", f"mv /m /moved && ln -s {host} /m"],
         "mounts": [["/m/n", str(src), True]]},
    ], where)
    assert "error" not in result, result["error"]
    assert result["steps"][0]["result"]["exit_code"] == 0, result["logs"]
    assert (host / "n").is_dir()
    assert entries(result, 0)["m"][:5] == ("2", "0o777", 0, 0, str(host))
