"""Push an image index (linux/amd64 + linux/arm64, built with the image model) to the real
distribution registry on loopback; read it back raw, and with skopeo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Tuple

import requests

from ocibuild import mediatypes
from ocibuild.image import mutate
from ocibuild.image.config import ImageSettings, rfc3339
from ocibuild.image.image import Image
from ocibuild.image.index import Index
from ocibuild.image.layer import Layer
from ocibuild.layer.builder import build_layer
from ocibuild.layer.entries import collect_entries
from ocibuild.layout import OciLayout, write
from ocibuild.platform import Platform
from ocibuild.reference import parse_reference
from ocibuild.registry.push import push_image, push_index
from ocibuild.registry.transport import Transport
from tests.fixtures.fault_proxy import FaultProxy
from tests.fixtures.registry import Registry, registry  # noqa: F401 (fixture)
from tests.fixtures.tools import require, run

from .conftest import write as write_file


def _image(layout: OciLayout, src: Path, arch: str) -> Image:
    """A one-layer image holding /etc/<arch>; its layer blob goes into `layout`."""
    file = write_file(src / arch, arch.encode())
    blob = build_layer(collect_entries([(str(file), f"etc/{arch}")]), layout.path)
    image = mutate.with_created(mutate.with_platform(Image.scratch(), Platform("linux", arch)),
                                rfc3339(0))
    image = mutate.with_settings(image, ImageSettings(cmd=(f"/etc/{arch}",)))
    return mutate.add_layers(image, [Layer(blob.media_type, blob.digest, blob.size,
                                           blob.diff_id, f"ADD {arch}")], created=rfc3339(0))


def _index_layout(tmp_path: Path) -> Tuple[OciLayout, Index]:
    layout = OciLayout(tmp_path / "layout")
    index = Index.of([_image(layout, tmp_path / "src", arch) for arch in ("amd64", "arm64")])
    write(layout, index, ["multi"])
    return layout, index


def _blobs(index: Index) -> list:
    return sorted(d.digest for c in index.manifests
                  for d in (c.image.config_descriptor, *(x.descriptor for x in c.image.layers)))


def _cli_push(layout: OciLayout, to: str) -> dict:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "ocibuild", "push", "--layout", layout.path,
                           "--ref-name", "multi", "--to", to, "--insecure"],
                          capture_output=True, text=True, env=env)
    assert (proc.returncode, proc.stderr) == (0, "")
    return json.loads(proc.stdout)


def _get(reg: Registry, path: str, accept: str = "") -> requests.Response:
    response = requests.get(f"{reg.url}/v2/team/multi/{path}", headers={"Accept": accept},
                            timeout=30)
    assert response.status_code == 200, response.text
    return response


def test_cli_pushes_an_index_and_it_reads_back_exactly(registry: Registry,
                                                       tmp_path: Path) -> None:
    layout, index = _index_layout(tmp_path)
    digest = index.descriptor.digest
    out = _cli_push(layout, f"{registry.host}/team/multi:1")
    assert out == {"version": 1, "kind": "push-result",
                   "reference": f"{registry.host}/team/multi@{digest}",
                   "manifest_digest": digest, "refs": [f"{registry.host}/team/multi:1@{digest}"],
                   "uploaded": out["uploaded"], "mounted": [], "tags_written": ["1"],
                   "retries": 0, "referrers": []}
    assert sorted(out["uploaded"]) == _blobs(index)
    # The index by tag, each image by digest, each config blob: exactly the model's bytes.
    by_tag = _get(registry, "manifests/1", mediatypes.OCI_INDEX)
    assert (by_tag.content, by_tag.headers["Docker-Content-Digest"]) == (index.index_bytes,
                                                                         digest)
    assert by_tag.headers["Content-Type"] == mediatypes.OCI_INDEX
    for child in index.manifests:
        image = child.image
        got = _get(registry, f"manifests/{image.manifest_descriptor.digest}",
                   mediatypes.OCI_MANIFEST)
        assert got.content == image.manifest_bytes
        assert _get(registry, f"blobs/{image.config_descriptor.digest}").content == \
            image.config_bytes
    skopeo = require("skopeo")
    ref = f"docker://{registry.host}/team/multi:1"
    raw = run([skopeo, "inspect", "--raw", *registry.skopeo_src_flags(), ref], text=False)
    assert raw.stdout == index.index_bytes
    # skopeo picks the arm64 image out of the index and verifies every blob it copies.
    run([skopeo, "copy", "--override-arch", "arm64", *registry.skopeo_src_flags(), ref,
         f"oci:{tmp_path / 'copied'}:x"])
    copied = json.loads((tmp_path / "copied/index.json").read_text())["manifests"]
    assert [m["digest"] for m in copied] == [
        index.manifests[1].image.manifest_descriptor.digest]
    # Pushed again: the registry holds the index, so nothing is uploaded or re-tagged.
    again = _cli_push(layout, f"{registry.host}/team/multi:1")
    assert (again["uploaded"], again["mounted"], again["tags_written"]) == ([], [], [])


def test_index_push_order_and_an_image_already_there(registry: Registry,
                                                     tmp_path: Path) -> None:
    layout, index = _index_layout(tmp_path)
    amd, arm = (child.image for child in index.manifests)
    push_image(layout, amd, parse_reference(f"{registry.host}/team/multi"),
               Transport(registry.host, insecure=True), [])
    with FaultProxy(registry.host) as proxy:
        result = push_index(layout, index, parse_reference(f"{proxy.host}/team/multi"),
                            Transport(proxy.host, insecure=True), ["1", "latest"])
    # amd64 was there (its manifest HEAD said so): only arm64's blobs went up.
    assert sorted(result.uploaded) == sorted([arm.config_descriptor.digest,
                                              arm.layers[0].digest])
    assert result.tags_written == ["1", "latest"]
    puts = [path.rsplit("/", 1)[-1] if "/manifests/" in path else "blob"
            for method, path, _ in proxy.requests if method == "PUT"]
    # Blobs, then the missing image's manifest by digest, then the index, then the tags.
    assert puts == ["blob", "blob", arm.manifest_descriptor.digest, index.descriptor.digest,
                    "1", "latest"]
