"""The layer cache of Dockerfile builds: a RUN step whose key (ocibuild.dockerfile.cache_key)
has a fresh, verified entry does not run; its cached layer stands in for it.

Two stores, looked up in this order: `--cache-dir DIR` (DIR/steps/KEY: the entry's manifest;
its config and layer in DIR's content-addressed blobs, ocibuild.dockerfile.blobstore) and
`--cache-repo REPO` (kaniko's: the image REPO:KEY, through the project's registry client).
A hit found in the repository is kept in DIR too. An entry older than `--cache-ttl` is
ignored (kaniko's rule; the age is the entry's `created`).

A hit is used only once verified: the entry parses (cache_entry.parse), its layer's digest
and size are checked while it is copied or downloaded into the build's own layer directory,
and its diff_id while it is applied to the stage's model (`Blobs.apply`, over a copy of the
model: a layer that fails leaves the stage as it was). Any failure is a warning naming the
entry and the step runs, as on a miss. After a miss the step's layer is stored in each
store; a store that fails is a warning, never a failed build (as kaniko has it). DIR/bases/HEX
marks each base image (manifest digest) that DIR stored a step for: a stage on an unmarked
base is certain to miss, so its base is unpacked ahead (ocibuild.rootfs.unpack_ahead).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ocibuild.atomic import atomic_write
from ocibuild.digest import hex_of
from ocibuild.dockerfile import cache_entry
from ocibuild.dockerfile.blobstore import BlobStore
from ocibuild.dockerfile.cache_entry import Entry, Refused
from ocibuild.dockerfile.cache_key import StepInputs
from ocibuild.errors import OciBuildError
from ocibuild.image.image import Image
from ocibuild.image.layer import Layer
from ocibuild.image.manifest import Descriptor
from ocibuild.untrusted import os_reason, read_file, shown

DEFAULT_TTL_S = 336 * 3600  # kaniko's --cache-ttl default, two weeks


@dataclass(frozen=True)
class Settings:
    """Where entries are kept and how long they are good for; no store: no cache."""

    directory: Optional[str] = None
    repo: Optional[str] = None  # REGISTRY/REPOSITORY
    ttl_s: float = DEFAULT_TTL_S
    registries: object = None  # ocibuild.dockerfile.images.Registries for the repository

    @property
    def enabled(self) -> bool:
        return bool(self.directory or self.repo)


@dataclass(frozen=True)
class Hit:
    key: str
    layer: Optional[Layer]  # in the build's layer directory, digest and size verified
    source: str  # "dir" or "repo"
    mechanism: str  # the RUN mechanism that made it
    created: float  # when the entry was made (a copy keeps it: the TTL runs from there)


class LayerCache:
    def __init__(self, settings: Settings, layers_dir: str, compression: str,
                 now: Optional[float] = None) -> None:
        self.settings, self.layers_dir, self.compression = settings, layers_dir, compression
        self.now = time.time() if now is None else now
        self.stores: List[Tuple[str, object]] = []
        if settings.directory:
            self.stores.append(("dir", LocalStore(settings.directory)))
        if settings.repo:
            self.stores.append(("repo", RegistryStore(settings.repo, settings.registries)))
        self.unreachable: set = set()  # stores not asked again in this build

    def lookup(self, inputs: StepInputs, at: str) -> Optional[Hit]:
        key = inputs.key
        for name, store in self.stores:
            if name in self.unreachable:
                continue
            try:
                found = store.entry(key, self.compression)  # type: ignore[attr-defined]
                if found is None:
                    continue
                entry, where = found
                if self.now - entry.created > self.settings.ttl_s:
                    continue  # stale: rebuilt, and the new entry replaces it
                layer = self._layer(store, entry, where)
            except Refused as err:
                self._warn(at, f"the cache entry {where_of(store, key)} is not used: {err}; "
                           "running the step")
                continue
            except (OciBuildError, OSError) as err:
                self._warn(at, f"the cache entry {where_of(store, key)} is not used: "
                           f"{_reason(err)}; running the step" + self._check_reach(name, err))
                continue
            return Hit(key, layer, name, entry.mechanism, entry.created)
        return None

    def _layer(self, store, entry: Entry, where: str) -> Optional[Layer]:
        if entry.layer is None:
            return None
        dest = os.path.join(self.layers_dir, "blobs", "sha256", hex_of(entry.layer.digest))
        store.layer(entry.layer, dest)
        return Layer(entry.layer.media_type, entry.layer.digest, entry.layer.size,
                     entry.diff_id)

    def refused(self, hit: Hit, reason: str, at: str) -> None:
        """A hit whose layer failed when applied (its diff_id, or its tar): the step runs."""
        store = dict(self.stores)[hit.source]
        self._warn(at, f"the cache entry {where_of(store, hit.key)} is not used: {reason}; "
                   "running the step")

    def keep(self, hit: Hit, created_by: str, platform: dict) -> None:
        """A verified hit from the repository, kept in the directory for next time."""
        if hit.source == "repo" and self.settings.directory:
            self._store_in([(n, s) for n, s in self.stores if n == "dir"], hit.key, hit.layer,
                           created_by, platform, hit.mechanism, "", hit.created)

    def store(self, inputs: StepInputs, layer: Optional[Layer], created_by: str,
              platform: dict, mechanism: str, at: str, base: Optional[str] = None) -> None:
        """`base`: the manifest digest of the image the stage's chain starts from (marked,
        for `may_hold_steps_on`)."""
        self._store_in(self.stores, inputs.key, layer, created_by, platform,
                       mechanism, at, self.now)
        for name, store in self.stores:
            if base and name == "dir" and name not in self.unreachable:
                try:
                    store.mark(base)  # type: ignore[attr-defined]
                except OSError:
                    pass  # a lost mark only makes a later cold build unpack its base later

    def may_hold_steps_on(self, base: str) -> bool:
        """False only when no step of a stage on the image `base` (a manifest digest) can
        hit: the directory marks each base it stores a step for; a repository may hold any."""
        return any(name == "repo" or store.marked(base)  # type: ignore[attr-defined]
                   for name, store in self.stores)

    def _store_in(self, stores, key: str, layer: Optional[Layer], created_by: str,
                  platform: dict, mechanism: str, at: str, created: float) -> None:
        image = cache_entry.make(key, layer, created_by, platform, mechanism, created)
        for name, store in stores:
            if name in self.unreachable:
                continue
            try:
                store.put(key, image, self.layers_dir)
            except (OciBuildError, OSError) as err:
                self._warn(at, f"storing the cache entry {where_of(store, key)} failed "
                           f"({_reason(err)}); the build goes on without it" +
                           self._check_reach(name, err))

    def _check_reach(self, name: str, err: Exception) -> str:
        """A registry that cannot be reached or will not let us in is not asked again in
        this build: every step would wait for its deadlines and say the same."""
        from ocibuild.registry.errors import RegistryError

        if isinstance(err, RegistryError) and err.status in (0, 401, 403):
            self.unreachable.add(name)
            return "; the cache repository is not used for the rest of this build"
        return ""

    @staticmethod
    def _warn(at: str, text: str) -> None:
        print(f"ocibuild: warning: {at + ': ' if at else ''}{text}", file=sys.stderr)


def _reason(err: Exception) -> str:
    return f"{err.filename}: {os_reason(err)}" if isinstance(err, OSError) else str(err)


def where_of(store, key: str) -> str:
    return store.where(key)


def _blob(layers_dir: str, digest: str) -> str:
    return os.path.join(layers_dir, "blobs", "sha256", hex_of(digest))


class LocalStore:
    """DIR/steps/KEY holds the entry's manifest; its blobs are DIR's (BlobStore)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.blobs = BlobStore(directory)

    def where(self, key: str) -> str:
        return os.path.join(self.directory, "steps", key)

    def _mark_path(self, base: str) -> str:
        return os.path.join(self.directory, "bases", hex_of(base))

    def mark(self, base: str) -> None:
        path = self._mark_path(base)
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write(path, b"", keep_existing=True)

    def marked(self, base: str) -> bool:
        return os.path.exists(self._mark_path(base))

    def entry(self, key: str, compression: str) -> Optional[Tuple[Entry, str]]:
        path = self.where(key)
        if not os.path.isfile(path):
            return None
        manifest = read_file(path, "the cache entry", 4 << 20)
        return cache_entry.parse(manifest, key, compression, path, self._config), path

    def _config(self, descriptor: Descriptor) -> bytes:
        path = self.blobs.path(descriptor.digest)
        if not os.path.isfile(path):
            raise Refused(f"its config {descriptor.digest} is not in {self.directory}")
        return read_file(path, "the cache entry's config", cache_entry.MAX_CONFIG)

    def layer(self, descriptor: Descriptor, dest: str) -> None:
        if not self.blobs.copy_out(descriptor, dest):
            raise Refused(f"its layer {descriptor.digest} is not in {self.directory} with "
                          f"that digest and {descriptor.size} bytes")

    def put(self, key: str, image: Image, layers_dir: str) -> None:
        for layer in image.layers:
            self.blobs.put(_blob(layers_dir, layer.digest), layer.digest)
        config = self.blobs.path(image.config_descriptor.digest)
        if not os.path.exists(config):
            os.makedirs(os.path.dirname(config), exist_ok=True)
            atomic_write(config, image.config_bytes, keep_existing=True)
        os.makedirs(os.path.dirname(self.where(key)), exist_ok=True)
        atomic_write(self.where(key), image.manifest_bytes)


