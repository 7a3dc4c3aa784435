"""Base images and `COPY --from=IMAGE`: pulled once per (reference, platform) with the
project's registry client (digest-verified, bounded), their layers registered with `Blobs`,
their filesystem modelled as a `Tree` (never extracted). The digest pulled is recorded, so
the build says exactly what it built on.

With `--cache-dir` (`blob_cache`), the blobs are kept there by digest (ocibuild.dockerfile.
blobstore: verified on every read) and so are manifests named by digest: a warm build asks
the registry only what a tag names now (one manifest GET; none for a ref by digest)."""

from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from ocibuild.dockerfile.blobstore import BlobStore
from ocibuild.dockerfile.content import Blobs
from ocibuild.dockerfile.fstree import DIR, Node, Tree
from ocibuild.errors import OciBuildError
from ocibuild.image.config import check_base_config
from ocibuild.image.image import Image
from ocibuild.layout import OciLayout
from ocibuild.platform import Platform
from ocibuild.reference import Reference, parse_reference

SCRATCH = "scratch"
# Told (manifest digest, [(blob path, media type)]) of a base as soon as it is pulled.
Ahead = Callable[[str, List[Tuple[str, str]]], None]


@dataclass(frozen=True)
class Registries:
    """How to reach each registry: plain HTTP hosts (`--insecure-registry`, or all with
    `insecure_all`), CA bundles per host, and kaniko's --skip-tls-verify."""

    insecure: Tuple[str, ...] = ()
    insecure_all: bool = False
    ca_certs: Tuple[Tuple[str, str], ...] = ()
    skip_tls_verify: bool = False

    def transport(self, ref: Reference):
        from ocibuild.registry.client import registry_transport

        transport = registry_transport(
            ref, insecure=self.insecure_all or ref.registry in self.insecure,
            ca_cert=dict(self.ca_certs).get(ref.registry))
        if self.skip_tls_verify:
            # Asked for by name (kaniko's flag): the registry's certificate is not checked (other
            # hosts' still are). Digests still are, so a pulled image is what its digest says;
            # credentials sent to the registry are not protected.
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            transport.verify_tls = False
        return transport


@dataclass
class Pulled:
    ref: Reference
    digest: str  # the manifest pulled
    layout: str
    image: Image
    tree: Tree


class Images:
    def __init__(self, registries: Registries, blobs: Blobs, work: str,
                 blob_cache: Optional[str] = None) -> None:
        self.registries, self.blobs, self.work = registries, blobs, work
        self.blob_cache = blob_cache
        self._pulled: Dict[Tuple[str, str], Pulled] = {}

    def get(self, name: str, platform: Platform, where: str,
            ahead: Optional[Ahead] = None) -> Pulled:
        """`ahead`: told the manifest digest and the layers' blobs of an image pulled now,
        before its layers are modelled (ocibuild.rootfs.unpack_ahead)."""
        key = (name, str(platform))
        if key not in self._pulled:
            self._pulled[key] = self._pull(name, platform, where, ahead)
        return self._pulled[key]

    def _pull(self, name: str, platform: Platform, where: str,
              ahead: Optional[Ahead] = None) -> Pulled:
        from ocibuild.registry.pull import pull_to_layout

        try:
            ref = parse_reference(name)
        except OciBuildError as err:
            raise OciBuildError(f"{where}: {err}") from None
        out = tempfile.mkdtemp(prefix="image-", dir=self.work)
        os.rmdir(out)  # pull_to_layout makes it, complete or not at all
        try:
            transport = self.registries.transport(ref)
            reference = ref.digest or ref.tag or "latest"
            if self.blob_cache:
                image = _pull_cached(transport, ref, reference, platform, out, self.blob_cache)
            else:
                image = pull_to_layout(transport, ref, reference, platform, out)
        except OciBuildError as err:
            raise OciBuildError(f"{where}: pulling {name!r}: {err}") from None
        origin = f"the image {name}"
        check_base_config(image.config, f"{origin} (config {image.config_descriptor.digest})")
        tree = self._model(image, OciLayout(out), origin, ahead)
        return Pulled(ref, image.manifest_descriptor.digest, out, image, tree)

    def _model(self, image: Image, layout: OciLayout, origin: str,
               ahead: Optional[Ahead]) -> Tree:
        """The image's tree, from its layers' headers; `ahead` told of the layers first."""
        if ahead is not None:
            ahead(image.manifest_descriptor.digest,
                  [(layout.blob_path(layer.digest), layer.media_type) for layer in image.layers])
        tree = Tree({"": Node(DIR, 0o755, origin=origin)})
        for layer in image.layers:
            self.blobs.add(layer.digest, layer.media_type,
                           lambda d=layer.digest: layout.open_blob(d))
            self.blobs.apply(tree, layer.digest, origin)
        return tree


def _pull_cached(transport, ref: Reference, reference: str, platform: Platform, out: str,
                 cache_dir: str) -> Image:
    """`pull_to_layout`, with manifests by digest and every blob from `cache_dir` when there."""
    from ocibuild.atomic import atomic_directory
    from ocibuild.image.manifest import Descriptor
    from ocibuild.layout import resolve_image
    from ocibuild.registry.pull import download_blob, image_manifest, manifest_blobs

    chain = image_manifest(transport, ref, reference, platform,
                           os.path.join(cache_dir, "manifests"))
    manifest = chain[-1]
    store = BlobStore(cache_dir)
    with atomic_directory(out) as tmp:
        layout = OciLayout(tmp)
        for m in chain:
            layout.write_blob_bytes(m.content, m.media_type)
        for descriptor in manifest_blobs(manifest, f"{ref.name}@{manifest.digest}"):
            store.fetch(descriptor, layout.blob_path(descriptor.digest),
                        lambda d, path: download_blob(transport, ref, d, path))
        layout.write_index([Descriptor(manifest.media_type, manifest.digest,
                                       len(manifest.content))])
        layout.write_oci_layout_file()
    return resolve_image(OciLayout(out))


def scratch_config(platform: Platform) -> dict:
    return {**platform.to_json(), "config": {}, "rootfs": {"type": "layers", "diff_ids": []},
            "history": []}


def base_config(pulled: Optional[Pulled]) -> dict:
    return copy.deepcopy(pulled.image.config) if pulled else {}
