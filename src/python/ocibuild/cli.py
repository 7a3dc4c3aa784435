"""`ocibuild`: the core as a command, run inside Pants' sandbox or by hand.

    ocibuild layer --spec SPEC.json --out-dir OUT
        SPEC: {"mappings": [{"source": PATH, "dest": "app/app.pex", "mode": null | 493 | "0755"}],
               "compression": "gzip" | "zstd" | "none", "level": null | INT, "mtime": 0,
               "owner": null | [UID, GID] (for everything under the mappings' dests),
               "compressor": null | "the version the caller keyed its cache on",
               "gzip_engine": null | "libdeflate" | "zlib" (null: libdeflate, the same bytes on
               every machine; zlib: the Python's own zlib, whose bytes depend on its build),
               "executables": null | [PATH, ...] (the executable inputs, as a file store
               records them; other files are 0644 whatever the disk says; null: the disk)}
        Writes OUT/blobs/sha256/<hex> and OUT/layer.json {"mediaType", "digest", "size",
        "diffID"}, and prints the latter. (SPEC is a `LayerRequest`: ocibuild.protocol.layer.)
    ocibuild run --request REQUEST.json [--out-dir OUT]   (what the Pants plugin runs: a typed,
        versioned request document of ocibuild.protocol, whose "kind" names the command)
    ocibuild assemble --spec REQUEST.json --out-dir OUT   (an AssembleRequest: layer
        descriptors as `ocibuild layer` prints them, base layout, settings; ocibuild.assemble)
    ocibuild index --image DIR [--image DIR ...] [--ref-name NAME] --out-dir OUT  (images
        assembled for several platforms under one image index)
    ocibuild docker-archive --layout DIR [--ref-name NAME] --repo-tag REPO:TAG ... --out F.tar
    ocibuild unpack-layout --archive F.tar --out-dir DIR  (an OCI archive into a layout)
    ocibuild push --layout DIR [--ref-name NAME] --to REGISTRY/REPO[:TAG] [--tag T ...]
                  [--mount-from REPO]    (an image, or an index with all its images)
    ocibuild pull REGISTRY/REPO[:TAG][@DIGEST] [--platform os/arch] --out-dir DIR
    ocibuild resolve REGISTRY/REPO[:TAG]           (the digest to pin)
    ocibuild build [-f IMAGE.yaml] --base REF|oci:DIR[:REF_NAME]|scratch --layer SRC[:DEST] ...
                   [--platform os/arch ...] (--output DIR | --push REGISTRY/REPO[:TAG])
        (base + files + settings in one command, no daemon; see docs/cli.md, ocibuild.build)
    ocibuild run --request SBOM.json --out-dir OUT  (an SbomRequest: SPDX and CycloneDX JSON
        of an image from its Debian lockfiles and PEX-INFOs; ocibuild.sbom)
    ocibuild debian-layer --deb P.deb [--deb Q.deb ...] --out-dir OUT  (one layer of them;
                                       and debian-root-layer, debian-config-layer)
    Registry commands take --insecure (plain HTTP) and --ca-cert PEM; credentials are looked
    up as docker and podman do (see ocibuild/registry/credentials.py).

Prints a JSON result on stdout; on failure an `ErrorResult` document (ocibuild.protocol.error)
instead. Exit codes: 0 done; 2 bad input (including an unreadable input file and any other
operating-system error, e.g. a full disk), with `ocibuild: error: <message>` on stderr; 1 a
crash, which is a bug in ocibuild, with the traceback on stderr; 128 + N when stopped by signal
N (SIGTERM 143, SIGINT 130, SIGHUP 129), with `ocibuild: interrupted` on stderr. A signal
unwinds the command like an error, so its temp files are removed; a second signal during
that cleanup stops the process at once, and a later run sweeps what it left (see
`ocibuild.atomic`). Requests are read capped (`MAX_DOCUMENT`) and type-checked.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import sys
import traceback
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, Optional, Tuple, Type

# Each command imports what only it needs, its request type included: a layer process (the
# most frequent, one per layer) should not pay for the image model, layouts, the registry
# client and a dozen other request types at start-up.
from ocibuild import canonical_json
from ocibuild.atomic import atomic_write
from ocibuild.errors import OciBuildError, escaped
from ocibuild.protocol.document import MAX_DOCUMENT, Document
from ocibuild.protocol.error import BAD_INPUT, CRASH, INTERRUPTED, ErrorResult
from ocibuild.untrusted import os_reason

if TYPE_CHECKING:
    from ocibuild.protocol.archive import (DockerArchiveRequest, DockerArchiveResult,
                                           UnpackLayoutRequest, UnpackLayoutResult)
    from ocibuild.protocol.assemble import AssembleRequest, AssembleResult
    from ocibuild.protocol.debian import DebianLayerRequest
    from ocibuild.protocol.index import IndexRequest, IndexResult
    from ocibuild.protocol.layer import CompressorRequest, CompressorVersion, LayerDescriptor
    from ocibuild.protocol.layer import LayerRequest
    from ocibuild.protocol.provenance import ProvenanceRequest, ProvenanceResult
    from ocibuild.protocol.push import PushRequest, PushResult
    from ocibuild.protocol.referrers import ReferrersRequest, ReferrersResult
    from ocibuild.protocol.sbom import SbomRequest, SbomResult
    from ocibuild.protocol.sign import SignRequest, SignResult, VerifyRequest, VerifyResult

USER_ERROR = 2
# Signals that ask a command to stop (a Ctrl-C, Pants cancelling a process, a closed terminal).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _write_descriptor(out_dir: str, result: LayerDescriptor) -> LayerDescriptor:
    """layer.json beside the blob, for hand-written pipelines (`ocibuild layer` documents it)."""
    atomic_write(os.path.join(out_dir, "layer.json"), canonical_json.dumps(result.to_json()))
    return result


def run_layer(request: LayerRequest, out_dir: str) -> LayerDescriptor:
    from ocibuild.layer.request import layer_of

    return _write_descriptor(out_dir, layer_of(request, out_dir))


def run_compressor_version(request: CompressorRequest, out_dir: Optional[str]
                           ) -> CompressorVersion:
    from ocibuild.layer.compression import compressor_version
    from ocibuild.protocol.layer import CompressorVersion

    return CompressorVersion(compressor_version())


def run_base_tree(request, out_dir: Optional[str]):
    from ocibuild.layer.base_tree import tree_of

    return tree_of(request)


def run_debian_layer(request: DebianLayerRequest, out_dir: str) -> LayerDescriptor:
    from ocibuild.debian.base import build_layer

    return _write_descriptor(out_dir, build_layer(request, None, out_dir))


def run_assemble(request: AssembleRequest, out_dir: str) -> AssembleResult:
    from ocibuild.assemble import assemble

    return assemble(request, out_dir)


def run_index(request: IndexRequest, out_dir: str) -> IndexResult:
    from ocibuild.index import index

    return index(request, out_dir)


def run_docker_archive(request: DockerArchiveRequest, out_dir: Optional[str]
                       ) -> DockerArchiveResult:
    from ocibuild.docker_archive import write_docker_archive
    from ocibuild.layout import OciLayout, resolve_image
    from ocibuild.protocol.archive import DockerArchiveResult

    layout = OciLayout(request.layout)
    image = resolve_image(layout, ref_name=request.ref_name)
    write_docker_archive(layout, image, list(request.repo_tags), request.out)
    return DockerArchiveResult(request.out, image.manifest_descriptor.digest)


def run_unpack_layout(request: UnpackLayoutRequest, out_dir: str) -> UnpackLayoutResult:
    from ocibuild.oci_archive import unpack_oci_archive
    from ocibuild.protocol.archive import UnpackLayoutResult

    unpack_oci_archive(request.archive, out_dir)
    return UnpackLayoutResult(out_dir)


def _transport(ref, insecure: bool, ca_cert: Optional[str]):
    # Imported here: only registry commands need requests; sandboxed layer builds never load it.
    from ocibuild.registry.client import registry_transport

    return registry_transport(ref, insecure=insecure, ca_cert=ca_cert)


def _write_lines(path: str, lines: List[str], append: bool, what: str) -> None:
    """Written whole or not at all (a temp beside it, renamed): a reader, or a push killed
    half-way, never sees half a digest. `append`: the old lines are kept, before these."""
    from ocibuild.atomic import atomic_write
    from ocibuild.untrusted import os_reason, read_file

    old = read_file(path, what, 16 << 20) if append and os.path.exists(path) else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    try:
        atomic_write(path, old + "".join(line + "\n" for line in lines).encode())
    except OSError as err:
        raise OciBuildError(f"cannot write {what} {path!r}: {os_reason(err)}; it is left as "
                            "it was") from None


def run_push(request: PushRequest, out_dir: Optional[str]) -> PushResult:
    from ocibuild.image.index import Index
    from ocibuild.layout import OciLayout, read_ref
    from ocibuild.protocol.push import PushResult
    from ocibuild.reference import parse_reference
    from ocibuild.registry.push import push_image, push_index

    dest = parse_reference(request.to)
    transport = _transport(dest, request.insecure, request.ca_cert)
    layout = OciLayout(request.layout)
    what = read_ref(layout, request.ref_name)
    tags = [*([dest.tag] if dest.tag else []), *request.tags]
    push = push_index if isinstance(what, Index) else push_image
    result = push(layout, what, dest, transport, tags,  # type: ignore[operator]
                  mount_from=request.mount_from, jobs=request.jobs,
                  chunk_size=request.chunk_size)
    refs = [f"{dest.name}:{tag}@{result.manifest_digest}" for tag in tags] or [result.reference]
    if request.digest_file:
        _write_lines(request.digest_file, [result.manifest_digest], False, "the digest file")
    if request.refs_file:
        _write_lines(request.refs_file, refs, request.append_refs, "the refs file")
    return PushResult(result.reference, result.manifest_digest, tuple(refs),
                      tuple(result.uploaded), tuple(result.mounted), tuple(result.tags_written),
                      transport.retries, tuple(result.referrers))


def run_build(request, out_dir: Optional[str]):
    from ocibuild.build import build

    return build(request)


def run_sbom(request: SbomRequest, out_dir: str) -> SbomResult:
    from ocibuild.sbom.build import sbom

    return sbom(request, out_dir)


def run_provenance(request: ProvenanceRequest, out_dir: str) -> ProvenanceResult:
    from ocibuild.provenance import provenance

    return provenance(request, out_dir)


def run_sign(request: SignRequest, out_dir: str) -> SignResult:
    from ocibuild.reference import parse_reference
    from ocibuild.registry.signatures import sign_and_push

    transport = _transport(parse_reference(request.to), request.insecure, request.ca_cert)
    return sign_and_push(request, transport, out_dir)


def run_verify(request: VerifyRequest, out_dir: Optional[str]) -> VerifyResult:
    from ocibuild.reference import parse_reference
    from ocibuild.registry.signatures import verify

    transport = _transport(parse_reference(request.image), request.insecure, request.ca_cert)
    return verify(request, transport)


def run_referrers(request: ReferrersRequest, out_dir: str) -> ReferrersResult:
    from ocibuild.layout.referrers import attach

    return attach(request, out_dir)


def run_dockerfile_plan(request, out_dir: Optional[str]):
    from ocibuild.dockerfile.plan import plan

    return plan(request)


def run_dockerfile_step(request, out_dir: str):
    from ocibuild.dockerfile.state import step

    return step(request, out_dir)


def run_dockerfile_image(request, out_dir: str):
    from ocibuild.dockerfile.state import image

    return image(request, out_dir)


# What `ocibuild run` does with each kind of request (the plugin runs every command so): the
# request type (module, class; imported when asked for) and the command.
RUNNERS: Dict[str, Tuple[str, str, Callable]] = {
    "layer": ("layer", "LayerRequest", run_layer),
    "compressor-version": ("layer", "CompressorRequest", run_compressor_version),
    "base-tree": ("layer", "BaseTreeRequest", run_base_tree),
    "assemble": ("assemble", "AssembleRequest", run_assemble),
    "index": ("index", "IndexRequest", run_index),
    "debian-layer": ("debian", "DebianLayerRequest", run_debian_layer),
    "docker-archive": ("archive", "DockerArchiveRequest", run_docker_archive),
    "unpack-layout": ("archive", "UnpackLayoutRequest", run_unpack_layout),
    "push": ("push", "PushRequest", run_push),
    "build": ("build", "BuildRequest", run_build),
    "sbom": ("sbom", "SbomRequest", run_sbom),
    "provenance": ("provenance", "ProvenanceRequest", run_provenance),
    "sign": ("sign", "SignRequest", run_sign),
    "verify": ("sign", "VerifyRequest", run_verify),
    "referrers": ("referrers", "ReferrersRequest", run_referrers),
    "dockerfile-plan": ("dockerfile", "DockerfilePlanRequest", run_dockerfile_plan),
    "dockerfile-step": ("dockerfile", "DockerfileStepRequest", run_dockerfile_step),
    "dockerfile-image": ("dockerfile", "DockerfileImageRequest", run_dockerfile_image),
}


def request_type(kind: str) -> Type[Document]:
    module, name, _ = RUNNERS[kind]
    return getattr(importlib.import_module(f"ocibuild.protocol.{module}"), name)


def cmd_run(args: argparse.Namespace) -> dict:
    from ocibuild.untrusted import load_json_file

    raw = load_json_file(args.request, "the request", MAX_DOCUMENT)
    kind = raw.get("kind")
    if kind not in RUNNERS:
        raise OciBuildError(f"the request {args.request!r} is a {kind!r} document; known: "
                            f"{', '.join(sorted(RUNNERS))}")
    request = request_type(kind).from_json(raw, f"the request {args.request!r}")
    return RUNNERS[kind][2](request, args.out_dir).to_json()


def cmd_compressor_version(args: argparse.Namespace) -> dict:
    from ocibuild.protocol.layer import CompressorRequest

    return run_compressor_version(CompressorRequest(), None).to_json()


def cmd_layer(args: argparse.Namespace) -> dict:
    from ocibuild.protocol.layer import LayerRequest

    return run_layer(LayerRequest.load(args.spec, "the layer spec"), args.out_dir).to_json()


def cmd_assemble(args: argparse.Namespace) -> dict:
    from ocibuild.protocol.assemble import AssembleRequest

    return run_assemble(AssembleRequest.load(args.spec, "the assemble request"),
                        args.out_dir).to_json()


def cmd_index(args: argparse.Namespace) -> dict:
    from ocibuild.protocol.index import IndexRequest

    request = IndexRequest(tuple(args.image), tuple(args.ref_name or ["latest"]))
    return run_index(request, args.out_dir).to_json()


def cmd_docker_archive(args: argparse.Namespace) -> dict:
    from ocibuild.protocol.archive import DockerArchiveRequest

    request = DockerArchiveRequest(args.layout, args.out, args.ref_name, tuple(args.repo_tag))
    return run_docker_archive(request, None).to_json()


def cmd_unpack_layout(args: argparse.Namespace) -> dict:
    from ocibuild.protocol.archive import UnpackLayoutRequest

    return run_unpack_layout(UnpackLayoutRequest(args.archive), args.out_dir).to_json()


def cmd_push(args: argparse.Namespace) -> dict:
    from ocibuild.protocol.push import PushRequest

    request = PushRequest(
        layout=args.layout, to=args.to, ref_name=args.ref_name, tags=tuple(args.tag),
        mount_from=args.mount_from, jobs=args.jobs, chunk_size=args.chunk_size,
        digest_file=args.digest_file, refs_file=args.refs_file, append_refs=args.append_refs,
        insecure=args.insecure, ca_cert=args.ca_cert)
    return run_push(request, None).to_json()


def cmd_pull(args: argparse.Namespace) -> dict:
    from ocibuild.platform import parse_platform
    from ocibuild.reference import parse_reference
    from ocibuild.registry.pull import pull_to_layout

    ref = parse_reference(args.image)
    reference = ref.digest or ref.tag or "latest"
    image = pull_to_layout(_transport(ref, args.insecure, args.ca_cert), ref, reference,
                           parse_platform(args.platform), args.out_dir, ref_name=args.ref_name)
    return {"manifest_digest": image.manifest_descriptor.digest, "out_dir": args.out_dir,
            "layers": [d.digest for d in image.layers]}


def cmd_resolve(args: argparse.Namespace) -> dict:
    """What a tag names now: the digest to pin, and the platforms it offers."""
    from ocibuild.reference import parse_reference
    from ocibuild.registry.pull import fetch_manifest

    ref = parse_reference(args.image)
    manifest = fetch_manifest(_transport(ref, args.insecure, args.ca_cert), ref,
                              ref.digest or ref.tag or "latest")
    platforms = []
    if manifest.is_index:
        from ocibuild.image.manifest import Descriptor
        from ocibuild.platform import describe
        from ocibuild.untrusted import field
        where = f"the index {manifest.digest} of {ref.name}"
        entries = [Descriptor.from_json(m, where=f"{where} manifests[{i}]") for i, m in
                   enumerate(field(manifest.json(), "manifests", list, where) or [])]
        platforms = [describe(d.platform) for d in entries
                     if (d.platform or {}).get("os") != "unknown"]
    return {"image": str(ref), "digest": manifest.digest, "media_type": manifest.media_type,
            "platforms": platforms}


def _debian_command(layer: str):
    def run(args: argparse.Namespace) -> dict:
        from ocibuild.protocol.debian import DebianLayerRequest

        request = DebianLayerRequest(
            layer=layer, debs=tuple(getattr(args, "deb", None) or getattr(args, "debs", ())),
            suite=getattr(args, "suite", None),
            ca_certificates=getattr(args, "ca_certificates", None),
            compression=args.compression, compressor=args.compressor)
        return run_debian_layer(request, args.out_dir).to_json()
    return run


def _registry_flags(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--insecure", action="store_true", help="plain HTTP (only when asked)")
    cmd.add_argument("--ca-cert", help="CA bundle that signed the registry's certificate")


def _positive(text: str) -> int:
    """An argparse type: a whole number >= 1 (0 jobs would hang, 0-byte chunks never end)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= 1, e.g. 4")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ocibuild", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name, run, help_ in (("layer", cmd_layer, "build one layer blob from a spec"),
                             ("assemble", cmd_assemble, "write config, manifest, index.json")):
        cmd = sub.add_parser(name, help=help_)
        cmd.add_argument("--spec", required=True)
        cmd.add_argument("--out-dir", required=True)
        cmd.set_defaults(run=run)
    run = sub.add_parser("run", help="run the request document REQUEST (what the Pants plugin "
                         "does; its kind names the command, see ocibuild.protocol)")
    run.add_argument("--request", required=True)
    run.add_argument("--out-dir", help="where the command writes its output files")
    run.set_defaults(run=cmd_run)
    index = sub.add_parser("index", help="put images (one per platform) under one image index")
    index.add_argument("--image", action="append", required=True,
                       help="a layout holding one image; repeat for each platform")
    index.add_argument("--ref-name", action="append", help="name the index (repeatable)")
    index.add_argument("--out-dir", required=True)
    index.set_defaults(run=cmd_index)
    version = sub.add_parser("compressor-version", help="what decides compressed bytes")
    version.set_defaults(run=cmd_compressor_version)
    archive = sub.add_parser("docker-archive", help="write a docker-archive tarball")
    archive.add_argument("--layout", required=True)
    archive.add_argument("--ref-name", help="which image of the layout (its ref name)")
    archive.add_argument("--repo-tag", action="append", default=[], help="REPO:TAG, repeatable")
    archive.add_argument("--out", required=True)
    archive.set_defaults(run=cmd_docker_archive)
    unpack = sub.add_parser("unpack-layout", help="unpack an OCI archive tar into a layout")
    unpack.add_argument("--archive", required=True)
    unpack.add_argument("--out-dir", required=True)
    unpack.set_defaults(run=cmd_unpack_layout)
    push = sub.add_parser("push", help="push one image or image index of a layout to a "
                          "registry (credentials: see ocibuild.registry.credentials)")
    push.add_argument("--layout", required=True)
    push.add_argument("--ref-name", help="which image or index of the layout (its ref name)")
    push.add_argument("--to", required=True, help="REGISTRY/REPOSITORY[:TAG]")
    push.add_argument("--tag", action="append", default=[], help="also tag it TAG, repeatable")
    push.add_argument("--mount-from", help="a repository on the same registry to mount "
                      "blobs from (the base image's)")
    push.add_argument("--jobs", type=_positive, default=4, help="blobs uploaded at once")
    push.add_argument("--chunk-size", type=_positive, default=64 << 20,
                      help="blobs larger than this go up in PATCH chunks of this size")
    push.add_argument("--digest-file", help="write the manifest digest here")
    push.add_argument("--refs-file", help="write REGISTRY/REPO:TAG@DIGEST lines here")
    push.add_argument("--append-refs", action="store_true", help="append to --refs-file")
    _registry_flags(push)
    push.set_defaults(run=cmd_push)
    pull = sub.add_parser("pull", help="pull one platform's image into an OCI layout")
    pull.add_argument("image", help="REGISTRY/REPOSITORY[:TAG][@DIGEST]")
    pull.add_argument("--platform", default="linux/amd64")
    pull.add_argument("--ref-name", help="name the image in the layout's index.json")
    pull.add_argument("--out-dir", required=True)
    _registry_flags(pull)
    pull.set_defaults(run=cmd_pull)
    resolve = sub.add_parser("resolve", help="print the digest a tag names now")
    resolve.add_argument("image", help="REGISTRY/REPOSITORY[:TAG]")
    _registry_flags(resolve)
    resolve.set_defaults(run=cmd_resolve)
    from ocibuild.cli_build import add_parsers
    from ocibuild.protocol import debian

    add_parsers(sub)
    for name, run, help_ in (
            ("debian-layer", _debian_command(debian.PACKAGES),
             "the files of one or more .debs as one layer (no dpkg)"),
            ("debian-root-layer", _debian_command(debian.ROOT),
             "merged-/usr symlinks and base dirs"),
            ("debian-config-layer", _debian_command(debian.CONFIG),
             "/etc/passwd, /etc/group and maintainer-script effects")):
        cmd = sub.add_parser(name, help=help_)
        cmd.add_argument("--out-dir", required=True)
        cmd.add_argument("--compression", default="gzip", choices=("gzip", "zstd"))
        cmd.add_argument("--compressor", help="the compressor the caller keyed its cache on")
        if name == "debian-layer":
            cmd.add_argument("--deb", required=True, action="append",
                             help="a .deb to put in the layer; repeat for several (the layer "
                                  "holds them sorted by package name, whatever the order)")
        if name == "debian-config-layer":
            cmd.add_argument("--ca-certificates", help="the ca-certificates .deb, if installed")
            cmd.add_argument("--deb", dest="debs", action="append", default=[],
                             help="a .deb of the set (repeatable): its maintainer scripts' "
                             "effects (CA bundle, alternatives, tzdata) are reproduced")
            cmd.add_argument("--suite", help="the Debian suite, for /etc/os-release when "
                             "base-files is not in the set")
        cmd.set_defaults(run=run)
    return p


