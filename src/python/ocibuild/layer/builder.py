"""Build a layer blob into `<out>/blobs/sha256/<hex>`: temp file, then rename."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Sequence

from ocibuild.layer.compression import GZIP, LayerWriter
from ocibuild.layer.entries import LayerEntry
from ocibuild.layer.tar_writer import write_tar


@dataclass(frozen=True)
class LayerBlob:
    media_type: str
    digest: str
    size: int
    diff_id: str

    def to_json(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size,
                "diffID": self.diff_id}


def build_layer(entries: Sequence[LayerEntry], out_dir: str, *, compression: str = GZIP,
                level: int | None = None, mtime: int = 0) -> LayerBlob:
    blobs = os.path.join(out_dir, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=blobs, prefix=".partial-")
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as out:
            writer = LayerWriter(out, compression, level)
            write_tar(entries, writer, mtime=mtime)
            writer.close()
        final = os.path.join(blobs, writer.digest.split(":", 1)[1])
        if os.path.exists(final):
            os.unlink(tmp)
        else:
            os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return LayerBlob(writer.media_type, writer.digest, writer.size, writer.diff_id)
