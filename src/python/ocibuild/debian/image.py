"""`ocibuild build` with Debian `contents`: the locked packages as a base image, outside Pants.

The same steps as the `debian_packages` target: the lockfile is checked against what the
image file asks for and for how its indexes were trusted; every locked .deb is fetched into
the cache and verified (ocibuild.debian.download); the layers are the plan of ocibuild.debian.
base, built with the same code, so the base image has the digest Pants gives it.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Callable, Sequence

import requests

from ocibuild.assemble import assemble
from ocibuild.debian import lockfile
from ocibuild.debian.base import BASE_REF_NAME, base_request, build_layer, deb_file, plan_layers
from ocibuild.debian.download import fetch_deb
from ocibuild.debian.fallback import fallback_urls
from ocibuild.errors import OciBuildError
from ocibuild.platform import Platform
from ocibuild.progress import Progress
from ocibuild.protocol.assemble import BaseRef
from ocibuild.protocol.build import DebianContents
from ocibuild.untrusted import read_file

def lock_request(contents: DebianContents, platforms: Sequence[Platform]) -> dict:
    archs = sorted({lockfile.debian_arch(p.architecture, p.variant or "") for p in platforms})
    return lockfile.request_of(
        sources=[{"suite": s.suite, "mirror": s.mirror} for s in contents.sources],
        components=contents.components, architectures=archs, packages=contents.packages)


def load_lock(contents: DebianContents, platforms: Sequence[Platform], fix: str) -> dict:
    """The lockfile, checked: it locks what the file asks for, trusted as the file allows."""
    path = contents.lockfile
    if not os.path.exists(path):
        raise OciBuildError(f"no lockfile at {path}; create it with `{fix}`")
    doc = lockfile.load(read_file(path, "the Debian lockfile", lockfile.MAX_BYTES), path, fix)
    lockfile.check_current(doc, lock_request(contents, platforms), path, fix)
    lockfile.check_signature(doc, contents.allow_unsigned_index, path, fix)
    return doc


def debian_base(contents: DebianContents, doc: dict, platform: Platform, work: str,
                cache_dir: str, mirror_url: Callable[[str], str], compression: str,
                progress: Progress) -> BaseRef:
    """The base image for `platform` in a layout under `work`, its layers built there."""
    where = contents.lockfile
    packages = lockfile.packages_for(
        doc, lockfile.debian_arch(platform.architecture, platform.variant or ""), where)
    debs_dir = os.path.join(work, f"debs-{platform.architecture}{platform.variant or ''}")
    os.makedirs(debs_dir)
    _download(contents, doc, packages, cache_dir, debs_dir, mirror_url, progress)
    layout = os.path.join(work, f"debian-{os.path.basename(debs_dir)}")
    descriptors, history = [], []
    plan = plan_layers(doc, packages, contents.max_layers)
    for i, planned in enumerate(plan, 1):
        names = [p["name"] for p in planned.packages]
        what = planned.what if len(names) < 2 else \
            f"{len(names)} packages, {names[0]} ... {names[-1]}"
        progress.step(f"{platform}: Debian layer {i}/{len(plan)}: {what}")
        descriptors.append(build_layer(replace(planned.request, compression=compression),
                                       debs_dir, layout))
        history.append(planned.created_by)
    assemble(replace(base_request(str(platform)), layers=tuple(descriptors),
                     history=tuple(history)), layout)
    # No name: base.name is a registry reference, and a path would make the image depend on
    # the checkout; base.digest says what it was built on.
    return BaseRef(layout, BASE_REF_NAME, None)


def _download(contents: DebianContents, doc: dict, packages: Sequence[dict], cache_dir: str,
              debs_dir: str, mirror_url: Callable[[str], str], progress: Progress) -> None:
    total = sum(p["size"] for p in packages)
    cache = os.path.join(cache_dir, "debs")
    progress.step(f"fetching {len(packages)} Debian packages ({total / 1e6:.1f} MB; cached in "
                  f"{cache})")
    received = [0]

    def count(n: int) -> None:
        received[0] += n
        progress.detail(f"fetching {package['name']} {package['version']}: "
                        f"{received[0] / 1e6:.1f} MB of {total / 1e6:.1f} MB")
    session = requests.Session()
    session.trust_env = True  # a mirror is reached as apt reaches it (proxies)
    done = 0
    for package in packages:
        source = lockfile.source_of(doc, package["suite"])
        try:
            urls = [f"{mirror_url(source['mirror'])}/{package['filename']}",
                    *fallback_urls(contents.fallback_mirrors, source, package["filename"])]
        except ValueError as err:
            raise OciBuildError(f"{contents.lockfile}: {err}") from None
        try:
            path = fetch_deb(session, urls, package["sha256"], package["size"], cache, count)
        except OciBuildError as err:
            raise OciBuildError(
                f"downloading {package['name']} {package['version']} locked in "
                f"{contents.lockfile} failed:\n  {err}\nA file whose size or SHA-256 differs "
                "from the lockfile is refused: the mirror changed it (lock again if that is "
                "expected) or something between corrupts it. A mirror that dropped it: lock "
                "again, or add a fallback mirror that keeps old files (`fallback-mirrors`, e.g. "
                '"https://snapshot.debian.org/archive/{archive}/{timestamp}").') from None
        done += package["size"]
        received[0] = done
        os.symlink(path, os.path.join(debs_dir, deb_file(package)))
