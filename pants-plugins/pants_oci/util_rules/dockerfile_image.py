"""Build an `oci_dockerfile_image`: the Dockerfile's plan, then each step as its own cached
process, then the image of the last state (ocibuild.dockerfile.plan and .state).

1. `dockerfile-plan` (one small process) lists the steps of the stages the target needs and
   what each reads.
2. The images FROM and COPY --from name are resolved by the backend's base machinery
   (`BaseImageProvider`: an `oci_pull` pinned by digest, an `oci_image`, ...), so a tag never
   reaches a cache key unresolved.
3. Each step runs `dockerfile-step` in a sandbox holding only what it reads: the states of the
   stages it builds on, the layouts of their images, the Dockerfile up to its instruction,
   the declared build args, and of the context nothing (RUN), the files its sources match
   (a COPY of literal paths) or all of it. Pants caches each such process by exactly those
   inputs, so a changed context file re-runs the COPY that reads it and what follows, never a
   RUN before it.
4. `dockerfile-image` writes the config, manifest and index.json of the target stage; the
   layout is merged from blobs already in the store (the stages' and the base's).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from pants.engine.addresses import AddressInput
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
    Snapshot,
)
from pants.engine.internals.native_engine import (
    AddressParseException,
    InvalidAddressError,
    InvalidParametersError,
    InvalidSpecPathError,
    InvalidTargetNameError,
)
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    Dependencies,
    DependenciesRequest,
    HydratedSources,
    HydrateSourcesRequest,
    Target,
    Targets,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.engine.unions import UnionMembership, UnionRule
from pants.util.logging import LogLevel

from ocibuild.dockerfile.builder import PROXY_ARGS
from ocibuild.dockerfile.plan import matching_files
from ocibuild.errors import OciBuildError
from ocibuild.protocol.assemble import AssembleResult
from ocibuild.protocol.dockerfile import (
    NO_CONTEXT,
    PATTERNS,
    DockerfileImageRequest,
    DockerfilePlan,
    DockerfilePlanRequest,
    DockerfileStepRequest,
    DockerfileStepResult,
    LocalImage,
    PlanStep,
)
from ocibuild.reference import Reference, parse_reference
from pants_oci.subsystems.oci import OciSubsystem
from pants_oci.subsystems.oci_tool import Compressor, OcibuildResult, OcibuildRun
from pants_oci.target_types import (
    OciDockerfileBuildArgsField,
    OciDockerfileImageTarget,
    OciDockerfileSourceField,
    OciDockerfileTargetStageField,
    OciImageLayerCompressionField,
    OciImagePlatformField,
    OciPullDigestField,
    OciPullImageField,
    OciPullTarget,
)
from pants_oci.util_rules.assemble import ShallowLayout, ShallowLayoutRequest
from pants_oci.util_rules.base_image import BaseImage, BaseImageProvider, OciBaseError
from pants_oci.util_rules.dockerfile_context import (
    DockerfileContext,
    DockerfileContextRequest,
    is_image,
)
from pants_oci.util_rules.image import (
    OciImage,
    OciImageBuilder,
    OciImageRequest,
    source_date_epoch,
    vcs_annotations_request,
)
from pants_oci.util_rules.image_names import ImageNames, ImageNamesRequest
from pants_oci.util_rules.vcs import VcsAnnotations, VcsAnnotationsRequest

logger = logging.getLogger(__name__)
_BAD_ADDRESS = (AddressParseException, InvalidAddressError, InvalidParametersError,
                InvalidSpecPathError, InvalidTargetNameError)
# The sandbox of every step.
_DOCKERFILE = "Dockerfile"
_CONTEXT = "context"
_STAGES = "stages"


class DockerfileImageError(Exception):
    """The Dockerfile of an `oci_dockerfile_image` names what the target does not provide."""


def build_args(target: Target, oci: OciSubsystem, env: EnvironmentVars) -> dict[str, str]:
    """`[oci].build_args`, then the target's `extra_build_args` over them; a bare NAME takes
    its value from the Pants run's environment (unset: not passed, as docker does)."""
    values: dict[str, str] = {}
    for entry in (*oci.build_args, *target[OciDockerfileBuildArgsField].value):
        name, sep, value = entry.partition("=")
        if sep:
            values[name] = value
        elif name in env:
            values[name] = env[name]
    return values


