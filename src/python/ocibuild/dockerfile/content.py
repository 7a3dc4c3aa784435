"""Where a file's bytes are: on disk already, or inside a layer blob (`fstree.LayerMember`).

`Blobs` knows the layer blobs of the images in a build (digest -> media type and opener).
`materialize` streams each layer that holds needed members once and copies those members
into numbered files in a work directory: the tar's names never name a file on disk, so a
hostile base cannot direct a write anywhere. Reads are bounded by the member's size as the
tar header gave it; a layer that is not a readable tar is one error naming it.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO, Callable, Dict, Iterable, Iterator, Optional, Tuple

from ocibuild.bounded_decompress import MAX_TOTAL
from ocibuild.digest import HashingReader
from ocibuild.errors import OciBuildError
from ocibuild.layer import headers, members as layer_members
from ocibuild.layer.forward import open_tar
from ocibuild.layer.stream import decompressed, unreadable
from ocibuild.untrusted import shown
from ocibuild.dockerfile.fstree import Content, LayerMember, Tree, apply_layer

_CHUNK = 1 << 20
# A cached layer is read to its end to hash it: no further than this past its tar's end.
MAX_TRAILER = 1 << 20


class LayerRefused(OciBuildError):
    """A cached layer that is not what it was given as (its diff_id), or not one this
    builder writes (a member named with `..` or from `/`, which unpackers would refuse or
    ignore: the model and the tree on disk would disagree)."""


class Blobs:
    def __init__(self) -> None:
        self._blobs: Dict[str, Tuple[str, Callable[[], BinaryIO]]] = {}
        self._small: Dict[LayerMember, bytes] = {}
        self._count = 0  # names the files materialize writes

    def add(self, digest: str, media_type: str, open_blob: Callable[[], BinaryIO]) -> None:
        self._blobs[digest] = (media_type, open_blob)

    def apply(self, tree: Tree, digest: str, origin: str,
              diff_id: Optional[str] = None) -> None:
        """The layer's members over `tree` (see fstree.apply_layer). With `diff_id`, the
        uncompressed tar is hashed in the same pass (to its end, past the tar's own end
        marker) and must be `diff_id`, and every member named as this builder names them,
        else LayerRefused: `tree` is then partly changed, so the caller applies to a copy.
        Read by `ocibuild.layer.headers`, or by tarfile when that finds the layer unusual."""
        fast = tree.copy()
        try:
            self._apply(fast, digest, origin, diff_id, headers.Reader)
        except headers.Unusual:
            self._apply(tree, digest, origin, diff_id, open_tar)
        else:
            tree.nodes = fast.nodes

    def _apply(self, tree: Tree, digest: str, origin: str, diff_id: Optional[str],
               reader: Callable[[BinaryIO], Iterable]) -> None:
        try:
            media_type, open_blob = self._blobs[digest]
            with open_blob() as blob:
                raw = decompressed(media_type, blob)
                stream = _Bounded(raw, digest) if diff_id else raw
                tar = reader(stream)
                apply_layer(tree, _ours(tar, digest) if diff_id else tar, digest, origin)
                if diff_id:
                    _drain(stream)
                    if stream.digest != diff_id:
                        raise LayerRefused(f"the layer {digest} decompresses to a tar of "
                                             f"diff_id {stream.digest}, not {diff_id}")
        except unreadable() as err:
            raise OciBuildError(f"{origin}: the layer {digest} cannot be read as a tar "
                                f"({type(err).__name__}: {err}); the image is damaged") from None

    def materialize(self, members: Iterable[LayerMember], work: str) -> Dict[LayerMember, str]:
        """Each member's bytes in a file of its own under `work`: {member: path}. Members
        are counted as `apply` counted them: by the same reader, or by tarfile for a layer
        that reader finds unusual (then for both)."""
        wanted: Dict[str, Dict[int, LayerMember]] = {}
        for m in members:
            wanted.setdefault(m.layer, {})[m.index] = m
        os.makedirs(work, exist_ok=True)
        paths: Dict[LayerMember, str] = {}
        for digest, by_index in sorted(wanted.items()):
            try:
                try:
                    found = self._extract(digest, by_index, work, _fast_members)
                except headers.Unusual:
                    found = self._extract(digest, by_index, work, _tarfile_members)
            except unreadable() as err:
                raise OciBuildError(f"the layer {digest} cannot be read as a tar "
                                    f"({type(err).__name__}: {err}); the image is "
                                    "damaged") from None
            missing = [i for i, m in by_index.items() if m not in found]
            if missing:
                raise OciBuildError(f"the layer {digest} ended before its member {missing[0]}; "
                                    "the image is damaged")
            paths.update(found)
        return paths

    def _extract(self, digest: str, by_index: Dict[int, LayerMember], work: str,
                 read_members: Callable) -> Dict[LayerMember, str]:
        media_type, open_blob = self._blobs[digest]
        paths: Dict[LayerMember, str] = {}
        last = max(by_index)
        with open_blob() as blob:
            for index, read in read_members(decompressed(media_type, blob)):
                m = by_index.get(index)
                if m is not None:
                    self._count += 1
                    path = os.path.join(work, str(self._count))
                    _copy(read, path, m.size, digest)
                    paths[m] = path
                if index >= last:
                    break
        return paths

    def opener(self, work: str) -> Callable[[Content], BinaryIO]:
        """Opens a node's content for a small read (passwd, group)."""
        def open_content(content: Content) -> BinaryIO:
            if isinstance(content, str):
                return open(content, "rb")
            assert isinstance(content, LayerMember)
            if content not in self._small:
                path = self.materialize([content], os.path.join(work, "small"))[content]
                with open(path, "rb") as f:
                    self._small[content] = f.read()
            return io.BytesIO(self._small[content])
        return open_content


