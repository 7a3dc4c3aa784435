"""Whether a document is an image manifest or an index, decided from its bytes alone.

A digest pins bytes; it pins one image only if every reader takes those bytes for the same
kind of document. A document without `mediaType` holding both `manifests` and `config` or
`layers` was an index to one reader and an image to another, depending on the HTTP
Content-Type or the descriptor that pointed at it (CVE-2021-41190; image-spec 1.0.2 and
distribution-spec 1.0.1 close it the same way). So, here, the kind is:

* the document's own `mediaType` when it has one (only the OCI and Docker v2 schema 2
  manifest and index types are documents this tool reads), which must fit its shape
  (an index has `manifests` and no `config`/`layers`; a manifest has `config`, no
  `manifests`);
* without `mediaType`: its shape, and only if that is unambiguous;
* never what the outside claims. A claim (a Content-Type header, the `mediaType` of the
  descriptor that points here) that names another type is refused, not believed.

Go's encoding/json (containerd, docker, skopeo, the registry) matches object keys to fields
case-insensitively ("MediaType", "ſchemaVersion" with a long s), where Python does not: a key
that folds to a field name without being spelled as one is refused, so both read one thing.
Duplicate keys are refused where all untrusted JSON is parsed (`ocibuild.untrusted`).
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional, Sequence

from ocibuild import mediatypes
from ocibuild.errors import OciBuildError
from ocibuild.untrusted import field, shown

DOCUMENTS = (*mediatypes.INDEXES, *mediatypes.MANIFESTS)
MANIFEST_KEYS = ("schemaVersion", "mediaType", "artifactType", "config", "layers", "subject",
                 "annotations")
INDEX_KEYS = ("schemaVersion", "mediaType", "artifactType", "manifests", "subject",
              "annotations")
DESCRIPTOR_KEYS = ("mediaType", "digest", "size", "urls", "platform", "annotations", "data",
                   "artifactType")
PLATFORM_KEYS = ("os", "architecture", "variant", "os.version", "os.features", "features")
# The image config (OCI and Docker) and its `config` and `rootfs` objects, as Go reads them.
CONFIG_KEYS = ("created", "author", "architecture", "os", "os.version", "os.features",
               "variant", "config", "rootfs", "history", "container", "container_config",
               "docker_version", "id", "parent", "comment")
RUN_CONFIG_KEYS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
                   "Labels", "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell",
                   "StopTimeout", "Hostname", "Domainname", "Image", "Memory", "MemorySwap",
                   "CpuShares", "AttachStdin", "AttachStdout", "AttachStderr", "Tty",
                   "OpenStdin", "StdinOnce", "NetworkDisabled", "MacAddress")
ROOTFS_KEYS = ("type", "diff_ids")
HISTORY_KEYS = ("created", "created_by", "author", "comment", "empty_layer")
# A Content-Type that says "JSON" says nothing about which document; any other one is a claim.
_GENERIC = ("", "application/json", "application/octet-stream", "text/plain")


def go_spelling(doc: Dict[str, Any], fields: Iterable[str], where: str) -> None:
    """Refuse a key Go would take for one of `fields` though it is spelled otherwise, and two
    keys Go would take for one field (`doc` is a JSON object Go reads into a struct; never a
    map such as `annotations`, where "A" and "a" are two names)."""
    folded = {f.casefold(): f for f in fields}
    seen: Dict[str, str] = {}
    for key in doc:
        name = folded.get(key.casefold())
        if name is not None and name != key:
            raise OciBuildError(
                f"{where}: the key {shown(key)!r} is not `{name}`, but Go readers (containerd, "
                f"docker, registries) take it for `{name}`; a document read two ways is "
                "refused")
        other = seen.setdefault(key.casefold(), key)
        if other != key:
            raise OciBuildError(
                f"{where}: the keys {shown(other)!r} and {shown(key)!r} differ only in case, "
                "and Go readers take them for one field; a document read two ways is refused")


def _media_type_of_shape(doc: Dict[str, Any], where: str) -> str:
    if "manifests" in doc:
        return mediatypes.OCI_INDEX
    if "config" in doc:
        return mediatypes.OCI_MANIFEST
    raise OciBuildError(f"{where} has no `mediaType` and neither `manifests` (an index) nor "
                        "`config` (an image manifest): it is not a document this tool reads")


def _check_shape(doc: Dict[str, Any], media_type: str, where: str) -> None:
    # Presence only: the types are checked by the readers of the fields.
    if media_type in mediatypes.INDEXES:
        if doc.get("manifests") is None:
            raise OciBuildError(f"{where}: `manifests` is missing")
        return
    if doc.get("config") is None:
        raise OciBuildError(f"{where}: `config` is missing")
    for i, raw in enumerate([doc["config"], *(field(doc, "layers", list, where) or [])]):
        # A config or layer typed as a manifest would make this digest name a second document.
        inner = raw.get("mediaType") if isinstance(raw, dict) else None
        if inner in DOCUMENTS:
            place = "config" if i == 0 else f"layers[{i - 1}]"
            raise OciBuildError(f"{where}: `{place}` has the media type {inner!r} of a manifest "
                                "or index; a config or layer is neither")


def document_type(doc: Dict[str, Any], where: str, *, claimed: Optional[str] = None,
                  claimed_by: str = "", exact: bool = False,
                  expect: Sequence[str] = DOCUMENTS) -> str:
    """The media type of the manifest or index `doc` (parsed JSON), from its bytes alone.

    `claimed` is what the outside says it is, by `claimed_by` ("the registry's Content-Type",
    "its descriptor in index.json"): it must agree, or (a header, unless `exact`) name no
    type at all (generic JSON). `expect` narrows the kinds accepted (index.json must be an
    index)."""
    go_spelling(doc, {*MANIFEST_KEYS, *INDEX_KEYS}, where)
    version = doc.get("schemaVersion", 2)
    if type(version) is not int or version != 2:  # True and 2.0 are not 2 to Go
        raise OciBuildError(f"{where}: `schemaVersion` is {shown(repr(version))}, not 2: only "
                            "OCI and Docker v2 schema 2 documents are supported")
    if "manifests" in doc and ("config" in doc or "layers" in doc):
        raise OciBuildError(f"{where} holds both `manifests` (an index) and `config`/`layers` "
                            "(an image manifest): one digest would name two images; refusing "
                            "it, as the image spec requires")
    media_type = field(doc, "mediaType", str, where)
    if media_type is None:
        media_type = _media_type_of_shape(doc, where)
    elif media_type not in DOCUMENTS:
        raise OciBuildError(f"{where}: media type {shown(media_type, 100)!r} is neither an image "
                            "manifest nor an index; only OCI and Docker v2 schema 2 images are "
                            "supported")
    check_claim(media_type, claimed, claimed_by, where, exact=exact)
    if media_type not in expect:
        raise OciBuildError(f"{where} is a {media_type} document; here only "
                            f"{' or '.join(expect)} belongs")
    _check_shape(doc, media_type, where)
    return media_type


def check_claim(media_type: str, claimed: Optional[str], claimed_by: str, where: str, *,
                exact: bool = False) -> None:
    """`claimed` (a Content-Type, or with `exact` a descriptor's `mediaType`, which the
    document pointing here was written with) agrees with `media_type`."""
    if claimed is None:
        return
    if exact:
        if claimed == media_type:
            return
    else:
        claim = claimed.split(";")[0].strip().lower()
        if claim in _GENERIC or claim == media_type.lower():
            return
    raise OciBuildError(f"{where} is a {media_type} by its own bytes, but {claimed_by} says "
                        f"{shown(claimed, 100)!r}; a digest must name one document, so neither "
                        "is believed")