def image_key(name: str) -> str:
    """The sandbox directory of an image: from its name only, so a FROM added elsewhere in the
    Dockerfile does not move it (and change the key of every step on it)."""
    return f"images/{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def _same_image(name: Reference, pull: Target) -> bool:
    pinned = parse_reference(pull[OciPullImageField].value)
    if (pinned.registry, pinned.repository) != (name.registry, name.repository):
        return False
    if name.digest is not None:
        return name.digest == pull[OciPullDigestField].value
    return (name.tag or "latest") == (pinned.tag or "latest")


def image_target(name: str, target: Target, candidates: list[Target], what: str) -> Target:
    """The dependency a FROM or COPY --from image names: its address, or an `oci_pull` of the
    same reference (its tag; or its digest, for `FROM repo@sha256:...`)."""
    try:
        address = AddressInput.parse(name, relative_to=target.address.spec_path,
                                     description_of_origin=what).dir_to_address()
    except _BAD_ADDRESS:
        address = None
    for candidate in candidates:
        if candidate.address == address:
            return candidate
    try:
        reference = parse_reference(name)
    except OciBuildError:
        reference = None
    if reference is not None:
        for candidate in candidates:
            if isinstance(candidate, OciPullTarget) and _same_image(reference, candidate):
                return candidate
    raise DockerfileImageError(
        f"{what} names the image {name!r}, which no dependency of {target.address} provides. "
        f"Add to its `dependencies` an `oci_pull(image=\"{name}\", digest=\"sha256:...\")` "
        "target (`pants oci-pin` writes the digest), or the address of an image target "
        "(`ARG BASE=//images:base` then `FROM $BASE`)."
    )


def root_images(plan: DockerfilePlan) -> dict[int, str | None]:
    """The image at the bottom of each stage (through the stages it is FROM)."""
    roots: dict[int, str | None] = {}
    for stage in plan.stages:
        roots[stage.index] = stage.image if stage.image is not None else (
            roots.get(stage.parent) if stage.parent is not None else None)
    return roots


async def _context_of(step: PlanStep, context: DockerfileContext) -> Digest:
    """What a step gets of the context. For `patterns`: the files COPY's own matcher picks
    (ocibuild.dockerfile.plan.matching_files), named to Pants literally: its globs differ from
    Go's filepath.Match (`**`, `{a,b}`, `!`, dot files), and a file they missed would be
    silently left out of the image."""
    if step.context != PATTERNS:
        return context.digest
    snapshot = await Get(Snapshot, Digest, context.digest)
    chosen = matching_files(snapshot.files, step.patterns)
    if chosen is None:
        return context.digest
    return await Get(Digest, DigestSubset(context.digest, PathGlobs(chosen)))


@dataclass(frozen=True)
class DockerfileImageBuilder(OciImageBuilder):
    target_type = OciDockerfileImageTarget


async def _plan(target: Target, dockerfile: bytes, name: str, args: dict[str, str]
                ) -> DockerfilePlan:
    sandbox = await Get(Digest, CreateDigest([FileContent(_DOCKERFILE, dockerfile)]))
    run = await Get(OcibuildResult, OcibuildRun(
        DockerfilePlanRequest(_DOCKERFILE, name, tuple(sorted(args.items())),
                              target[OciDockerfileTargetStageField].value,
                              target[OciImagePlatformField].value),
        sandbox,
        description=f"Planning the Dockerfile of {target.address}",
        context=f"reading the Dockerfile {name} of {target.address}",
    ))
    plan = run.result
    assert isinstance(plan, DockerfilePlan)
    return plan


