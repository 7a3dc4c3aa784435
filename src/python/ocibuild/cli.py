"""`ocibuild`: the core as a command, run inside Pants' sandbox or by hand.

Prints JSON results on stdout. Exit codes: 0 ok, 2 bad input (message on stderr), 1 a bug.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ocibuild import canonical_json
from ocibuild.assemble import assemble_image
from ocibuild.docker_archive import write_docker_archive
from ocibuild.errors import OciBuildError
from ocibuild.layer.builder import build_layer
from ocibuild.layer.compression import GZIP, check_compression
from ocibuild.layer.entries import collect_entries
from ocibuild.layout import OciLayout, atomic_write, resolve_image
from ocibuild.oci_archive import unpack_oci_archive

USER_ERROR = 2


def _load_spec(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise OciBuildError(f"cannot read the spec {path!r}: {err}") from err


def cmd_layer(args) -> dict:
    spec = _load_spec(args.spec)
    mappings = [(m["source"], m["dest"], *([m["mode"]] if m.get("mode") is not None else []))
                for m in spec.get("mappings", [])]
    if not mappings:
        raise OciBuildError(f"the layer spec {args.spec!r} maps no files")
    blob = build_layer(
        collect_entries(mappings),
        args.out_dir,
        compression=check_compression(spec.get("compression", GZIP)),
        level=spec.get("level"),
        mtime=int(spec.get("mtime", 0)),
    )
    result = blob.to_json()
    atomic_write(os.path.join(args.out_dir, "layer.json"), canonical_json.dumps(result))
    return result


def cmd_assemble(args) -> dict:
    return assemble_image(_load_spec(args.spec), args.out_dir)


def cmd_docker_archive(args) -> dict:
    layout = OciLayout(args.layout)
    image = resolve_image(layout, ref_name=args.ref_name)
    write_docker_archive(layout, image, args.repo_tag, args.out)
    return {"out": args.out, "manifest_digest": image.manifest_descriptor.digest}


def cmd_unpack_layout(args) -> dict:
    unpack_oci_archive(args.archive, args.out_dir)
    return {"out_dir": args.out_dir}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ocibuild", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    layer = sub.add_parser("layer", help="build one layer blob from a spec")
    layer.add_argument("--spec", required=True)
    layer.add_argument("--out-dir", required=True)
    layer.set_defaults(run=cmd_layer)
    assemble = sub.add_parser("assemble", help="write config, manifest and index.json")
    assemble.add_argument("--spec", required=True)
    assemble.add_argument("--out-dir", required=True)
    assemble.set_defaults(run=cmd_assemble)
    archive = sub.add_parser("docker-archive", help="write a docker-archive tarball")
    archive.add_argument("--layout", required=True)
    archive.add_argument("--ref-name")
    archive.add_argument("--repo-tag", action="append", default=[])
    archive.add_argument("--out", required=True)
    archive.set_defaults(run=cmd_docker_archive)
    unpack = sub.add_parser("unpack-layout", help="unpack an OCI archive tar into a layout")
    unpack.add_argument("--archive", required=True)
    unpack.add_argument("--out-dir", required=True)
    unpack.set_defaults(run=cmd_unpack_layout)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = args.run(args)
    except OciBuildError as err:
        print(f"ocibuild: error: {err}", file=sys.stderr)
        return USER_ERROR
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