class RegistryStore:
    """kaniko's layout: the image REPO:KEY (ocibuild.dockerfile.cache_entry)."""

    def __init__(self, repo: str, registries) -> None:
        from ocibuild.reference import parse_reference

        try:
            self.ref = parse_reference(repo)
        except OciBuildError as err:
            raise OciBuildError(f"--cache-repo {shown(repo)}: {err}") from None
        if self.ref.tag or self.ref.digest:
            raise OciBuildError(f"--cache-repo {shown(repo)}: give a repository without a tag "
                                "or digest; each entry is tagged with its key")
        if registries is None:
            from ocibuild.dockerfile.images import Registries

            registries = Registries()
        self.transport = registries.transport(self.ref)

    def where(self, key: str) -> str:
        return f"{self.ref.name}:{key}"

    def entry(self, key: str, compression: str) -> Optional[Tuple[Entry, str]]:
        from ocibuild.registry.errors import RegistryError
        from ocibuild.registry.pull import fetch_manifest

        try:
            manifest = fetch_manifest(self.transport, self.ref, key)
        except RegistryError as err:
            if err.status == 404:
                return None
            raise
        return (cache_entry.parse(manifest.content, key, compression, self.where(key),
                                  self._config), self.where(key))

    def _config(self, descriptor: Descriptor) -> bytes:
        from ocibuild.registry.pull import blob_url, scope

        url = blob_url(self.transport, self.ref, descriptor.digest)
        response = self.transport.request("GET", url, scope=scope(self.ref.repository),
                                          stream=True, expected=(200,))
        return self.transport.read(response, cache_entry.MAX_CONFIG, "GET", url)

    def layer(self, descriptor: Descriptor, dest: str) -> None:
        from ocibuild.registry.pull import download_blob

        if os.path.exists(dest):  # our own already (another stage made it): same bytes
            return
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        download_blob(self.transport, self.ref, descriptor, dest)

    def put(self, key: str, image: Image, layers_dir: str) -> None:
        from ocibuild.layout import OciLayout
        from ocibuild.registry.push import push_image

        # A layout of the entry alone: the push reads the layout's index (for referrers).
        directory = tempfile.mkdtemp(prefix="cache-push-", dir=os.path.dirname(layers_dir))
        try:
            layout = OciLayout(directory)
            layout.write_blob_bytes(image.config_bytes, image.config_media_type)
            for layer in image.layers:
                _link_or_copy(_blob(layers_dir, layer.digest), layout.blob_path(layer.digest))
            layout.write_index([])
            layout.write_oci_layout_file()
            push_image(layout, image, self.ref, self.transport, [key])
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def _link_or_copy(source: str, dest: str) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def report_miss(at: str, inputs: Optional[StepInputs]) -> dict:
    """A step that ran with the cache on: one line on stderr, its fields in the step's JSON."""
    if inputs is None:
        return {}
    print(f"ocibuild: {at}: cache miss (key {inputs.key})", file=sys.stderr)
    return {"cache": "miss", "cache_key": inputs.key}


def report_hit(at: str, hit: Hit) -> dict:
    print(f"ocibuild: {at}: cache hit in the {_SOURCES[hit.source]} (key {hit.key}; made with "
          f"mechanism {hit.mechanism}); not run", file=sys.stderr)
    return {"at": at, "cache": "hit", "cache_key": hit.key, "cache_source": hit.source,
            "mechanism": None, "made_with": hit.mechanism,
            "layer": hit.layer.digest if hit.layer else None}


def summary(steps) -> dict:
    """The build's JSON `cache`: how many RUN steps hit and missed."""
    return {"hits": sum(1 for s in steps if s.get("cache") == "hit"),
            "misses": sum(1 for s in steps if s.get("cache") == "miss")}


_SOURCES = {"dir": "cache directory", "repo": "cache repository"}
