"""`ocibuild build` and `ocibuild lock`: their flags, and the requests they make of them.

`build` turns flags (and `-f IMAGE.yaml`, ocibuild.build_file) into a `BuildRequest` and runs
ocibuild.build; `lock` resolves the Debian `contents` of an image file and writes its
lockfile (ocibuild.debian.lock), as `pants debian-lock` does for a `debian_packages` target.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Callable, List, Optional, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.progress import Progress

# The commands import what they need: these flags are parsed by every ocibuild command, layer
# processes included, which should not pay for the build's request types at start-up.


def _words(values: Optional[List[Tuple[str, ...]]]) -> Optional[Tuple[str, ...]]:
    return None if values is None else tuple(w for words in values for w in words)


def cmd_build(args: argparse.Namespace) -> Optional[dict]:
    from ocibuild.protocol.assemble import Settings
    from ocibuild.protocol.build import BuildRequest
    from ocibuild.protocol.document import pairs
    from ocibuild.validate import source_date_epoch

    image = None
    if args.file:
        from ocibuild.build_file import load_image_file

        image = load_image_file(args.file)
    base = args.base or (image.base if image else None)
    if base is None and image is not None and image.debian is not None:
        base = "scratch"  # the base is built from the file's Debian packages
    if base is None:
        raise OciBuildError(f"{args.file}: give the base image: `base: scratch` (or an "
                            "oci:DIR, or REGISTRY/REPO[:TAG]), or --base" if args.file else
                            "give the base image: --base scratch, --base oci:DIR[:REF_NAME] or "
                            "--base REGISTRY/REPO[:TAG] (or -f image.yaml)")
    request = BuildRequest(
        base=base, layers=tuple(args.layer),
        settings=Settings(entrypoint=_words(args.entrypoint), cmd=_words(args.cmd),
                          env=tuple(args.env), workdir=args.workdir, user=args.user,
                          labels=pairs(dict(args.label)), exposed_ports=(), volumes=()),
        annotations=pairs(dict(args.annotation)), platforms=tuple(args.platform),
        tags=tuple(args.tag), output=args.output, push=args.push,
        docker_archive=args.docker_archive, digest_file=args.digest_file,
        image_refs=args.image_refs, compression=args.compression,
        created_epoch=source_date_epoch(os.environ.get("SOURCE_DATE_EPOCH")),
        insecure_registries=tuple(args.insecure_registry), ca_certs=tuple(args.ca_cert),
        debian_mirrors=tuple(args.debian_mirror), cache_dir=args.cache_dir)
    if image is not None:
        from ocibuild.build_file import with_flags

        request = with_flags(image, request)
    from ocibuild.build import build, summary

    progress = Progress.for_terminal(quiet=args.quiet or args.json)
    try:
        result = build(request, progress)
    finally:
        progress.done()
    if args.json:
        return result.to_json()
    print(summary(result))
    return None


def cmd_lock(args: argparse.Namespace) -> Optional[dict]:
    """Resolve the image file's Debian `contents` and write (or, with --check, check) its
    lockfile; prints what changed."""
    from ocibuild.build import cache_dir, mirror_url
    from ocibuild.build_file import load_image_file
    from ocibuild.debian import lock, lockfile
    from ocibuild.debian.changes import diff
    from ocibuild.debian.image import lock_request
    from ocibuild.platform import parse_platform
    from ocibuild.assemble import DEFAULT_PLATFORM
    from ocibuild.atomic import atomic_write
    from ocibuild.untrusted import read_file

    image = load_image_file(args.file)
    contents = image.debian
    if contents is None:
        raise OciBuildError(f"{args.file}: there is nothing to lock: the file has no "
                            "`contents:` (Debian repositories and packages)")
    platforms = [parse_platform(p) for p in image.platforms] or [DEFAULT_PLATFORM]
    request = lock_request(contents, platforms)
    progress = Progress.for_terminal(quiet=args.quiet or args.json)
    progress.step(f"reading {len(contents.sources)} suite(s) for "
                  f"{', '.join(request['architectures'])}")
    try:
        # The lockfile names a keyring as the image file does (relative to its directory),
        # so it does not depend on where the checkout is.
        home = os.path.dirname(os.path.realpath(args.file))
        suites = [lock.Suite(s.suite, s.mirror, s.keyring,
                             os.path.relpath(s.keyring, home) if s.keyring else None)
                  for s in contents.sources]
        resolved = lock.read_suites(request, suites,
                                    os.path.join(cache_dir(args.cache_dir), "indexes"),
                                    mirror_url(tuple(args.debian_mirror)),
                                    contents.allow_unsigned_index)
    finally:
        progress.done()
    path, fix = contents.lockfile, f"ocibuild lock -f {args.file}"
    data = read_file(path, "the lockfile", lockfile.MAX_BYTES) if os.path.exists(path) else None
    if args.check:
        problems = lock.check(data, resolved, path, fix)
        if not args.json:
            print(f"{path} is " + (f"{len(problems)} newer or out of date:" if problems
                                   else "up to date"))
            for line in problems:
                print(f"  {line}")
        if problems:
            raise OciBuildError(f"{path} is not current; run `{fix}`")
        return {"lockfile": path, "current": True} if args.json else None
    try:
        previous = lockfile.load(data, path, fix) if data is not None else None
    except OciBuildError:
        previous = None  # unreadable: replaced, and reported as a new lockfile
    doc = resolved.document(args.file)
    atomic_write(path, lockfile.dumps(doc))
    changes = diff(previous, doc)
    if args.json:
        return {"lockfile": path, "changes": changes, "packages": {
            arch: len(pkgs) for arch, pkgs in doc["packages"].items()}}
    print(f"wrote {path}: {lock.summary(doc)}")
    print(f"  {'changes' if previous else 'new lockfile'}: "
          f"{len(changes) if changes or not previous else 'none'}")
    for line in changes:
        print(f"  {line}")
    return None


def _pair(flag: str, example: str) -> Callable[[str], Tuple[str, str]]:
    def parse(text: str) -> Tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{text!r} must be KEY=VALUE, e.g. {flag} {example}")
        return key, value
    return parse


def _ca_cert(text: str) -> Tuple[str, str]:
    host, pem = _pair("--ca-cert", "registry.local:5000=ca.pem")(text)
    if not os.path.isfile(pem):
        raise argparse.ArgumentTypeError(f"{text!r}: the CA bundle {pem!r} is not a file")
    return host, pem


def _words_flag(text: str) -> Tuple[str, ...]:
    """A JSON array of strings (the exec form), or one word (repeat the flag for more)."""
    if not text.startswith("["):
        return (text,)
    try:
        words = json.loads(text)
    except ValueError:
        words = None
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise argparse.ArgumentTypeError(f"{text!r} must be a JSON array of strings, e.g. "
                                         '\'["python", "-m", "app"]\', or one word per flag')
    return tuple(words)


def _layer_flag(text: str):
    """SRC[:DEST]: DEST defaults to / for a directory (its contents), /<name> for a file."""
    from ocibuild.layer.entries import parse_mapping
    from ocibuild.protocol.layer import LayerMapping

    source, sep, dest = text.rpartition(":") if ":" in text else (text, "", "")
    if not os.path.lexists(source):
        raise argparse.ArgumentTypeError(f"{text!r}: {source!r} does not exist (SRC[:DEST], "
                                         "e.g. --layer app/:/app or --layer dist/app.pex)")
    if not sep:
        dest = "/" if os.path.isdir(source) else "/" + os.path.basename(source.rstrip("/"))
    try:
        parse_mapping((source, dest))
    except OciBuildError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: {err}") from None
    return LayerMapping(source, dest)


def _debian_flags(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--debian-mirror", type=_pair("--debian-mirror",
                     "http://deb.debian.org/debian=https://mirror.corp/debian"),
                     action="append", default=[], metavar="NAMED=URL",
                     help="read the Debian mirror the file names from URL instead (a local "
                     "or corporate mirror of the same files); repeatable")
    cmd.add_argument("--cache-dir", help="keep downloaded packages and indexes here (default: "
                     "$XDG_CACHE_HOME/ocibuild, else ~/.cache/ocibuild)")
    cmd.add_argument("--quiet", action="store_true", help="no progress on stderr")


def add_parsers(sub) -> None:
    lock = sub.add_parser("lock", help="resolve an image file's Debian packages and write "
                          "its lockfile (see docs/cli.md)")
    lock.add_argument("-f", "--file", required=True, metavar="IMAGE.yaml")
    lock.add_argument("--check", action="store_true", help="write nothing; fail when the "
                      "lockfile is missing, stale, or a suite has a newer version of a package")
    lock.add_argument("--json", action="store_true", help="print the result as JSON")
    _debian_flags(lock)
    lock.set_defaults(run=cmd_lock)

    build = sub.add_parser("build", help="build an image from a base, files and settings, "
                           "then write it as a layout or push it (see docs/cli.md)")
    build.add_argument("-f", "--file", metavar="IMAGE.yaml", help="the image described in "
                       "a YAML file (docs/cli.md); flags override its scalars, add to its lists")
    build.add_argument("--base", help="scratch, oci:DIR[:REF_NAME] (an OCI layout) or "
                       "REGISTRY/REPO[:TAG][@DIGEST] (pulled); required without -f")
    build.add_argument("--layer", type=_layer_flag, action="append", default=[],
                       help="SRC[:DEST], one layer each (repeatable, bottom first)")
    build.add_argument("--entrypoint", type=_words_flag, action="append",
                       help='a JSON array (["python", "-m", "app"]) or one word per flag')
    build.add_argument("--cmd", type=_words_flag, action="append", help="as --entrypoint")
    build.add_argument("--env", type=_pair("--env", "PORT=8080"), action="append", default=[])
    build.add_argument("--workdir")
    build.add_argument("--user", help="USER[:GROUP], names or numbers, e.g. 65532:65532")
    build.add_argument("--label", type=_pair("--label", "team=web"), action="append",
                       default=[])
    build.add_argument("--annotation", action="append", default=[],
                       type=_pair("--annotation", "org.opencontainers.image.source=URL"))
    build.add_argument("--platform", action="append", default=[],
                       help="os/arch[/variant]; repeat for an index of one image each")
    build.add_argument("--tag", action="append", default=[],
                       help="a ref name in the layout / a tag pushed (repeatable)")
    where = build.add_mutually_exclusive_group(required=True)
    where.add_argument("--output", help="write an OCI layout here (a new or empty directory)")
    where.add_argument("--push", help="push to REGISTRY/REPO[:TAG]")
    build.add_argument("--docker-archive", help="also write a `docker load` tarball here")
    build.add_argument("--digest-file", help="write the image's (or index's) digest here")
    build.add_argument("--image-refs", help="write REGISTRY/REPO:TAG@DIGEST lines here")
    build.add_argument("--compression", default="gzip", choices=("gzip", "zstd"))
    build.add_argument("--insecure-registry", action="append", default=[], metavar="HOST",
                       help="speak plain HTTP to HOST (pull and push)")
    build.add_argument("--ca-cert", type=_ca_cert, action="append", default=[],
                       metavar="HOST=PEM", help="the CA bundle that signed HOST's certificate")
    build.add_argument("--json", action="store_true", help="print a build-result document")
    _debian_flags(build)
    build.set_defaults(run=cmd_build)


