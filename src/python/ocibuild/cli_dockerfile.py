"""`ocibuild build --dockerfile FILE --context DIR ...`: a Dockerfile build, with this project's
outputs (--output, --push, --docker-archive) and kaniko's executor flags as kaniko spells
them, so a kaniko job changes its image and keeps its arguments (docs/dockerfile.md has the
mapping). `cli.py` sends a `build` with --dockerfile or --context here.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from typing import List, Optional, Tuple

from ocibuild.errors import OciBuildError

# Accepted because kaniko jobs pass them; they change nothing in what is built here (logging,
# snapshotting and clean-up of kaniko's own RUN machinery).
KANIKO_NO_EFFECT = ("--verbosity", "--log-format", "--log-timestamp", "--cleanup",
                    "--snapshot-mode", "--single-snapshot", "--use-new-run",
                    "--compressed-caching", "--push-retry", "--ignore-path", "--ignore-var-run",
                    # COPY/ADD layers are never cached: the changed COPY misses anyway and the
                    # unchanged ones are cheap to write (docs/dockerfile.md "Layer cache").
                    "--cache-copy-layers")


CACHE_NOWHERE = ("ocibuild: warning: --cache=true: nothing is cached, there is nowhere to "
                 "keep it: give --cache-repo REGISTRY/REPO, --cache-dir DIR or a "
                 "--destination (whose repository + /cache is kaniko's default)")


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
    p.add_argument("--cache", nargs="?", const="true", default=None, metavar="true|false",
                   help="kaniko's layer cache of RUN steps: a step whose inputs have a fresh "
                   "entry does not run (docs/dockerfile.md \"Layer cache\"); on by default "
                   "when --cache-dir or --cache-repo is given")
    p.add_argument("--cache-repo", metavar="REGISTRY/REPO", help="keep RUN-step layers as "
                   "images REPO:KEY (kaniko's layout; default with --cache=true: the first "
                   "destination's repository + /cache)")
    p.add_argument("--cache-dir", metavar="DIR", help="keep RUN-step layers and base images' "
                   "blobs here, by digest (verified on every read)")
    p.add_argument("--cache-ttl", default="336h", metavar="DURATION", help="ignore cache "
                   "entries older than this (kaniko's; Go's spelling: 336h, 90m, 1h30m)")
    p.add_argument("--cache-run-layers", nargs="?", const="true", default="true",
                   metavar="true|false", help="kaniko's: false caches no RUN step")
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
    p.add_argument("--cpuset-cpus", metavar="CPUS",
                   help="the CPUs RUN steps run on (docker build's: 0-3, 0,2); default: all "
                        "the build may use, one under proot (where ptrace's stops cost "
                        "several times less on one CPU)")
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


def _flag_bool(value: Optional[str], flag: str) -> Optional[bool]:
    if value is None:
        return None
    if value.lower() in ("true", "1", "t"):
        return True
    if value.lower() in ("false", "0", "f"):
        return False
    raise OciBuildError(f"{flag}={value!r}: give true or false")


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def duration(text: str, flag: str) -> float:
    """Seconds in Go's time.ParseDuration spelling (kaniko's flags are Go durations)."""
    if text == "0":  # Go's one unitless duration
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION.match(text, pos)
        if not m:
            break
        total, pos = total + float(m.group(1)) * _UNITS[m.group(2)], m.end()
    if not text or pos != len(text):
        raise OciBuildError(f"{flag}={text!r}: give a duration such as 336h, 90m or 1h30m")
    return total


def cache_settings(args: argparse.Namespace, destinations: Tuple[str, ...], push):
    """The layer cache as kaniko's flags ask for it (docs/dockerfile.md "Layer cache")."""
    from ocibuild.dockerfile.cache import Settings

    wanted = _flag_bool(args.cache, "--cache")
    ttl = duration(args.cache_ttl, "--cache-ttl")
    if wanted is False or _flag_bool(args.cache_run_layers, "--cache-run-layers") is False:
        return Settings()
    if wanted is None and not (args.cache_dir or args.cache_repo):
        return Settings()
    repo = args.cache_repo
    if not repo and wanted and destinations:  # kaniko's default: DESTINATION_REPO/cache
        from ocibuild.reference import parse_reference

        repo = parse_reference(destinations[0]).name + "/cache"
    if not (repo or args.cache_dir):  # kaniko goes on (every lookup and push fails): so do we
        print(CACHE_NOWHERE, file=sys.stderr)
        return Settings()
    return Settings(args.cache_dir, repo, ttl, push)


def run(args: argparse.Namespace) -> Optional[dict]:
    from ocibuild.dockerfile import builder, mounts, output
    from ocibuild.dockerfile.images import Registries
    from ocibuild.rootfs import cpus
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
                              cache=cache_settings(args, destinations, push),
                              blob_cache=args.cache_dir,
                              secrets=tuple(mounts.parse_secret(s) for s in args.secret),
                              run_cache_dir=args.run_cache_dir, run_timeout=args.run_timeout,
                              run_cpus=cpus.parse(args.cpuset_cpus)
                              if args.cpuset_cpus is not None else None)
    with tempfile.TemporaryDirectory(prefix="ocibuild-dockerfile-") as work:
        built = builder.build(options, work)
        builder.warn(built)
        image = output.image_of(built, outputs, epoch)
        written = output.deliver(image, built, outputs, pull, push)
    result = {"manifest_digest": written.digest, "refs": list(written.refs),
              "output": args.output, "docker_archive": args.docker_archive,
              "base": f"{built.base.ref.name}@{built.base.digest}" if built.base else None,
              "run_steps": list(built.run_steps), "cache": built.cache}
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