def _fast_members(stream: BinaryIO) -> Iterator[Tuple[int, layer_members.Read]]:
    for index, (_, read) in enumerate(layer_members.fast(stream)):
        yield index, read


def _tarfile_members(stream: BinaryIO) -> Iterator[Tuple[int, layer_members.Read]]:
    with open_tar(stream) as tar:
        for index, (_, read) in enumerate(layer_members.of_tarfile(tar)):
            yield index, read


def _copy(read: layer_members.Read, path: str, size: int, digest: str) -> None:
    with open(path, "wb") as out:
        done = layer_members.copy_out(read, out, size)
    if done != size:
        raise OciBuildError(f"the layer {digest} holds a member shorter than its header says; "
                            "the image is damaged")


def _drain(stream: HashingReader) -> None:
    """The bytes after the tar's end marker (zero padding) into the hash, bounded."""
    start = stream.size
    while stream.read(_CHUNK):
        if stream.size - start > MAX_TRAILER:
            raise LayerRefused(f"more than {MAX_TRAILER} bytes follow the tar's end")


class _Bounded(HashingReader):
    """Hashes what is read, and refuses a layer that decompresses past MAX_TOTAL: a cached
    layer claims nothing about its uncompressed size, so a bomb must not run for hours."""

    def __init__(self, raw: BinaryIO, digest: str) -> None:
        super().__init__(raw)
        self._digest = digest

    def read(self, n: int = -1) -> bytes:
        data = super().read(n)
        if self.size > MAX_TOTAL:
            raise LayerRefused(f"the layer {self._digest} decompresses to more than "
                                 f"{MAX_TOTAL >> 30} GiB; refused")
        return data


def _ours(tar, digest: str):
    """The members of a cached layer, each named as a layer of this builder names it."""
    for member in tar:
        for name in [member.name, *([member.linkname] if member.islnk() else [])]:
            if not name or name.startswith("/") or ".." in name.split("/"):
                raise LayerRefused(f"the layer {digest} has a member named {shown(name)!r}, "
                                   "which no layer of this builder has")
        yield member
