"""Build a layer blob into `<out_dir>/blobs/sha256/<hex>`: temp file, then rename."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO, Callable, Optional, Sequence

from ocibuild.atomic import TempFile
from ocibuild.digest import hex_of
from ocibuild.layer.compression import GZIP, LayerWriter
from ocibuild.layer.entries import LayerEntry
from ocibuild.layer.tar_writer import write_tar


@dataclass(frozen=True)
class LayerBlob:
    media_type: str
    digest: str  # of the blob as stored (compressed)
    size: int
    diff_id: str  # of the uncompressed tar, which the image config lists

    def to_json(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size,
                "diffID": self.diff_id}


def build_layer(entries: Sequence[LayerEntry], out_dir: str, *, compression: str = GZIP,
                level: Optional[int] = None, mtime: int = 0,
                engine: Optional[str] = None, whiteouts: bool = False) -> LayerBlob:
    """`whiteouts`: `entries` are a diff whose `.wh.*` names are deletions (see write_tar)."""
    return build_layer_with(lambda out: write_tar(entries, out, mtime=mtime,
                                                  whiteouts=whiteouts), out_dir,
                            compression=compression, level=level, engine=engine)


def build_layer_with(write: Callable[[BinaryIO], None], out_dir: str, *,
                     compression: str = GZIP, level: Optional[int] = None,
                     engine: Optional[str] = None) -> LayerBlob:
    """A layer from `write`, which writes an uncompressed tar stream to the file it is given."""
    blobs = os.path.join(out_dir, "blobs", "sha256")
    with TempFile(blobs) as tmp:
        writer = LayerWriter(tmp.file, compression, level, engine=engine)
        try:
            write(writer)  # type: ignore[arg-type]
        except BaseException:
            writer.abort()
            raise
        writer.close()
        # Content-addressed: an existing blob of that name holds these very bytes.
        tmp.commit(os.path.join(blobs, hex_of(writer.digest)), keep_existing=True)
    return LayerBlob(writer.media_type, writer.digest, writer.size, writer.diff_id)
