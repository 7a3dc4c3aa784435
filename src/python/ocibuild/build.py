"""Build an image from a base, files and settings in one go: what `ocibuild build` does.

`build(request)` takes a `BuildRequest` (ocibuild.protocol.build) and runs the same typed
core the Pants plugin runs, in the same order: one `LayerRequest` per layer (so a layer's
bytes are the plugin's for the same files, mtime and compression), one `AssembleRequest` per
platform on the base's image for that platform, and an `IndexRequest` over them when several
platforms are asked for. The layout it builds is complete (the base's layer blobs are copied
in, digest-verified), so it can be pushed, saved as a docker-archive, or kept.

Nothing is half-written: everything is checked before the first write; `output` is built in
a temp directory beside it and renamed into place only once complete (after the push, if
any); the digest and refs files are written after that, each atomically. A push is honest
the way `ocibuild push` is: tags are written last, so a tag never names an incomplete image,
but a failure between two tags leaves the first one moved.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ocibuild.atomic import atomic_write, copy_verified, layout_directory
from ocibuild.errors import OciBuildError
from ocibuild.layout import OciLayout
from ocibuild.assemble import DEFAULT_PLATFORM, assemble
from ocibuild.platform import parse_platform
from ocibuild.progress import Progress
from ocibuild.protocol.assemble import AssembleRequest, BaseRef, Pairs
from ocibuild.protocol.build import BuildRequest, BuildResult, DebianContents
from ocibuild.protocol.index import IndexedImage, IndexRequest
from ocibuild.protocol.layer import LayerDescriptor, LayerRequest
from ocibuild.reference import Reference, parse_reference
from ocibuild.validate import validate_tag

SCRATCH = "scratch"
ACCOUNTS_CREATED_BY = "ocibuild build: accounts (/etc/passwd, /etc/group, homes)"
OCI_PREFIX = "oci:"


@dataclass(frozen=True)
class Base:
    """The base as given: scratch (none set), an OCI layout, a registry reference, or Debian
    packages (with their lockfile, read and checked before anything is built)."""

    layout: Optional[str] = None
    ref_name: Optional[str] = None
    ref: Optional[Reference] = None
    debian: Optional[DebianContents] = None
    lock: Optional[dict] = None


def parse_base(value: str) -> Base:
    if value == SCRATCH:
        return Base()
    if value.startswith(OCI_PREFIX):
        path, ref_name = value[len(OCI_PREFIX):], None
        head, sep, tail = path.rpartition(":")
        if sep and head and "/" not in tail:
            path, ref_name = head, tail
        if not os.path.isdir(path):
            raise OciBuildError(f"--base {value!r}: {path!r} is not a directory; an OCI layout "
                                "is a directory, e.g. --base oci:build/base:latest")
        return Base(layout=path, ref_name=ref_name or None)
    return Base(ref=parse_reference(value))


@dataclass(frozen=True)
class Registries:
    """Per-host transport settings (`--insecure-registry`, `--ca-cert`), for pull and push."""

    insecure: Tuple[str, ...] = ()
    ca_certs: Tuple[Tuple[str, str], ...] = ()

    def transport(self, ref: Reference):
        # The transport and credential lookup `ocibuild push` and `pull` use.
        from ocibuild.registry.client import registry_transport

        certs = dict(self.ca_certs)
        return registry_transport(ref, insecure=ref.registry in self.insecure,
                                  ca_cert=certs.get(ref.registry))


def push_tags(request: BuildRequest) -> List[str]:
    """The push reference's tag, then `tags`, each once; "latest" when there is none."""
    own = parse_reference(request.push).tag if request.push else None
    tags: Dict[str, None] = dict.fromkeys([*([own] if own else []), *request.tags])
    for tag in tags:
        validate_tag(tag)
    return list(tags) or ["latest"]


