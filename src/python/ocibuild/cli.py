"""`ocibuild`: the core as a command, run inside Pants' sandbox or by hand.

    ocibuild layer --spec SPEC.json --out-dir OUT
        SPEC: {"mappings": [{"source": PATH, "dest": "app/app.pex", "mode": null | 493 | "0755"}],
               "compression": "gzip" | "zstd" | "none", "level": null | INT, "mtime": 0,
               "owner": null | [UID, GID] (for everything under the mappings' dests),
               "compressor": null | "the version the caller keyed its cache on",
               "gzip_engine": null | "libdeflate" | "zlib" (null: libdeflate, the same bytes on
               every machine; zlib: the Python's own zlib, whose bytes depend on its build)}
        Writes OUT/blobs/sha256/<hex> and OUT/layer.json {"mediaType", "digest", "size",
        "diffID"}, and prints the latter.
    ocibuild assemble --spec SPEC.json --out-dir OUT     (spec: see ocibuild.assemble)
    ocibuild docker-archive --layout DIR [--ref-name NAME] --repo-tag REPO:TAG ... --out F.tar
    ocibuild unpack-layout --archive F.tar --out-dir DIR  (an OCI archive into a layout)
    ocibuild push --layout DIR [--ref-name NAME] --to REGISTRY/REPO[:TAG] [--tag T ...]
                  [--mount-from REPO]    (an image, or an index with all its images)
    ocibuild pull REGISTRY/REPO[:TAG][@DIGEST] [--platform os/arch] --out-dir DIR
    ocibuild resolve REGISTRY/REPO[:TAG]           (the digest to pin)
    ocibuild debian-layer --deb P.deb [--deb Q.deb ...] --out-dir OUT  (one layer of them;
                                       and debian-root-layer, debian-config-layer)
    Registry commands take --insecure (plain HTTP) and --ca-cert PEM; credentials are looked
    up as docker and podman do (see ocibuild/registry/credentials.py).

Prints a JSON result on stdout. Exit codes: 0 done; 2 bad input (including an unreadable
input file and any other operating-system error, e.g. a full disk), with `ocibuild: error:
<message>` on stderr; 1 a crash, which is a bug in ocibuild; 128 + N when stopped by signal
N (SIGTERM 143, SIGINT 130, SIGHUP 129), with `ocibuild: interrupted` on stderr. A signal
unwinds the command like an error, so its temp files are removed; a second signal during
that cleanup stops the process at once, and a later run sweeps what it left (see
`ocibuild.atomic`). Specs are read capped (`MAX_SPEC`) and type-checked.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from typing import Iterator, List, Optional

# Each command imports what only it needs: a layer process (the most frequent, one per layer)
# should not pay for the image model, layouts and the registry client at start-up.
from ocibuild import canonical_json
from ocibuild.atomic import atomic_write
from ocibuild.errors import OciBuildError
from ocibuild.layer.builder import build_layer
from ocibuild.layer.compression import GZIP, compressor_version
from ocibuild.layer.entries import collect_entries, owned_by, parse_mapping
from ocibuild.untrusted import field, load_json_file, local_path, os_reason

USER_ERROR = 2
LAYER_SPEC_KEYS = ("mappings", "compression", "level", "mtime", "compressor", "owner",
                   "gzip_engine")
# A spec lists paths and settings: a layer of 100,000 mapped files is ~15 MiB of JSON.
MAX_SPEC = 64 << 20
# Signals that ask a command to stop (a Ctrl-C, Pants cancelling a process, a closed terminal).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _load_spec(path: str) -> dict:
    return load_json_file(path, "the spec", MAX_SPEC)


def _mode(raw: object, where: str) -> Optional[int]:
    """JSON has no octal, so "0755" is accepted beside 493."""
    if raw is None or (isinstance(raw, int) and not isinstance(raw, bool)):
        return raw  # type: ignore[return-value]
    if isinstance(raw, str) and raw and all(c in "01234567" for c in raw):
        return int(raw, 8)
    raise OciBuildError(f'{where}: mode {raw!r} must be an integer or an octal string, '
                        'e.g. "0755" or 493')


def _mappings(spec: dict, path: str) -> list:
    raw = spec.get("mappings")
    if not isinstance(raw, list) or not raw:
        raise OciBuildError(f'the layer spec {path!r} maps no files; give "mappings": '
                            '[{"source": "dist/app.pex", "dest": "app/app.pex"}]')
    mappings = []
    for i, m in enumerate(raw):
        where = f"the layer spec {path!r} mappings[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("source"), str) \
                or not isinstance(m.get("dest"), str):
            raise OciBuildError(f'{where}: {m!r} must be {{"source": PATH, "dest": PATH}}')
        mode = _mode(m.get("mode"), where)
        source, dest = local_path(m["source"], f"{where} source"), m["dest"]
        mappings.append((source, dest) if mode is None else (source, dest, mode))
    return mappings


def _check_compressor(expected: Optional[str]) -> None:
    """The caller keyed its cache on `expected`: refuse to write bytes another build made."""
    actual = compressor_version()
    if expected is not None and expected != actual:
        raise OciBuildError(f"the compressor here is {actual!r}, not {expected!r} as the caller "
                            "expects; the tool's environment changed mid-build: build again")


def cmd_compressor_version(args: argparse.Namespace) -> dict:
    return {"compressor": compressor_version()}


def cmd_layer(args: argparse.Namespace) -> dict:
    spec = _load_spec(args.spec)
    unknown = sorted(set(spec) - set(LAYER_SPEC_KEYS))
    if unknown:
        raise OciBuildError(f"the layer spec {args.spec!r}: unknown key(s) {', '.join(unknown)}; "
                            f"known: {', '.join(LAYER_SPEC_KEYS)}")
    where = f"the layer spec {args.spec!r}"
    _check_compressor(field(spec, "compressor", str, where))
    owner = spec.get("owner")
    if owner is not None and not (isinstance(owner, list) and len(owner) == 2 and all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**31 for n in owner)):
        raise OciBuildError(f"the layer spec {args.spec!r}: owner {owner!r} must be [UID, GID], "
                            "e.g. [65532, 65532]")
    mappings = _mappings(spec, args.spec)
    entries = collect_entries(mappings)
    if owner is not None:
        dests = [parse_mapping(m).dest for m in mappings]
        entries = owned_by(entries, owner[0], owner[1], dests)
    blob = build_layer(entries, args.out_dir,
                       compression=spec.get("compression") or GZIP, level=spec.get("level"),
                       mtime=spec.get("mtime") or 0,
                       engine=spec.get("gzip_engine"))  # each checked where it is used
    result = blob.to_json()
    atomic_write(os.path.join(args.out_dir, "layer.json"), canonical_json.dumps(result))
    return result


def cmd_assemble(args: argparse.Namespace) -> dict:
    from ocibuild.assemble import assemble_image

    return assemble_image(_load_spec(args.spec), args.out_dir)


def cmd_docker_archive(args: argparse.Namespace) -> dict:
    from ocibuild.docker_archive import write_docker_archive
    from ocibuild.layout import OciLayout, resolve_image

    layout = OciLayout(args.layout)
    image = resolve_image(layout, ref_name=args.ref_name)
    write_docker_archive(layout, image, args.repo_tag, args.out)
    return {"out": args.out, "manifest_digest": image.manifest_descriptor.digest}


def cmd_unpack_layout(args: argparse.Namespace) -> dict:
    from ocibuild.oci_archive import unpack_oci_archive

    unpack_oci_archive(args.archive, args.out_dir)
    return {"out_dir": args.out_dir}


def _transport(ref, args: argparse.Namespace):
    # Imported here: only registry commands need requests; sandboxed layer builds never load it.
    from ocibuild.registry import credentials
    from ocibuild.registry.transport import Transport

    return Transport(ref.api_host, insecure=args.insecure, ca_cert=args.ca_cert,
                     credentials=lambda: credentials.lookup(ref.registry, os.environ))


def _write_lines(path: str, lines: List[str], append: bool) -> None:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    with open(path, "a" if append else "w") as f:
        f.writelines(line + "\n" for line in lines)


def cmd_push(args: argparse.Namespace) -> dict:
    from ocibuild.image.index import Index
    from ocibuild.layout import OciLayout, read_ref
    from ocibuild.reference import parse_reference
    from ocibuild.registry.push import push_image, push_index

    dest = parse_reference(args.to)
    transport = _transport(dest, args)
    layout = OciLayout(args.layout)
    what = read_ref(layout, args.ref_name)
    tags = [*([dest.tag] if dest.tag else []), *args.tag]
    options = {"mount_from": args.mount_from, "jobs": args.jobs, "chunk_size": args.chunk_size}
    if isinstance(what, Index):
        result = push_index(layout, what, dest, transport, tags, **options)
    else:
        result = push_image(layout, what, dest, transport, tags, **options)
    refs = [f"{dest.name}:{tag}@{result.manifest_digest}" for tag in tags] or [result.reference]
    if args.digest_file:
        _write_lines(args.digest_file, [result.manifest_digest], append=False)
    if args.refs_file:
        _write_lines(args.refs_file, refs, append=args.append_refs)
    return {"reference": result.reference, "manifest_digest": result.manifest_digest,
            "refs": refs, "uploaded": result.uploaded, "mounted": result.mounted,
            "tags_written": result.tags_written, "retries": transport.retries}


def cmd_pull(args: argparse.Namespace) -> dict:
    from ocibuild.platform import parse_platform
    from ocibuild.reference import parse_reference
    from ocibuild.registry.pull import pull_to_layout

    ref = parse_reference(args.image)
    reference = ref.digest or ref.tag or "latest"
    image = pull_to_layout(_transport(ref, args), ref, reference, parse_platform(args.platform),
                           args.out_dir, ref_name=args.ref_name)
    return {"manifest_digest": image.manifest_descriptor.digest, "out_dir": args.out_dir,
            "layers": [d.digest for d in image.layers]}


def cmd_resolve(args: argparse.Namespace) -> dict:
    """What a tag names now: the digest to pin, and the platforms it offers."""
    from ocibuild.reference import parse_reference
    from ocibuild.registry.pull import fetch_manifest

    ref = parse_reference(args.image)
    manifest = fetch_manifest(_transport(ref, args), ref, ref.digest or ref.tag or "latest")
    platforms = []
    if manifest.is_index:
        from ocibuild.image.manifest import Descriptor
        from ocibuild.platform import describe
        where = f"the index {manifest.digest} of {ref.name}"
        entries = [Descriptor.from_json(m, where=f"{where} manifests[{i}]") for i, m in
                   enumerate(field(manifest.json(), "manifests", list, where) or [])]
        platforms = [describe(d.platform) for d in entries
                     if (d.platform or {}).get("os") != "unknown"]
    return {"image": str(ref), "digest": manifest.digest, "media_type": manifest.media_type,
            "platforms": platforms}


def _debian_layer(args: argparse.Namespace, write) -> dict:
    from ocibuild.layer.builder import build_layer_with

    _check_compressor(args.compressor)
    blob = build_layer_with(write, args.out_dir, compression=args.compression)
    result = blob.to_json()
    atomic_write(os.path.join(args.out_dir, "layer.json"), canonical_json.dumps(result))
    return result


def cmd_debian_layer(args: argparse.Namespace) -> dict:
    from ocibuild.debian import layers

    return _debian_layer(args, lambda out: layers.write_packages_layer(args.deb, out))


def cmd_debian_root_layer(args: argparse.Namespace) -> dict:
    from ocibuild.debian import layers

    return _debian_layer(args, layers.write_root_layer)


def cmd_debian_config_layer(args: argparse.Namespace) -> dict:
    from ocibuild.debian import layers

    return _debian_layer(args, lambda out: layers.write_config_layer(
        out, args.ca_certificates, debs=args.debs, suite=args.suite))


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
    for name, run, help_ in (
            ("debian-layer", cmd_debian_layer,
             "the files of one or more .debs as one layer (no dpkg)"),
            ("debian-root-layer", cmd_debian_root_layer, "merged-/usr symlinks and base dirs"),
            ("debian-config-layer", cmd_debian_config_layer,
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


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        with _stop_signals_unwind():
            result = args.run(args)
    except Interrupted as stop:
        print("ocibuild: interrupted", file=sys.stderr)
        return 128 + stop.signum
    except OciBuildError as err:
        print(f"ocibuild: error: {err}", file=sys.stderr)
        return USER_ERROR
    except OSError as err:  # the machine's problem (permissions, a full disk), not a bug here
        where = f"{err.filename!r}: " if err.filename else ""
        print(f"ocibuild: error: {where}{os_reason(err)}", file=sys.stderr)
        return USER_ERROR
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