async def _images(plan: DockerfilePlan, target: Target, name: str,
                  union_membership: UnionMembership) -> dict[str, tuple[BaseImage, LocalImage]]:
    deps = await Get(Targets, DependenciesRequest(target[Dependencies]))
    candidates = [t for t in deps if is_image(t, union_membership)]
    what = f"The Dockerfile {name}"
    providers = union_membership.get(BaseImageProvider)
    platform = target[OciImagePlatformField].value
    found = []
    for image in plan.images:
        dep = image_target(image, target, candidates, what)
        provider = next(p for p in providers if isinstance(dep, p.target_type))
        found.append((image, dep, provider))
    bases = await MultiGet(
        Get(BaseImage, BaseImageProvider, provider(dep, platform)) for _, dep, provider in found
    )
    return {image: (base, LocalImage(image, image_key(image), base.ref_name, base.spec))
            for (image, _, _), base in zip(found, bases)}


async def _step(target: Target, step: PlanStep, dockerfile: bytes, name: str,
                context: DockerfileContext, images, roots, states: dict[int, Digest],
                step_args, epoch: int, compressor: str, which: str) -> Digest:
    wanted = {step.stage, *step.from_stages}
    names = sorted({*step.images, *(roots[i] for i in wanted if roots.get(i) is not None)})
    parts = [await Get(Digest, CreateDigest([FileContent(_DOCKERFILE,
                                                         dockerfile[:step.prefix_bytes])]))]
    parts += await MultiGet(Get(Digest, AddPrefix(states[i], f"{_STAGES}/{i}"))
                            for i in sorted(wanted) if i in states)
    parts += await MultiGet(Get(Digest, AddPrefix(images[n][0].layout, images[n][1].layout))
                            for n in names)
    if step.context != NO_CONTEXT:
        parts.append(await Get(Digest, AddPrefix(await _context_of(step, context), _CONTEXT)))
    what = "FROM" if step.first < 0 else step.keyword
    run = await Get(OcibuildResult, OcibuildRun(
        DockerfileStepRequest(
            _DOCKERFILE, name, step, _STAGES,
            context=_CONTEXT if step.context != NO_CONTEXT else None,
            images=tuple(images[n][1] for n in names),
            build_args=step_args,
            platform=target[OciImagePlatformField].value,
            created_epoch=epoch,
            compression=target[OciImageLayerCompressionField].value,
            compressor=compressor,
        ),
        await Get(Digest, MergeDigests(parts)),
        description=f"{target.address}: {which}, {name}:{step.line} {what}",
        context=f"building {target.address} ({which}: {name} line {step.line}, {what})",
    ))
    answer = run.result
    assert isinstance(answer, DockerfileStepResult)
    for done in answer.runs:  # which mechanism ran the step: reported, as the CLI reports it
        lost = f"; lost: {'; '.join(done.lost)}" if done.lost else ""
        logger.info(f"{target.address}: {done.at}: ran with mechanism {done.mechanism} "
                    f"(ownership {done.ownership}){lost}")
    return await Get(Digest, RemovePrefix(
        await Get(Digest, DigestSubset(run.output_digest, PathGlobs([f"{step.stage}/**"]))),
        str(step.stage)))