def _check(request: BuildRequest) -> Tuple[Base, List[Optional[str]], List[str]]:
    """Everything that can be checked before the first write: (base, platforms, tags)."""
    if request.debian and request.base != SCRATCH:
        raise OciBuildError(f"the base is built from Debian packages (`contents`), so it "
                            f"cannot also be {request.base!r}; drop `base:` (or --base)")
    if (request.output is None) == (request.push is None):
        raise OciBuildError("give where the image goes: --output DIR (an OCI layout) or "
                            "--push REGISTRY/REPO[:TAG], one of the two")
    if request.users or request.groups:
        from ocibuild.accounts import check_accounts

        check_accounts(request.users, request.groups)  # every field: before any work
    if not request.layers and request.base == SCRATCH and not request.debian and \
            not request.users:
        raise OciBuildError("an image on scratch needs at least one --layer SRC[:DEST]")
    platforms = list(request.platforms)
    for platform in platforms:
        parse_platform(platform)
    if len(set(platforms)) != len(platforms):
        raise OciBuildError(f"--platform lists a platform twice ({', '.join(platforms)}); "
                            "give each once")
    if request.docker_archive and len(platforms) > 1:
        raise OciBuildError(f"--docker-archive holds one image, but {len(platforms)} platforms "
                            f"were asked for ({', '.join(platforms)}); give one --platform, "
                            "or drop --docker-archive and load the layout with podman")
    if request.image_refs and not request.push:
        raise OciBuildError("--image-refs lists pushed images (REGISTRY/REPO:TAG@DIGEST); "
                            "give --push too, or drop it")
    tags = push_tags(request)
    if request.debian:
        from ocibuild.debian.image import load_lock

        asked = [parse_platform(p) for p in platforms] or [DEFAULT_PLATFORM]
        lock = load_lock(request.debian, asked, "ocibuild lock -f IMAGE.yaml")
        return Base(debian=request.debian, lock=lock), platforms or [None], tags
    return parse_base(request.base), platforms or [None], tags


def cache_dir(given: Optional[str]) -> str:
    """Where downloaded .debs and indexes are kept: --cache-dir, else $XDG_CACHE_HOME/ocibuild
    (~/.cache/ocibuild). Each file is named by its SHA-256 and verified when stored."""
    if given:
        return given
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "ocibuild")


def mirror_url(debian_mirrors: Pairs):
    """A mirror as named -> where it is read (`--debian-mirror NAMED=URL`)."""
    mirrors = {named.rstrip("/"): url.rstrip("/") for named, url in debian_mirrors}
    return lambda url: mirrors.get(url.rstrip("/"), url.rstrip("/"))


def _build_layers(request: BuildRequest, layout_dir: str) -> List[LayerDescriptor]:
    """Each layer straight into the layout's blobs, as the plugin's layer processes build it."""
    from ocibuild.layer.request import layer_of

    return [layer_of(LayerRequest(mappings=(mapping,), compression=request.compression,
                                  mtime=request.created_epoch), layout_dir)
            for mapping in request.layers]


def _shallow(request: BuildRequest) -> bool:
    """Only pushed (no layout or archive to write): a registry base's layers are not downloaded
    up front; the push fetches one only if the destination neither has nor can mount it."""
    return request.push is not None and request.output is None and \
        request.docker_archive is None


def _copy_blobs(source: OciLayout, dest: OciLayout, digests: Sequence[str],
                shallow: bool = False) -> None:
    """The base's blobs into the new layout, streamed and verified (a base is untrusted);
    `shallow`: those the base layout holds (a shallow pull has none of its layers)."""
    for digest in digests:
        path = dest.blob_path(digest)
        if os.path.exists(path) or (shallow and not os.path.exists(source.blob_path(digest))):
            continue
        with source.open_blob(digest) as blob:
            read = copy_verified(blob, path, digest)
        if read != digest:
            raise OciBuildError(f"the base layout {source.path!r} holds a blob named "
                                f"{digest} whose content is {read}; copy it again")


