"""What an image's SBOMs and provenance say, as in-toto statements: made to be signed
(`cosign attest --key` does the same), and read back with typed, bounded readers.

A statement (https://in-toto.io/Statement/v1) names its subject, the image manifest, by
digest, and holds a predicate whose type says how to read it. cosign's predicate types:
`https://spdx.dev/Document` (an SPDX JSON document), `https://cyclonedx.org/bom` (a
CycloneDX JSON BOM), `https://slsa.dev/provenance/v1`. The same documents are also attached
unsigned, as OCI 1.1 referrers of their own media type, for scanners; `read_document` reads
either kind as the format its type names, and says which predicate it holds, so that a
referrer is believed only when a signed statement holds the same predicate.

The rule for every document: it must name the image digest in the field its format gives the
described artifact (SPDX: the package the document DESCRIBES, by its SHA256 checksum;
CycloneDX: `metadata.component`'s SHA-256 hash; a statement: its one subject), not anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

from ocibuild import canonical_json
from ocibuild.digest import bytes_digest, hex_of
from ocibuild.errors import OciBuildError
from ocibuild.untrusted import field, load_json, shown, str_list

STATEMENT_V1 = "https://in-toto.io/Statement/v1"
# What cosign itself writes (in-toto-golang's StatementInTotoV01); read, never written.
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
SPDX = "https://spdx.dev/Document"
CYCLONEDX = "https://cyclonedx.org/bom"
SLSA_V1 = "https://slsa.dev/provenance/v1"

SPDX_MEDIA_TYPE = "application/spdx+json"
CYCLONEDX_MEDIA_TYPE = "application/vnd.cyclonedx+json"
IN_TOTO_MEDIA_TYPE = "application/vnd.in-toto+json"
# The referrer artifact type each predicate is attached as.
ARTIFACT_TYPES = {SPDX: SPDX_MEDIA_TYPE, CYCLONEDX: CYCLONEDX_MEDIA_TYPE,
                  SLSA_V1: IN_TOTO_MEDIA_TYPE}
PREDICATE_TYPES = {SPDX_MEDIA_TYPE: SPDX, CYCLONEDX_MEDIA_TYPE: CYCLONEDX}
# An SBOM of a large Debian base is a few MiB; more is not a document we wrote.
MAX_DOCUMENT = 64 << 20


@dataclass(frozen=True)
class Predicate:
    """One document's predicate, checked to be about `subject`. `digest` is of its canonical
    JSON: a referrer and a signed statement say the same thing when these are equal."""

    predicate_type: str
    subject: str
    digest: str


def statement(predicate_type: str, predicate: dict, subject: str, name: str) -> bytes:
    """The statement cosign would make of `predicate` for the image `name@subject`."""
    return canonical_json.dumps({
        "_type": STATEMENT_V1,
        "subject": [{"name": name, "digest": {"sha256": hex_of(subject)}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    })


def _obj(doc: Dict[str, Any], key: str, where: str) -> Dict[str, Any]:
    return field(doc, key, dict, where, required=True)


def _list(doc: Dict[str, Any], key: str, where: str) -> List[Any]:
    return field(doc, key, list, where, required=True)


def _objects(doc: Dict[str, Any], key: str, where: str) -> List[Dict[str, Any]]:
    items = field(doc, key, list, where) or []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise OciBuildError(f"{where}: `{key}[{i}]` must be a JSON object")
    return items


def _spdx(doc: Dict[str, Any], subject: str, where: str) -> None:
    """SPDX 2.3 JSON: the package the document DESCRIBES has the image's SHA256 checksum."""
    version = field(doc, "spdxVersion", str, where, required=True)
    if not version.startswith("SPDX-2."):
        raise OciBuildError(f"{where}: `spdxVersion` {shown(version)!r} is not SPDX 2")
    described = set(str_list(doc, "documentDescribes", where) or [])
    for i, rel in enumerate(_objects(doc, "relationships", where)):
        here = f"{where} relationships[{i}]"
        if field(rel, "relationshipType", str, here) == "DESCRIBES" and \
                field(rel, "spdxElementId", str, here) == "SPDXRef-DOCUMENT":
            described.add(field(rel, "relatedSpdxElement", str, here, required=True))
    for i, package in enumerate(_objects(doc, "packages", where)):
        here = f"{where} packages[{i}]"
        if field(package, "SPDXID", str, here) not in described:
            continue
        for j, checksum in enumerate(_objects(package, "checksums", here)):
            if field(checksum, "algorithm", str, f"{here} checksums[{j}]") == "SHA256" and \
                    field(checksum, "checksumValue", str, f"{here} checksums[{j}]") \
                    == hex_of(subject):
                return
    raise OciBuildError(f"{where}: no package the SPDX document describes has the SHA256 "
                        f"checksum of {subject}")


