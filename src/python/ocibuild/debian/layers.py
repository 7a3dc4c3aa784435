"""Image layers from Debian packages, built without dpkg, root or maintainer scripts.

* A package layer is its `data.tar` as shipped (owners, modes, mtimes and link targets kept),
  with paths moved under `/usr` for merged-/usr (`bin`, `sbin`, `lib*` are symlinks into
  `/usr`, as on every Debian since bookworm), plus `/var/lib/dpkg/status.d/<package>` (the
  control paragraph) and `<package>.md5sums`, where distroless images keep them and where
  trivy, grype and syft look.
* A package is untrusted input: a member name with a `..` component, a whiteout or a control
  character, a path through a symlink earlier in the same package, a name replacing a
  symlink, a hardlink to anything but an earlier regular file, a device, FIFO or sparse
  file, a Package name outside Debian's syntax: each is an error naming the .deb and the
  member (`entries.LayerEntries`), so that no extractor, however naive, writes outside its
  root. The config layer, which reads every package, also checks the set of them as if
  each package's layer lay over all the others (`entries.check_set`), and its own entries
  with the same checker.
* The root layer holds the merged-/usr symlinks and the directories every image has.
* The config layer, on top, holds `/etc/passwd` and `/etc/group` (root and `nonroot`,
  65532), and the files maintainer scripts would have generated that programs need: the CA
  bundle `/etc/ssl/certs/ca-certificates.crt` when `ca-certificates` is installed, and
  alternatives links, tzdata's `/etc/localtime` and `/etc/os-release` (`effects`).
"""

from __future__ import annotations

import io
import tarfile
from typing import TYPE_CHECKING, BinaryIO, Dict, List, Optional, Sequence, Tuple

from ocibuild.debian.deb import control_files, member_data, open_tar, read_small
from ocibuild.debian.entries import DIR, FILE, HARDLINK, SYMLINK, LayerEntries, check_set
from ocibuild.debian.resolve import PACKAGE_NAME
from ocibuild.errors import OciBuildError
from ocibuild.untrusted import shown

if TYPE_CHECKING:
    from ocibuild.debian.effects import PackagePath

MERGED_USR = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
NONROOT = 65532
STATUS_DIR = "var/lib/dpkg/status.d"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
# Debian's bundle is about 220 KiB; the certificates are held in memory to be sorted.
MAX_CA_BUNDLE = 16 << 20


def _normalize(name: str, deb: str = "", what: str = "member") -> str:
    """`./usr/bin/x`, `/usr/bin/x` and `usr//bin/x/` are all `usr/bin/x` (dpkg strips the
    leading `./` and `/` too); a `..` component is refused: a naive extractor would write
    outside its root."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise OciBuildError(f"{deb}: the {what} {name!r} has a `..` component; refusing a "
                            "package that would write outside the image's root")
    return "/".join(parts)


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


def _kind(member: tarfile.TarInfo) -> str:
    return (DIR if member.isdir() else SYMLINK if member.issym() else HARDLINK
            if member.islnk() else FILE)


def _package_name(deb: str, paragraph: str) -> str:
    package = next((line.split(":", 1)[1].strip() for line in paragraph.splitlines()
                    if line.startswith("Package:")), None)
    if not package:
        raise OciBuildError(f"{deb}: the control file names no Package")
    # The name becomes a path under var/lib/dpkg/status.d: Debian policy's syntax only.
    if not PACKAGE_NAME.fullmatch(package):
        raise OciBuildError(f"{deb}: the control file's Package {package[:80]!r} is not a "
                            "Debian package name (lowercase letters, digits, `+`, `-`, `.`)")
    return package


def write_package_layer(deb: str, out: BinaryIO, mtime: int = 0) -> str:
    """The package's layer tar into `out`; returns the package name.

    Member names are normalised as dpkg does (leading `./` and `/` dropped); a `..`
    component, a path through an earlier symlink, a hardlink to anything but an earlier
    regular file, a device, FIFO or sparse file are refused (`entries.LayerEntries`). Symlink targets
    are kept verbatim: absolute ones are normal in Debian and resolve inside the image."""
    return write_packages_layer([deb], out, mtime)[0]


def _control(deb: str) -> Tuple[str, str, Dict[str, bytes]]:
    control = control_files(deb)
    if "control" not in control:
        raise OciBuildError(f"{deb}: control.tar has no control file")
    paragraph = control["control"].decode("utf-8", "replace").strip() + "\n"
    return _package_name(deb, paragraph), paragraph, control


def write_packages_layer(debs: List[str], out: BinaryIO, mtime: int = 0) -> List[str]:
    """One layer holding several packages (`write_package_layer` for each, in one tar);
    returns the package names in the order written.

    The packages are written sorted by name whatever the order of `debs`, so a layer's bytes
    depend only on its .debs; each package's files, then its status.d entries, exactly as a
    one-package layer has them (a one-package layer is byte-identical to it). The checks of
    `entries.LayerEntries` hold across the layer's packages. Two .debs of one package are refused."""
    controls = sorted((_control(deb) + (deb,) for deb in debs), key=lambda c: (c[0], c[3]))
    for (a, *_, deb_a), (b, *_, deb_b) in zip(controls, controls[1:]):
        if a == b:
            raise OciBuildError(f"{deb_a} and {deb_b} are both the package {a}; a layer "
                                "holds one version of a package")
    entries = LayerEntries(controls[0][3] if controls else "", root_below())
    with _tar(out) as dest:
        for package, paragraph, control, deb in controls:
            entries.start(deb)
            _write_package(dest, entries, deb, package, paragraph, control, mtime)
    return [c[0] for c in controls]


