"""How every reader of a tar this tool did not write opens it: tarfile, with extended headers
bounded.

tarfile reads whatever size a pax or GNU long-name header claims into memory (a 2 GiB long
name from a 2 MiB gzip layer), follows a chain of them by recursion (3,000 in a row, a 1.5 MB
layer, end in RecursionError), and converts a pax `GNU.sparse.size` or `GNU.sparse.map` with
int() unguarded (ValueError; a size of 10**30 made reading the member an OverflowError), and
takes a pax size of -5 (the members after it were then lost without a word; Go refuses it).
None of those is a TarError, so each reached the user as a traceback from whichever reader
met it: a base layer, a RUN step's parent, an ADDed archive, an OCI archive. Here each is a
`tarfile.ReadError`, which every reader already reports as the damaged input it is. A real archive has at most three extended headers before a member,
each a path or a few attributes.
"""

from __future__ import annotations

import tarfile
from typing import BinaryIO, Iterable, Optional, Tuple

EXTENDED = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
            tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
MAX_EXTENDED_HEADER = 1 << 20
MAX_EXTENDED_CHAIN = 16
MAX_SIZE = (1 << 63) - 1  # as Go's archive/tar (an int64)
# A Linux owner is a 32-bit uid_t; 2^32-1 is chown's "no change", which unpackers pass on.
MAX_OWNER = (1 << 32) - 1


def owner_fault(uid: int, gid: int) -> Optional[str]:
    """Why an owner cannot be a file's on Linux (a negative base-256 or pax number, or one
    past 32 bits), or None. Unpackers truncate such ids or fail on them; this tool refuses."""
    for what, value in (("uid", uid), ("gid", gid)):
        if not 0 <= value <= MAX_OWNER:
            return f"its {what} {value} is outside 0 to {MAX_OWNER}, the ids a Linux file can have"
    return None


# Linux's device numbers: a 12-bit major and a 20-bit minor (what mknod(2) takes).
MAX_MAJOR, MAX_MINOR = (1 << 12) - 1, (1 << 20) - 1


def device_fault(major: int, minor: int) -> Optional[str]:
    """Why a device member's numbers cannot be a Linux device's, or None."""
    if not (0 <= major <= MAX_MAJOR and 0 <= minor <= MAX_MINOR):
        return (f"its device numbers {major},{minor} are outside 0-{MAX_MAJOR},0-{MAX_MINOR}, "
                "what a Linux device can have")
    return None


XATTR = "SCHILY.xattr."
MAX_LINK = 4095  # PATH_MAX less its NUL: what symlink(2) takes


def xattr_names(pax_headers: dict) -> Tuple[str, ...]:
    return tuple(k[len(XATTR):] for k in pax_headers if k.startswith(XATTR))


def text_fault(texts: Iterable[Tuple[str, str]], xattrs: Iterable[str] = ()) -> Optional[str]:
    """Why a member's texts ((what, value): its link target, owner names) or xattr names
    cannot be a Linux file's nor be read back from a layer, or None. A NUL ends the text in a
    ustar field (`a\\0b` was written as a link to `a`), no system call takes one, and Go's
    archive/tar (docker's reader) refuses such a pax record; an xattr name that is empty or
    holds an '=' (which ends a pax keyword) names no xattr. A link target past PATH_MAX is
    an ENAMETOOLONG for every unpacker."""
    for what, value in texts:
        if "\0" in value:
            return (f"its {what} {value!r} holds a NUL byte, which no {what} can hold (Go's "
                    "archive/tar, docker's reader, refuses it)")
        size = len(value.encode("utf-8", "surrogateescape"))
        if what == "link target" and size > MAX_LINK:
            return (f"its link target is {size} bytes long, past the {MAX_LINK} a Linux "
                    "symlink can hold")
    for name in xattrs:
        if not name or "\0" in name or "=" in name:
            return (f"its xattr name {name!r} is empty or holds a NUL byte or an '=', which "
                    "no xattr's name can (Go's archive/tar, docker's reader, refuses it)")
    return None


class Bounded(tarfile.TarInfo):
    @classmethod
    def fromtarfile(cls, tar):  # type: ignore[override]
        depth = getattr(tar, "_ocibuild_chain", 0)
        if depth >= MAX_EXTENDED_CHAIN:
            raise tarfile.ReadError(f"more than {MAX_EXTENDED_CHAIN} extended headers in a "
                                    f"row at byte {tar.offset}")
        tar._ocibuild_chain = depth + 1
        try:
            member = super().fromtarfile(tar)
        except (ValueError, OverflowError) as err:
            raise tarfile.ReadError(f"an extended header tarfile cannot read at byte "
                                    f"{tar.offset} ({err})") from None
        finally:
            tar._ocibuild_chain = depth
        if not 0 <= member.size <= MAX_SIZE or any(not 0 <= n <= member.size
                                         for part in member.sparse or () for n in part):
            raise tarfile.ReadError(f"the member {member.name!r} claims {member.size} bytes "
                                    "or a sparse map past them")
        return member

    def _proc_member(self, tar):  # type: ignore[override]
        if self.type in EXTENDED and self.size > MAX_EXTENDED_HEADER:
            raise tarfile.ReadError(f"an extended header claims {self.size} bytes (at byte "
                                    f"{self.offset}), over {MAX_EXTENDED_HEADER}")
        return super()._proc_member(tar)


def open_stream(fileobj: BinaryIO, mode: str = "r|") -> tarfile.TarFile:
    """`fileobj` as a tar to read in order (mode "r|", or "r:" over a forward-only reader)."""
    return tarfile.open(fileobj=fileobj, mode=mode, tarinfo=Bounded)  # type: ignore[call-overload]