async def _image(target: Target, plan: DockerfilePlan, states: dict[int, Digest], images,
                 roots, epoch: int) -> OciImage:
    names = await Get(ImageNames, ImageNamesRequest(target.address))
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(["SOURCE_DATE_EPOCH"]))
    annotations = await Get(VcsAnnotations, VcsAnnotationsRequest,
                            vcs_annotations_request(target.address, env))
    root = roots[plan.goal]
    parts = [await Get(Digest, AddPrefix(states[plan.goal], f"{_STAGES}/{plan.goal}"))]
    if root is not None:
        shallow = await Get(ShallowLayout, ShallowLayoutRequest(images[root][0].layout))
        parts.append(await Get(Digest, AddPrefix(shallow.digest, images[root][1].layout)))
    run = await Get(OcibuildResult, OcibuildRun(
        DockerfileImageRequest(_STAGES, plan.goal,
                               images=(images[root][1],) if root is not None else (),
                               ref_names=names.tags, repository=names.repository,
                               annotations=annotations.pairs, created_epoch=epoch),
        await Get(Digest, MergeDigests(parts)),
        description=f"Writing the image of {target.address}",
        context=f"writing the image of {target.address}",
    ))
    result = run.result
    assert isinstance(result, AssembleResult)
    layout = [run.output_digest,
              await Get(Digest, DigestSubset(states[plan.goal], PathGlobs(["blobs/**"])))]
    if root is not None and result.base_blobs:
        base = images[root][0]
        globs = [f"blobs/{d.replace(':', '/', 1)}" for d in result.base_blobs]
        blobs = await Get(Snapshot, DigestSubset(base.layout, PathGlobs(globs)))
        missing = sorted(set(globs) - set(blobs.files))
        if missing:
            raise OciBaseError(f"The image {root!r} of {target.address} lacks the layer "
                               f"blob(s) {', '.join(missing)}: its layout is incomplete.")
        layout.append(blobs.digest)
    return OciImage(
        address=target.address,
        layout=await Get(Digest, MergeDigests(layout)),
        result=result,
        repository=names.repository,
        tags=names.tags,
    )


@rule(desc="Build an image from a Dockerfile", level=LogLevel.DEBUG)
async def build_dockerfile_image(request: DockerfileImageBuilder, oci: OciSubsystem,
                                 compressor: Compressor, union_membership: UnionMembership
                                 ) -> OciImage:
    address = request.request.address
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(address, description_of_origin="<infallible>")
    )
    target = wrapped.target
    hydrated = await Get(HydratedSources, HydrateSourcesRequest(target[OciDockerfileSourceField]))
    if len(hydrated.snapshot.files) != 1:
        raise DockerfileImageError(
            f"The `source` of {address} matches no file: create "
            f"{target[OciDockerfileSourceField].file_path} or point `source` at the Dockerfile.")
    (name,) = hydrated.snapshot.files
    (content,) = await Get(DigestContents, Digest, hydrated.snapshot.digest)
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(
        ["SOURCE_DATE_EPOCH", *(e for e in (*oci.build_args,
                                             *target[OciDockerfileBuildArgsField].value)
                                if "=" not in e)]))
    epoch = source_date_epoch(env)
    args = build_args(target, oci, env)
    plan = await _plan(target, content.content, name, args)
    for warning in plan.warnings:
        logger.warning(f"{address}: {warning}")
    images = await _images(plan, target, name, union_membership)
    context = await Get(DockerfileContext, DockerfileContextRequest(address))
    # Only the ARGs the Dockerfile declares (and the proxies) reach a step's key.
    step_args = tuple(sorted((k, v) for k, v in args.items()
                             if k in plan.declared_args or k in PROXY_ARGS))
    roots = root_images(plan)
    states: dict[int, Digest] = {}
    for number, step in enumerate(plan.steps, 1):
        states[step.stage] = await _step(
            target, step, content.content, name, context, images, roots, states, step_args,
            epoch, compressor.version, f"step {number}/{len(plan.steps)}")
    return await _image(target, plan, states, images, roots, epoch)


@dataclass(frozen=True)
class OciDockerfileImageBase(BaseImageProvider):
    target_type = OciDockerfileImageTarget


@rule
async def dockerfile_image_base(request: OciDockerfileImageBase) -> BaseImage:
    image = await Get(OciImage, OciImageRequest(request.target.address))
    return BaseImage(image.layout, image.tags[0], request.target.address.spec)


def rules():
    return (*collect_rules(), UnionRule(OciImageBuilder, DockerfileImageBuilder),
            UnionRule(BaseImageProvider, OciDockerfileImageBase))
