"""Looking a user or a group up in a base's /etc/passwd or /etc/group, as every reader would.

Three kinds of reader meet an image's account files: C libraries (glibc's strtoul reads
"+1000", " 1000" and "4294968296" as 1000; musl reads digits only), Go (runc and docker's
builder: moby/sys/user trims each line's blanks and reads an id with Atoi, 0 when it is not
a number), and this tool (`USER` of a RUN step, `COPY --chown`, WORKDIR's owner, HOME).
A hostile base can write a line each reads differently: then the step would run, or the files
be owned, as someone other than the image's runtime takes the name for. So a look-up takes
the first line that ANY reader would take, and that line must be read the same by all:
its name exact (no blank Go would trim), its ids plain decimal digits, at most MAX_ID.
Otherwise the look-up is one error naming the file and line. Lines end at "\\n" only, as in
every libc (not at "\\x85", "\\u2028" or the other breaks str.splitlines knows); a NUL byte
is refused, as accounts.py refuses it (C readers stop at it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Set

from ocibuild.errors import OciBuildError
from ocibuild.untrusted import shown

MAX_BYTES = 4 << 20
MAX_ID = (1 << 32) - 2  # 2^32-1 is (uid_t) -1: "no change" to chown
_GO_SPACE = " \t\n\v\f\r\x85\xa0"


@dataclass(frozen=True)
class Entry:
    number: int  # 1-based line number, for messages
    fields: List[str]


def entries(data: bytes, where: str) -> List[Entry]:
    """The lines of `data` (the file `where` names), split into fields."""
    if b"\0" in data:
        raise OciBuildError(f"{where} holds a NUL byte, which C libraries and Go read "
                            "differently; fix the image")
    text = data.decode("utf-8", "surrogateescape")
    return [Entry(i + 1, line.split(":")) for i, line in enumerate(text.split("\n")) if line]


def plain_id(text: str) -> Optional[int]:
    """A plain decimal id every reader takes as this number, else None."""
    if text and text.isascii() and text.isdigit() and len(text) <= 10:
        value = int(text)
        if value <= MAX_ID:
            return value
    return None


def _go_atoi(text: str) -> int:
    body = text[1:] if text[:1] in "+-" else text
    if body and body.isascii() and body.isdigit():
        value = int(body) * (-1 if text[:1] == "-" else 1)
        if -(1 << 63) <= value < (1 << 63):
            return value
    return 0


def readings(text: str) -> Set[int]:
    """Every id some reader takes out of an id field."""
    from ocibuild.accounts import libc_ids

    return libc_ids(text) | {_go_atoi(text)}


def _names(entry: Entry) -> Set[str]:
    raw = entry.fields[0]
    go = ":".join(entry.fields).strip(_GO_SPACE).split(":")[0]
    return {raw, go}


def _checked(entry: Entry, where: str, id_fields: int) -> Entry:
    name = entry.fields[0]
    if name != name.strip(_GO_SPACE) or len(entry.fields) < 2 + id_fields or any(
            plain_id(f) is None for f in entry.fields[2:2 + id_fields]):
        shown_line = ":".join(entry.fields)[:200]
        raise OciBuildError(
            f"{where} line {entry.number} ({shown(shown_line)}): readers of the image take "
            "this entry differently (a blank around the name, or an id that is not plain "
            f"decimal digits from 0 to {MAX_ID}); fix the image's file")
    return entry


def by_name(rows: List[Entry], name: str, where: str, id_fields: int) -> Optional[Entry]:
    """The entry named `name`; `id_fields`: how many ids follow the password (passwd 2,
    group 1)."""
    for entry in rows:
        if name in _names(entry):
            return _checked(entry, where, id_fields)
    return None


def by_id(rows: List[Entry], number: int, where: str, id_fields: int) -> Optional[Entry]:
    """The first entry whose first id (uid, gid) is `number`."""
    for entry in rows:
        if len(entry.fields) > 2 and number in readings(entry.fields[2]):
            return _checked(entry, where, id_fields)
    return None