def _write_package(dest: tarfile.TarFile, entries: LayerEntries, deb: str, package: str,
                   paragraph: str, control: Dict[str, bytes], mtime: int) -> None:
    with open_tar(deb, "data") as src:
        for member in src:
            name = _normalize(member.name, deb)
            if not name or name in MERGED_USR:
                continue  # the root ("./") and the merged-/usr symlinks live in the root layer
            name = merged_usr(name)
            if not (member.isdir() or member.issym() or member.islnk() or member.isfile()) \
                    or member.issparse():
                raise OciBuildError(f"{deb}: {shown(member.name)} is a device, FIFO or sparse "
                                    "file; an unprivileged build does not ship those")
            target = merged_usr(_normalize(member.linkname, deb, "hardlink target")) \
                if member.islnk() else ""
            if not entries.admit(name, _kind(member), linkname=target, raw=member.name,
                                 raw_linkname=member.linkname):
                continue
            info = _info(name, member.type, member.mode, size=member.size if member.isfile() else 0,
                         uid=member.uid, gid=member.gid, uname=member.uname, gname=member.gname,
                         linkname=target or member.linkname, mtime=member.mtime)
            if member.isfile():
                dest.addfile(info, member_data(src, member, f"{deb}: data.tar"))
            else:
                dest.addfile(info)
    files = [(f"{STATUS_DIR}/{package}", paragraph.encode())]
    if "md5sums" in control:
        files.append((f"{STATUS_DIR}/{package}.md5sums", control["md5sums"]))
    for directory in _dirs(f"{STATUS_DIR}/x"):
        if entries.admit(directory, DIR):
            dest.addfile(_info(directory, tarfile.DIRTYPE, 0o755, mtime=mtime))
    for path, data in files:
        entries.admit(path, FILE)  # not under a symlink
        dest.addfile(_info(path, tarfile.REGTYPE, 0o644, size=len(data), mtime=mtime),
                     io.BytesIO(data))


ROOT_LAYER = "the merged-/usr root layer"


def _root_entries(mtime: int) -> List[tarfile.TarInfo]:
    entries = [_info("usr", tarfile.DIRTYPE, 0o755, mtime=mtime)]
    entries += [_info(name, tarfile.SYMTYPE, 0o777, linkname=f"usr/{name}", mtime=mtime)
                for name in MERGED_USR]
    entries += [_info(name, tarfile.DIRTYPE, 0o755, mtime=mtime)
                for name in ("usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "etc", "var",
                             "var/lib", "var/lib/dpkg", STATUS_DIR, "home")]
    return entries + [
        _info("root", tarfile.DIRTYPE, 0o700, mtime=mtime),
        _info("home/nonroot", tarfile.DIRTYPE, 0o700, uid=NONROOT, gid=NONROOT,
              uname="nonroot", gname="nonroot", mtime=mtime),
        _info("tmp", tarfile.DIRTYPE, 0o1777, mtime=mtime)]


