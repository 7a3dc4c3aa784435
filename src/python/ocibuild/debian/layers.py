"""Image layers from Debian packages, built without dpkg, root or maintainer scripts.

* A package layer is its `data.tar` as shipped (owners, modes, mtimes and link targets kept),
  with paths moved under `/usr` for merged-/usr (`bin`, `sbin`, `lib*` are symlinks into
  `/usr`, as on every Debian since bookworm), plus `/var/lib/dpkg/status.d/<package>` (the
  control paragraph) and `<package>.md5sums`, where distroless images keep them and where
  trivy, grype and syft look.
* The root layer holds the merged-/usr symlinks and the directories every image has.
* The config layer, on top, holds `/etc/passwd` and `/etc/group` (root and `nonroot`,
  65532), and the files maintainer scripts would have generated that programs need: the CA
  bundle `/etc/ssl/certs/ca-certificates.crt` when `ca-certificates` is installed.
"""

from __future__ import annotations

import io
import tarfile
from typing import BinaryIO, List, Optional, Tuple

from ocibuild.debian.deb import control_files, open_tar
from ocibuild.errors import OciBuildError

MERGED_USR = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
NONROOT = 65532
STATUS_DIR = "var/lib/dpkg/status.d"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"


def _normalize(name: str) -> str:
    name = name[2:] if name.startswith("./") else name.lstrip("/")
    name = name.rstrip("/")
    return "" if name == "." else name


def merged_usr(path: str) -> str:
    head, sep, rest = path.partition("/")
    return f"usr/{path}" if head in MERGED_USR and sep else path


def _info(name: str, kind: bytes, mode: int, *, size: int = 0, uid: int = 0, gid: int = 0,
          uname: str = "root", gname: str = "root", linkname: str = "",
          mtime: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, size
    info.uid, info.gid, info.uname, info.gname = uid, gid, uname, gname
    info.linkname, info.mtime = linkname, mtime
    return info


def _dirs(path: str) -> List[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _tar(out: BinaryIO) -> tarfile.TarFile:
    return tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8")


def write_package_layer(deb: str, out: BinaryIO, mtime: int = 0) -> str:
    """The package's layer tar into `out`; returns the package name."""
    control = control_files(deb)
    if "control" not in control:
        raise OciBuildError(f"{deb}: control.tar has no control file")
    paragraph = control["control"].decode("utf-8", "replace").strip() + "\n"
    package = next((line.split(":", 1)[1].strip() for line in paragraph.splitlines()
                    if line.startswith("Package:")), None)
    if not package:
        raise OciBuildError(f"{deb}: the control file names no Package")
    written = set()
    with _tar(out) as dest, open_tar(deb, "data") as src:
        for member in src:
            name = _normalize(member.name)
            if not name or name in MERGED_USR:
                continue  # the root ("./") and the merged-/usr symlinks live in the root layer
            name = merged_usr(name)
            if name in written and member.isdir():
                continue
            written.add(name)
            info = _info(name, member.type, member.mode, size=member.size if member.isfile() else 0,
                         uid=member.uid, gid=member.gid, uname=member.uname, gname=member.gname,
                         linkname=merged_usr(_normalize(member.linkname)) if member.islnk()
                         else member.linkname, mtime=member.mtime)
            if member.isfile():
                dest.addfile(info, src.extractfile(member))
            elif member.isdir() or member.issym() or member.islnk():
                dest.addfile(info)
            else:
                raise OciBuildError(f"{deb}: {member.name} is a device or FIFO; an unprivileged "
                                    "build does not ship those")
        for directory in _dirs(f"{STATUS_DIR}/x"):
            if directory not in written:
                dest.addfile(_info(directory, tarfile.DIRTYPE, 0o755, mtime=mtime))
        files = [(f"{STATUS_DIR}/{package}", paragraph.encode())]
        if "md5sums" in control:
            files.append((f"{STATUS_DIR}/{package}.md5sums", control["md5sums"]))
        for path, data in files:
            dest.addfile(_info(path, tarfile.REGTYPE, 0o644, size=len(data), mtime=mtime),
                         io.BytesIO(data))
    return package


def write_root_layer(out: BinaryIO, mtime: int = 0) -> None:
    with _tar(out) as dest:
        dest.addfile(_info("usr", tarfile.DIRTYPE, 0o755, mtime=mtime))
        for name in MERGED_USR:
            dest.addfile(_info(name, tarfile.SYMTYPE, 0o777, linkname=f"usr/{name}", mtime=mtime))
        for name in ("usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "etc", "var", "var/lib",
                     "var/lib/dpkg", STATUS_DIR, "home"):
            dest.addfile(_info(name, tarfile.DIRTYPE, 0o755, mtime=mtime))
        dest.addfile(_info("root", tarfile.DIRTYPE, 0o700, mtime=mtime))
        dest.addfile(_info("home/nonroot", tarfile.DIRTYPE, 0o700, uid=NONROOT, gid=NONROOT,
                           uname="nonroot", gname="nonroot", mtime=mtime))
        dest.addfile(_info("tmp", tarfile.DIRTYPE, 0o1777, mtime=mtime))


PASSWD = (b"root:x:0:0:root:/root:/sbin/nologin\n"
          b"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
          b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
GROUP = b"root:x:0:\nnogroup:x:65534:\nnonroot:x:65532:\n"


def ca_bundle(ca_certificates_deb: str) -> bytes:
    """What `update-ca-certificates` writes with the default configuration: every
    certificate of /usr/share/ca-certificates, in path order, concatenated."""
    certs: List[Tuple[str, bytes]] = []
    with open_tar(ca_certificates_deb, "data") as src:
        for member in src:
            name = _normalize(member.name)
            if member.isfile() and name.startswith("usr/share/ca-certificates/") \
                    and name.endswith(".crt"):
                extracted = src.extractfile(member)
                assert extracted is not None
                certs.append((name, extracted.read()))
    if not certs:
        raise OciBuildError(f"{ca_certificates_deb} holds no certificates")
    return b"".join(data if data.endswith(b"\n") else data + b"\n" for _, data in sorted(certs))


def write_config_layer(out: BinaryIO, ca_certificates_deb: Optional[str] = None,
                       mtime: int = 0) -> None:
    files: List[Tuple[str, bytes]] = [("etc/group", GROUP), ("etc/passwd", PASSWD)]
    if ca_certificates_deb:
        files.append((CA_BUNDLE, ca_bundle(ca_certificates_deb)))
    with _tar(out) as dest:
        made = set()
        for path, data in sorted(files):
            for directory in _dirs(path):
                if directory not in made:
                    made.add(directory)
                    dest.addfile(_info(directory, tarfile.DIRTYPE, 0o755, mtime=mtime))
            dest.addfile(_info(path, tarfile.REGTYPE, 0o644, size=len(data), mtime=mtime),
                         io.BytesIO(data))