def _cyclonedx(doc: Dict[str, Any], subject: str, where: str) -> None:
    """CycloneDX JSON: `metadata.component`, what the BOM is about, has the image's hash."""
    if field(doc, "bomFormat", str, where, required=True) != "CycloneDX":
        raise OciBuildError(f"{where}: `bomFormat` is not \"CycloneDX\"")
    component = _obj(_obj(doc, "metadata", where), "component", f"{where} metadata")
    here = f"{where} metadata.component"
    for i, digest in enumerate(_objects(component, "hashes", here)):
        if field(digest, "alg", str, f"{here} hashes[{i}]") == "SHA-256" and \
                field(digest, "content", str, f"{here} hashes[{i}]") == hex_of(subject):
            return
    raise OciBuildError(f"{where}: the BOM's `metadata.component` has no SHA-256 hash of "
                        f"{subject}")


def _slsa(doc: Dict[str, Any], subject: str, where: str) -> None:
    """SLSA Provenance v1: its required fields, of their types."""
    build = _obj(doc, "buildDefinition", where)
    field(build, "buildType", str, f"{where} buildDefinition", required=True)
    _obj(build, "externalParameters", f"{where} buildDefinition")
    _objects(build, "resolvedDependencies", f"{where} buildDefinition")
    builder = _obj(_obj(doc, "runDetails", where), "builder", f"{where} runDetails")
    field(builder, "id", str, f"{where} runDetails.builder", required=True)


_PREDICATE_READERS = {SPDX: _spdx, CYCLONEDX: _cyclonedx, SLSA_V1: _slsa}


def _canonical(value: Any, where: str) -> bytes:
    try:
        return canonical_json.dumps(value)
    except (UnicodeEncodeError, ValueError):  # "\ud800": JSON can spell a lone surrogate
        raise OciBuildError(f"{where} holds a string that is not Unicode text") from None


def _predicate(predicate_type: str, predicate: Dict[str, Any], subject: str,
               where: str) -> Predicate:
    _PREDICATE_READERS[predicate_type](predicate, subject, where)
    return Predicate(predicate_type, subject, bytes_digest(_canonical(predicate, where)))


def read_statement(data: bytes, subject: str, where: str) -> Predicate:
    """An in-toto statement about exactly `subject` (its one subject, by sha256 alone), of a
    predicate type this tool reads, read by that type."""
    doc = load_json(data, where, max_bytes=MAX_DOCUMENT)
    kind = field(doc, "_type", str, where, required=True)
    if kind not in (STATEMENT_V1, STATEMENT_V01):
        raise OciBuildError(f"{where}: `_type` {shown(kind)!r} is not an in-toto statement")
    subjects = _list(doc, "subject", where)
    # One subject, one digest: a statement about several images is not one we make, and
    # "this image among others" is how a statement of another build is passed off.
    if len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise OciBuildError(f"{where}: the statement has {len(subjects)} subjects; one, "
                            f"{subject}, is expected")
    digest = _obj(subjects[0], "digest", f"{where} subject[0]")
    if digest != {"sha256": hex_of(subject)}:
        raise OciBuildError(f"{where}: the statement is about {shown(str(digest), 160)}, not "
                            f"about {subject}")
    predicate_type = field(doc, "predicateType", str, where, required=True)
    if predicate_type not in _PREDICATE_READERS:
        raise OciBuildError(f"{where}: predicate type {shown(predicate_type)!r} is none of "
                            f"{', '.join(_PREDICATE_READERS)}")
    return _predicate(predicate_type, _obj(doc, "predicate", where), subject, where)


def read_document(media_type: str, data: bytes, subject: str, where: str) -> Predicate:
    """A referrer's blob read as the format `media_type` names: an SPDX or CycloneDX JSON
    document (its own predicate), or an in-toto statement."""
    if media_type == IN_TOTO_MEDIA_TYPE:
        return read_statement(data, subject, where)
    if media_type not in PREDICATE_TYPES:
        raise OciBuildError(f"{where}: {shown(media_type)!r} is not a document type this "
                            "tool reads")
    doc = load_json(data, where, max_bytes=MAX_DOCUMENT)
    return _predicate(PREDICATE_TYPES[media_type], doc, subject, where)


def read_referrer(media_type: str, data: bytes, subject: str, where: str) -> Predicate:
    """An unsigned referrer's document (`read_document`), which must also be canonical JSON
    (as this tool writes every one): a duplicate key is read as its last value here and as
    its first by some other parser, so a document that says one thing to `verify` and
    another to a scanner is refused, as is any other second spelling."""
    predicate = read_document(media_type, data, subject, where)
    if _canonical(load_json(data, where, max_bytes=MAX_DOCUMENT), where) != data:
        raise OciBuildError(f"{where}: not canonical JSON (sorted keys, no spaces, no key "
                            "twice), as every document this tool writes is; another reader "
                            "could take it for something else")
    return predicate


def predicate_of(media_type: str, data: bytes, where: str) -> tuple:
    """(predicate type, predicate) of a document we made, to sign: an SBOM is its own
    predicate, a statement holds its predicate."""
    doc = load_json(data, where, max_bytes=MAX_DOCUMENT)
    if media_type == IN_TOTO_MEDIA_TYPE:
        return field(doc, "predicateType", str, where, required=True), \
            _obj(doc, "predicate", where)
    if media_type not in PREDICATE_TYPES:
        raise OciBuildError(f"{where}: {shown(media_type)!r} is not a document type this "
                            "tool signs")
    return PREDICATE_TYPES[media_type], doc
