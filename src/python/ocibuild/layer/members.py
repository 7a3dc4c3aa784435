"""A layer's members, each with a reader of its bytes: the one shape in which the stage
model's materializer (ocibuild.dockerfile.content) and the RUN unpacker (ocibuild.rootfs
.unpack) read a tar, through the fast header reader (`fast`) or an open tarfile
(`of_tarfile`), and copy a member out (`copy_out`)."""

from __future__ import annotations

import tarfile
from typing import BinaryIO, Callable, Iterator, Tuple

from ocibuild.layer import headers

Read = Callable[[int], bytes]  # up to n more bytes of the member's data
Members = Iterator[Tuple[tarfile.TarInfo, Read]]
CHUNK = 1 << 20


def fast(stream: BinaryIO) -> Members:
    """As `ocibuild.layer.headers` reads them: what tarfile reads, or `headers.Unusual`
    before the member that reader does not vouch for."""
    reader = headers.Reader(stream)
    for member in reader:
        yield member, lambda n, m=member: reader.read(m, n)  # type: ignore[misc]


def of_tarfile(tar: tarfile.TarFile) -> Members:
    for member in tar:
        data = tar.extractfile(member) if member.isfile() else None
        yield member, (data.read if data is not None else (lambda n: b""))


def copy_out(read: Read, out: BinaryIO, size: int) -> int:
    """Up to `size` bytes of the member into `out`, a chunk at a time; how many there were
    (fewer: the layer ends inside the member, the caller's error)."""
    done = 0
    while done < size:
        chunk = read(min(CHUNK, size - done))
        if not chunk:
            break
        out.write(chunk)
        done += len(chunk)
    return done
