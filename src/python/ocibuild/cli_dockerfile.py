"""`ocibuild build --dockerfile FILE --context DIR ...`: a Dockerfile build, with this project's
outputs (--output, --push, --docker-archive) and kaniko's executor flags as kaniko spells
them, so a kaniko job changes its image and keeps its arguments (docs/dockerfile.md has the
mapping). `cli.py` sends a `build` with --dockerfile or --context here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import List, Optional, Tuple

from ocibuild.errors import OciBuildError

# Accepted because kaniko jobs pass them; they change nothing in what is built here (logging,
# snapshotting and clean-up of kaniko's own RUN machinery).
KANIKO_NO_EFFECT = ("--verbosity", "--log-format", "--log-timestamp", "--cleanup",
                    "--snapshot-mode", "--single-snapshot", "--use-new-run",
                    "--compressed-caching", "--push-retry", "--ignore-path", "--ignore-var-run",
                    "--cache-ttl", "--cache-dir", "--cache-copy-layers", "--cache-run-layers")


def wants_dockerfile(argv: List[str]) -> bool:
    """Whether `ocibuild ARGV` is a Dockerfile build (the hook cli.py calls)."""
    if argv[:1] != ["build"]:
        return False
    return any(a in ("--dockerfile", "--context", "-c") or a.startswith(("--dockerfile=",
                                                                          "--context="))
               for a in argv[1:])


def _pair(text: str) -> Tuple[str, str]:
    key, sep, value = text.partition("=")
    if not key:
        raise argparse.ArgumentTypeError(f"{text!r} must be KEY=VALUE")
    return key, value


def _build_arg(text: str) -> Tuple[str, str]:
    """KEY=VALUE, or KEY alone: its value from the environment (as docker and kaniko do)."""
    key, sep, value = text.partition("=")
    if not key:
        raise argparse.ArgumentTypeError(f"{text!r} must be KEY=VALUE or KEY")
    if not sep:
        if key not in os.environ:
            raise argparse.ArgumentTypeError(f"--build-arg {key}: no value given and no "
                                             f"{key} in the environment")
        value = os.environ[key]
    return key, value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ocibuild build", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-f", "--dockerfile", help="the Dockerfile (default: CONTEXT/Dockerfile; "
                   "a relative path not found as given is looked up in the context, as "
                   "kaniko does)")
    p.add_argument("-c", "--context", default=".", help="the build context: a directory, or "
                   "dir://DIR (kaniko's spelling)")
    p.add_argument("--build-arg", type=_build_arg, action="append", default=[],
                   metavar="KEY[=VALUE]")
    p.add_argument("--target", help="build this stage (default: the last)")
    p.add_argument("--platform", "--custom-platform", dest="platform",
                   help="os/arch[/variant] (default linux/amd64, whatever the machine)")
    p.add_argument("--label", type=_pair, action="append", default=[], metavar="KEY=VALUE",
                   help="a label over the Dockerfile's (repeatable)")
    p.add_argument("--output", help="write an OCI layout here (a new or empty directory)")
    p.add_argument("--push", "-d", "--destination", dest="destination", action="append",
                   default=[], metavar="REGISTRY/REPO[:TAG]", help="push there (repeatable)")
    p.add_argument("--no-push", action="store_true", help="push nothing (kaniko's flag)")
    p.add_argument("--docker-archive", "--tar-path", dest="docker_archive",
                   help="write a `docker load` tarball, named after the destinations")
    p.add_argument("--digest-file", help="write the image's digest here")
    p.add_argument("--image-name-with-digest-file", help="write REGISTRY/REPO@DIGEST lines")
    p.add_argument("--image-name-tag-with-digest-file",
                   help="write REGISTRY/REPO:TAG@DIGEST lines")
    p.add_argument("--tag", action="append", default=[], help="a ref name in --output")
    p.add_argument("--compression", default="gzip", choices=("gzip", "zstd"))
    p.add_argument("--insecure", action="store_true", help="push over plain HTTP (kaniko)")
    p.add_argument("--insecure-pull", action="store_true", help="pull over plain HTTP (kaniko)")
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST",
                   help="plain HTTP to HOST, pull and push (repeatable)")
    p.add_argument("--skip-tls-verify", action="store_true", help="push without checking the "
                   "registry's certificate (kaniko; digests are still checked)")
    p.add_argument("--skip-tls-verify-pull", action="store_true", help="pull likewise")
    p.add_argument("--registry-certificate", "--ca-cert", dest="ca_cert", type=_pair,
                   action="append", default=[], metavar="HOST=PEM",
                   help="the CA bundle that signed HOST's certificate")
    p.add_argument("--reproducible", action="store_true", help="accepted: builds here are "
                   "always reproducible (mtimes and created are SOURCE_DATE_EPOCH, else 0)")
    p.add_argument("--cache", nargs="?", const="true", default=None,
                   help="kaniko's layer cache: accepted, nothing is cached (every RUN runs)")
    p.add_argument("--cache-repo", help="as --cache")
    p.add_argument("--secret", action="append", default=[], metavar="id=ID,src=PATH",
                   help="a secret for RUN --mount=type=secret (buildx's spelling): "
                        "id=ID,src=PATH or id=ID,env=VAR; read when a step mounts it, kept "
                        "out of layers, history and the result")
    p.add_argument("--run-cache-dir", metavar="DIR",
                   help="where RUN --mount=type=cache keeps its directories across builds "
                        "(default: $XDG_CACHE_HOME/ocibuild/run-cache, else "
                        "~/.cache/ocibuild/run-cache)")
    p.add_argument("--run-timeout", type=_seconds, metavar="SECONDS",
                   help="stop a RUN step that runs longer, and fail the build naming its "
                        "line (default: no limit)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    for flag in KANIKO_NO_EFFECT:
        p.add_argument(flag, nargs="?", const="true", help=argparse.SUPPRESS)
    p.set_defaults(run=run)
    return p


def _context(value: str) -> str:
    if value.startswith("dir://"):
        return value[len("dir://"):]
    if "://" in value:
        raise OciBuildError(f"--context {value!r}: only a directory (or dir://DIR) is "
                            "supported; fetch git, s3 or tar contexts beforehand")
    return value


def _dockerfile(given: Optional[str], context: str) -> str:
    if given is None:
        return os.path.join(context, "Dockerfile")
    if os.path.isfile(given) or os.path.isabs(given):
        return given
    return os.path.join(context, given)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of seconds above 0, "
                                         "e.g. 600")
    return value


def run(args: argparse.Namespace) -> Optional[dict]:
    from ocibuild.dockerfile import builder, mounts, output
    from ocibuild.dockerfile.images import Registries
    from ocibuild.validate import source_date_epoch

    context = _context(args.context)
    dockerfile = _dockerfile(args.dockerfile, context)
    if not os.path.isfile(dockerfile):
        raise OciBuildError(f"the Dockerfile {dockerfile!r} does not exist; give --dockerfile "
                            "FILE (or put a Dockerfile in the context)")
    destinations = tuple(args.destination)
    if args.no_push:
        destinations_pushed: Tuple[str, ...] = ()
    else:
        destinations_pushed = destinations
    if not (destinations_pushed or args.output or args.docker_archive or args.no_push):
        raise OciBuildError("give where the image goes: --output DIR, --push/--destination "
                            "REGISTRY/REPO[:TAG], --docker-archive/--tar-path FILE, or "
                            "--no-push")
    if args.image_name_with_digest_file and not destinations_pushed:
        raise OciBuildError("--image-name-with-digest-file lists pushed images; give "
                            "--destination too (and not --no-push)")
    epoch = source_date_epoch(os.environ.get("SOURCE_DATE_EPOCH"))
    certs = tuple(args.ca_cert)
    pull = Registries(tuple(args.insecure_registry), args.insecure_pull, certs,
                      args.skip_tls_verify_pull)
    push = Registries(tuple(args.insecure_registry), args.insecure, certs, args.skip_tls_verify)
    outputs = output.Outputs(
        output=args.output, destinations=destinations_pushed,
        docker_archive=args.docker_archive, digest_file=args.digest_file,
        name_with_digest_file=args.image_name_with_digest_file,
        name_tag_with_digest_file=args.image_name_tag_with_digest_file,
        tags=tuple(args.tag), labels=tuple(args.label),
        # kaniko's --tar-path names the tarball's image after --destination, pushed or not.
        archive_names=destinations)
    output.check(outputs)
    options = builder.Options(dockerfile=dockerfile, context=context,
                              build_args=tuple(args.build_arg), target=args.target,
                              platform=args.platform, created_epoch=epoch,
                              compression=args.compression, registries=pull,
                              secrets=tuple(mounts.parse_secret(s) for s in args.secret),
                              run_cache_dir=args.run_cache_dir, run_timeout=args.run_timeout)
    if args.cache or args.cache_repo:
        print("ocibuild: note: --cache is accepted, nothing is cached: every RUN runs",
              file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="ocibuild-dockerfile-") as work:
        built = builder.build(options, work)
        builder.warn(built)
        image = output.image_of(built, outputs, epoch)
        written = output.deliver(image, built, outputs, pull, push)
    result = {"manifest_digest": written.digest, "refs": list(written.refs),
              "output": args.output, "docker_archive": args.docker_archive,
              "base": f"{built.base.ref.name}@{built.base.digest}" if built.base else None,
              "run_steps": list(built.run_steps)}
    if args.json:
        return result
    print(f"built image {written.digest}" + (f" on {result['base']}" if built.base else ""))
    for ref in written.refs:
        print(f"  pushed {ref}")
    if args.output:
        print(f"wrote the OCI layout {args.output}")
    if args.docker_archive:
        print(f"wrote the docker-archive {args.docker_archive}")
    return None
