"""An image's VCS annotations (`org.opencontainers.image.source`, `.revision`, `.created`):
git read here, what may be said decided by `ocibuild.vcs`.

git is read outside the sandbox (the working tree is the point), as Pants' own `GitWorktree`
does, once per run: `GitCheckout` is not cacheable, so pantsd asks again in every session
and a commit or an edit between two runs is seen. What it finds goes into the assemble
request, which is cached by content like every other input.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass

from pants.base.build_root import BuildRoot
from pants.core.util_rules.system_binaries import MaybeGitBinary
from pants.engine.addresses import Address
from pants.engine.engine_aware import EngineAwareReturnType
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.util.logging import LogLevel

from ocibuild import vcs
from ocibuild.protocol.document import pairs
from pants_oci.subsystems.oci import OciSubsystem
from pants_oci.target_types import OciImageAnnotationsField, OciImageVcsAnnotationsField

logger = logging.getLogger(__name__)

# git may take a while on a huge tree; it never takes this long on a sane one.
_GIT_TIMEOUT = 120


@dataclass(frozen=True)
class GitCheckout(EngineAwareReturnType):
    """What git says about the build root: None everywhere when it is not a git checkout."""

    remote: str | None = None  # `origin`'s URL, verbatim (may hold credentials: never logged)
    commit: str | None = None
    clean: bool = False

    def cacheable(self) -> bool:
        return False


def _git(git: str, root: str, *args: str) -> str | None:
    """git's stdout, or None when it fails (not a repository, no commit yet, no `origin`)."""
    # GIT_OPTIONAL_LOCKS=0: `git status` must not take the index lock a user's git may hold.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run([git, "-C", root, *args], capture_output=True, env=env,
                              timeout=_GIT_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        logger.debug(f"git {args[0]} in {root}: {err}")
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "replace").strip()


@rule(desc="Read the git checkout", level=LogLevel.DEBUG)
async def git_checkout(build_root: BuildRoot, maybe_git: MaybeGitBinary) -> GitCheckout:
    if maybe_git.git_binary is None:
        return GitCheckout()
    git, root = maybe_git.git_binary.path, build_root.path
    commit = _git(git, root, "rev-parse", "--verify", "HEAD")
    if commit is None:
        return GitCheckout()
    status = _git(git, root, "status", "--porcelain", "--untracked-files=normal")
    return GitCheckout(
        remote=_git(git, root, "config", "--get", "remote.origin.url"),
        commit=commit,
        clean=status == "",
    )


@dataclass(frozen=True)
class VcsAnnotationsRequest:
    address: Address  # an oci_image
    epoch: int | None  # SOURCE_DATE_EPOCH, None when unset


@dataclass(frozen=True)
class VcsAnnotations:
    """The annotations of the image, its own `annotations` over the VCS ones (sorted pairs)."""

    pairs: tuple[tuple[str, str], ...]


def image_annotations(own: dict, checkout: GitCheckout, epoch: int | None,
                      enabled: bool) -> tuple[tuple[str, str], ...]:
    found = vcs.vcs_annotations(checkout.remote, checkout.commit, checkout.clean, epoch) \
        if enabled else {}
    return pairs({**found, **own})


@rule(desc="Annotations of an OCI image", level=LogLevel.DEBUG)
async def vcs_annotations(request: VcsAnnotationsRequest, oci: OciSubsystem) -> VcsAnnotations:
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(request.address, description_of_origin="<infallible>")
    )
    target = wrapped.target
    own = dict(target[OciImageAnnotationsField].value or {})
    enabled = target[OciImageVcsAnnotationsField].value
    if enabled is None:
        enabled = oci.vcs_annotations
    if not enabled:
        return VcsAnnotations(pairs(own))
    checkout = await Get(GitCheckout)
    return VcsAnnotations(image_annotations(own, checkout, request.epoch, True))


def rules():
    return collect_rules()