class Interrupted(BaseException):
    """A stop signal, raised where the command is so it unwinds: temp files are removed.
    A BaseException, so no `except Exception` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_stop_signal(signum: int, frame: object) -> None:
    # A second signal while we clean up stops the process at once; a later run sweeps.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    raise Interrupted(signum)


@contextlib.contextmanager
def _stop_signals_unwind() -> Iterator[None]:
    previous = {sig: signal.signal(sig, _on_stop_signal) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _fail(kind: str, message: str, exit_code: int, detail: str = "") -> int:
    """The error twice: for a human on stderr, and as a document on stdout for the plugin.
    Escaped here too: a crash's text and traceback may quote what a server sent."""
    message, detail = escaped(message), escaped(detail)
    print(f"ocibuild: {'interrupted' if kind == INTERRUPTED else 'error: ' + message}"
          + (f"\n{detail}" if detail else ""), file=sys.stderr)
    print(json.dumps(ErrorResult(kind, message, exit_code, detail).to_json(), sort_keys=True))
    return exit_code


def main(argv: Optional[List[str]] = None) -> int:
    from ocibuild.cli_dockerfile import parser as dockerfile_parser, wants_dockerfile

    argv = sys.argv[1:] if argv is None else argv
    # `build --dockerfile/--context` is a Dockerfile build, with kaniko's flags: its own parser.
    args = (dockerfile_parser().parse_args(argv[1:]) if wants_dockerfile(argv)
            else parser().parse_args(argv))
    try:
        with _stop_signals_unwind():
            result = args.run(args)
            if result is not None:  # None: the command printed a summary for humans
                print(json.dumps(result, sort_keys=True))
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`ocibuild build ... | head -1`) after the work was done: nothing
        # left to tell it. Silence the flush at exit instead of a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Interrupted as stop:
        return _fail(INTERRUPTED, "interrupted", 128 + stop.signum)
    except OciBuildError as err:
        return _fail(BAD_INPUT, str(err), USER_ERROR)
    except OSError as err:  # the machine's problem (permissions, a full disk), not a bug here
        where = f"{err.filename!r}: " if err.filename else ""
        return _fail(BAD_INPUT, f"{where}{os_reason(err)}", USER_ERROR)
    except Exception as err:  # a bug in ocibuild: say so, with the traceback to report
        return _fail(CRASH, f"{type(err).__name__}: {err}", 1, traceback.format_exc())
    return 0


if __name__ == "__main__":
    sys.exit(main())