def _base_layout(base: Base, request: BuildRequest, platform: Optional[str],
                 registries: Registries, work: str, progress: Progress) -> Optional[BaseRef]:
    """The base's image for `platform` as an assemble request names it (pulled or built from
    Debian packages if need be)."""
    if base.debian is not None:
        from ocibuild.debian.image import debian_base

        assert base.lock is not None
        return debian_base(base.debian, base.lock,
                           parse_platform(platform) if platform else DEFAULT_PLATFORM, work,
                           cache_dir(request.cache_dir), mirror_url(request.debian_mirrors),
                           request.compression, progress)
    if base.layout is not None:
        return BaseRef(base.layout, base.ref_name)
    if base.ref is None:
        return None
    from ocibuild.registry.pull import pull_to_layout

    ref = base.ref
    progress.step(f"pulling the base image {ref} ({platform or DEFAULT_PLATFORM})")
    where = tempfile.mkdtemp(prefix="base-", dir=work)
    try:
        pull_to_layout(registries.transport(ref), ref, ref.digest or ref.tag or "latest",
                       parse_platform(platform) if platform else DEFAULT_PLATFORM, where,
                       layers=not _shallow(request))
    except OciBuildError as err:
        raise OciBuildError(f"pulling the base image {request.base!r}: {err}") from None
    return BaseRef(where, None, str(ref))


def _fetch_layers(base_ref: Optional[BaseRef], ref: Reference, registries: Registries,
                  progress: Progress) -> None:
    """The base's layers into its shallow layout, each verified: the accounts step reads the
    base's /etc/passwd as an unpacker leaves it, which any layer can change (a symlink or a
    whiteout in one, the file in another), so it needs them all. The push then uploads them
    from there, or mounts them, as it would any layer the layout holds."""
    from ocibuild.layout import resolve_image
    from ocibuild.registry.pull import download_blob

    assert base_ref is not None
    layout = OciLayout(base_ref.layout)
    layers = resolve_image(layout, ref_name=base_ref.ref_name).layers
    progress.step(f"fetching the base's {len(layers)} layer(s) to read its /etc/passwd")
    transport = registries.transport(ref)
    try:
        for descriptor in layers:
            download_blob(transport, ref, descriptor, layout.blob_path(descriptor.digest))
    except OciBuildError as err:
        raise OciBuildError(f"pulling the base image {str(ref)!r}: {err}") from None


def _created_by(dest: str) -> str:
    # The destination, not the source: a source path (a temp or checkout directory) would
    # make the config's digest depend on where the build ran.
    return f"ocibuild build: /{dest.strip('/')}"


def _assemble(request: BuildRequest, base: Base, platforms: List[Optional[str]],
              tags: List[str], layers: List[LayerDescriptor], layout_dir: str,
              work: str, progress: Progress) -> Tuple[str, Tuple[IndexedImage, ...]]:
    """One image per platform (under an index when several): (top digest, images)."""
    from ocibuild.index import index

    registries = Registries(request.insecure_registries, request.ca_certs)
    single = len(platforms) == 1
    images, image_dirs = [], []
    for i, platform in enumerate(platforms):
        base_ref = _base_layout(base, request, platform, registries, work, progress)
        out = layout_dir if single else os.path.join(work, f"image-{i}")
        history = [_created_by(m.dest) for m in request.layers]
        these = list(layers)
        if request.users or request.groups:
            from ocibuild.accounts import accounts_layer

            if base.ref is not None and _shallow(request):
                _fetch_layers(base_ref, base.ref, registries, progress)
            these.insert(0, accounts_layer(
                base_ref.layout if base_ref else None, base_ref.ref_name if base_ref else None,
                request.users, request.groups, layout_dir, request.compression,
                request.created_epoch))
            history.insert(0, ACCOUNTS_CREATED_BY)
        result = assemble(AssembleRequest(
            layers=tuple(these), base=base_ref, platform=platform, history=tuple(history),
            settings=request.settings, annotations=request.annotations,
            created_epoch=request.created_epoch, ref_names=tuple(tags)), out)
        if base_ref is not None:
            _copy_blobs(OciLayout(base_ref.layout), OciLayout(layout_dir), result.base_blobs,
                        shallow=base.ref is not None and _shallow(request))
        images.append(IndexedImage(result.platform, result.manifest_digest,
                                   result.config_digest))
        image_dirs.append(out)
    if single:
        return images[0].manifest_digest, tuple(images)
    built = index(IndexRequest(tuple(image_dirs), tuple(tags), request.annotations), layout_dir)
    return built.manifest_digest, built.manifests