def root_below() -> Dict[str, Tuple[str, str]]:
    """The root layer's entries, as the layers above see them (`entries.Below`)."""
    return {info.name: (_kind(info), ROOT_LAYER) for info in _root_entries(0)}


def write_root_layer(out: BinaryIO, mtime: int = 0) -> None:
    with _tar(out) as dest:
        entries = LayerEntries(ROOT_LAYER)
        for info in _root_entries(mtime):
            entries.admit(info.name, _kind(info))
            dest.addfile(info)


PASSWD = (b"root:x:0:0:root:/root:/sbin/nologin\n"
          b"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
          b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
GROUP = b"root:x:0:\nnogroup:x:65534:\nnonroot:x:65532:\n"


def ca_bundle(ca_certificates_deb: str) -> bytes:
    """What `update-ca-certificates` writes with the default configuration: every
    certificate of /usr/share/ca-certificates, in path order, concatenated."""
    certs: List[Tuple[str, bytes]] = []
    total = 0
    with open_tar(ca_certificates_deb, "data") as src:
        for member in src:
            name = _normalize(member.name, ca_certificates_deb)
            if member.isfile() and name.startswith("usr/share/ca-certificates/") \
                    and name.endswith(".crt"):
                certs.append((name, read_small(src, member, f"{ca_certificates_deb}: data.tar")))
                total += len(certs[-1][1])
                if total > MAX_CA_BUNDLE:
                    raise OciBuildError(f"{ca_certificates_deb}: the certificates add up to over "
                                        f"{MAX_CA_BUNDLE} bytes; refusing to hold them in memory")
    if not certs:
        raise OciBuildError(f"{ca_certificates_deb} holds no certificates")
    return b"".join(data if data.endswith(b"\n") else data + b"\n" for _, data in sorted(certs))


def package_paths(deb: str) -> Dict[str, "PackagePath"]:
    """What a package's data.tar puts where in the image (merged-/usr applied)."""
    from ocibuild.debian.effects import PackagePath

    paths: Dict[str, PackagePath] = {}
    with open_tar(deb, "data") as src:
        for member in src:
            name = _normalize(member.name, deb)
            if not name or name in MERGED_USR:
                continue
            kind = "d" if member.isdir() else "l" if member.issym() else "f"
            paths[merged_usr(name)] = PackagePath(kind, member.mode & 0o7777, member.uid,
                                                  member.gid, member.uname, member.gname)
    return paths


Shipped = Dict[str, Dict[str, "PackagePath"]]  # deb -> what its layer holds


def _effects(debs: Sequence[str], suite: Optional[str]
             ) -> Tuple[List[Tuple[str, bytes]], List[Tuple[str, str]], Dict[str, "PackagePath"],
                        Shipped]:
    """Files and symlinks that maintainer scripts of `debs` would have made (`effects`),
    what all packages ship together, and what each ships (its status.d files too)."""
    from ocibuild.debian import effects

    files: List[Tuple[str, bytes]] = []
    links: List[Tuple[str, str]] = []
    paths: Dict[str, effects.PackagePath] = {}
    per_deb: Shipped = {}
    alternatives = []
    names = {}
    for deb in debs:
        control = control_files(deb)
        package = _package_name(deb, control.get("control", b"").decode("utf-8", "replace"))
        names[package] = deb, control
    for package in sorted(names):
        deb, control = names[package]
        own = package_paths(deb)
        paths.update(own)
        # The status.d entries follow the package's files, as its layer writes them; a
        # path the package ships itself keeps the package's kind.
        status = _status_paths(package, "md5sums" in control)
        per_deb[deb] = {**own, **{p: e for p, e in status.items() if p not in own}}
        if "postinst" in control:
            script = control["postinst"].decode("utf-8", "replace")
            alternatives += effects.parse_alternatives(script, deb)
    links += effects.alternative_links(alternatives, paths)
    if "ca-certificates" in names:
        files.append((CA_BUNDLE, ca_bundle(names["ca-certificates"][0])))
    if "tzdata" in names:
        links.append(("etc/localtime", effects.ZONEINFO_UTC))
        if effects.writes_etc_timezone(names["tzdata"][1].get("postinst", b"")):
            files.append(("etc/timezone", b"Etc/UTC\n"))
    if "netbase" in names:
        shipped = set(paths)
        files += [(path, data) for path, data in
                  effects.netbase_files(names["netbase"][1].get("postinst", b""))
                  if path not in shipped]
    if suite and "etc/os-release" not in paths and "usr/lib/os-release" not in paths:
        files.append(("usr/lib/os-release", effects.os_release(suite)))
        links.append(("etc/os-release", "../usr/lib/os-release"))
    return files, links, paths, per_deb


def _status_paths(package: str, md5sums: bool) -> Dict[str, "PackagePath"]:
    """The status.d entries a package's layer adds (`_write_package`)."""
    from ocibuild.debian.effects import PackagePath

    made = {d: PackagePath("d", 0o755, 0, 0, "root", "root") for d in _dirs(f"{STATUS_DIR}/x")}
    for name in [package] + ([f"{package}.md5sums"] if md5sums else []):
        made[f"{STATUS_DIR}/{name}"] = PackagePath("f", 0o644, 0, 0, "root", "root")
    return made


def _config_below(shipped: Shipped) -> Dict[str, Tuple[str, str]]:
    """What the layers under the config layer hold (a symlink wins over another kind)."""
    below = root_below()
    for deb in sorted(shipped):
        for path, entry in shipped[deb].items():
            if path not in below or entry.kind == SYMLINK:
                below[path] = (entry.kind, deb)
    return below


def write_config_layer(out: BinaryIO, ca_certificates_deb: Optional[str] = None,
                       mtime: int = 0, debs: Sequence[str] = (),
                       suite: Optional[str] = None) -> None:
    """passwd and group, plus what the maintainer scripts of `debs` would have made
    (`effects`: CA bundle, alternatives, tzdata, os-release from `suite`). Directories the
    packages ship keep their mode and owner here; nothing is written under a directory a
    package ships as a symlink."""
    from ocibuild.debian.effects import check_not_under_symlink

    files: List[Tuple[str, bytes]] = [("etc/group", GROUP), ("etc/passwd", PASSWD)]
    links: List[Tuple[str, str]] = []
    paths: Dict = {}
    shipped: Shipped = {}
    if debs:
        more, links, paths, shipped = _effects(debs, suite)
        files += more
        # The package layers were each checked alone; here, as the set they make.
        check_set({deb: {p: e.kind for p, e in own.items()} for deb, own in shipped.items()},
                  root_below())
    elif ca_certificates_deb:
        files.append((CA_BUNDLE, ca_bundle(ca_certificates_deb)))
    entries = sorted([(path, data, "") for path, data in files] +
                     [(path, b"", target) for path, target in links])
    checked = LayerEntries("the config layer", _config_below(shipped))
    with _tar(out) as dest:
        for path, data, target in entries:
            check_not_under_symlink(path, paths, "the config layer")
            for directory in _dirs(path):
                if checked.admit(directory, DIR, raw=f"/{directory}"):
                    shipped_dir = paths.get(directory)
                    if shipped_dir is not None and shipped_dir.kind == "d":
                        dest.addfile(_info(directory, tarfile.DIRTYPE, shipped_dir.mode,
                                           uid=shipped_dir.uid, gid=shipped_dir.gid,
                                           uname=shipped_dir.uname, gname=shipped_dir.gname,
                                           mtime=mtime))
                    else:
                        dest.addfile(_info(directory, tarfile.DIRTYPE, 0o755, mtime=mtime))
            checked.admit(path, SYMLINK if target else FILE, raw=f"/{path}")
            if target:
                dest.addfile(_info(path, tarfile.SYMTYPE, 0o777, linkname=target, mtime=mtime))
            else:
                dest.addfile(_info(path, tarfile.REGTYPE, 0o644, size=len(data), mtime=mtime),
                             io.BytesIO(data))