def _push(request: BuildRequest, base: Base, tags: List[str], layout_dir: str):
    from ocibuild.image.index import Index
    from ocibuild.layout import read_ref
    from ocibuild.registry.push import push_image, push_index

    assert request.push is not None
    dest = parse_reference(request.push)
    registries = Registries(request.insecure_registries, request.ca_certs)
    layout = OciLayout(layout_dir)
    what = read_ref(layout, tags[0])
    # The base's blobs are mounted, not uploaded, when it lives on the same registry.
    mount_from = base.ref.repository if base.ref and base.ref.registry == dest.registry \
        else None
    fetch = None
    if base.ref is not None and _shallow(request):
        from ocibuild.registry.pull import download_blob

        source, transport = base.ref, registries.transport(base.ref)
        fetch = lambda descriptor, path: download_blob(  # noqa: E731
            transport, source, descriptor, path)
    push = push_index if isinstance(what, Index) else push_image
    pushed = push(layout, what, dest, registries.transport(dest), tags,  # type: ignore[operator]
                  mount_from=mount_from, fetch=fetch)
    refs = tuple(f"{dest.name}:{tag}@{pushed.manifest_digest}" for tag in tags)
    return pushed, refs


def _docker_archive(request: BuildRequest, tags: List[str], layout_dir: str) -> None:
    from ocibuild.docker_archive import write_docker_archive
    from ocibuild.layout import resolve_image

    assert request.docker_archive is not None
    layout = OciLayout(layout_dir)
    # Named like the pushed image; unnamed otherwise (`docker load` prints its ID to tag).
    names = [f"{parse_reference(request.push).name}:{t}" for t in tags] if request.push else []
    write_docker_archive(layout, resolve_image(layout, ref_name=tags[0]), names,
                         request.docker_archive)


def build(request: BuildRequest, progress: Progress = Progress(quiet=True)) -> BuildResult:
    """`progress` hears what is being done (downloads, layers, pushes)."""
    base, platforms, tags = _check(request)
    pushed, refs = None, ()
    with layout_directory(request.output) as layout_dir, \
            tempfile.TemporaryDirectory(prefix="ocibuild-build-") as work:
        if request.layers:
            progress.step(f"building {len(request.layers)} layer(s) from files")
        layers = _build_layers(request, layout_dir)
        digest, images = _assemble(request, base, platforms, tags, layers, layout_dir, work,
                                   progress)
        if request.push:
            progress.step(f"pushing to {request.push}")
            pushed, refs = _push(request, base, tags, layout_dir)
        if request.docker_archive:
            _docker_archive(request, tags, layout_dir)
    if request.digest_file:
        atomic_write(request.digest_file, (digest + "\n").encode())
    if request.image_refs:
        atomic_write(request.image_refs, "".join(r + "\n" for r in refs).encode())
    return BuildResult(
        manifest_digest=digest, images=images, output=request.output,
        reference=pushed.reference if pushed else None, refs=refs,
        docker_archive=request.docker_archive,
        uploaded=tuple(pushed.uploaded) if pushed else (),
        mounted=tuple(pushed.mounted) if pushed else ())


def summary(result: BuildResult) -> str:
    """A few lines for a human; `--json` prints the whole result instead."""
    platforms = ", ".join(image.platform for image in result.images)
    kind = "index" if len(result.images) > 1 else "image"
    lines = [f"built {kind} {result.manifest_digest} ({platforms})"]
    if result.output:
        lines.append(f"wrote the OCI layout {result.output}")
    if result.reference:
        lines.append(f"pushed {result.reference} ({len(result.uploaded)} blobs uploaded, "
                     f"{len(result.mounted)} mounted)")
        lines.extend(f"  {ref}" for ref in result.refs)
    if result.docker_archive:
        lines.append(f"wrote the docker-archive {result.docker_archive}")
    return "\n".join(lines)
