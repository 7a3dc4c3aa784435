"""`pants publish` for `oci_image`: push the packaged layout to each registry, interactively.

Pushes run as interactive processes: never cached, and the credential sources (the variables
of `ocibuild.registry.credentials`) reach only their environment. The manifest digest is known
from `package`, so each push is reported as `ref@digest`; after pushing, dist/ holds
`<name>.digest` (the manifest digest) and `<name>.refs` (`registry/repo:tag@digest` per push).
Blobs of a base pulled from the same registry are mounted, not uploaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ocibuild.reference import Reference
from ocibuild.registry import credentials
from pants.base.build_root import BuildRoot
from pants.core.util_rules.distdir import DistDir

from pants.core.goals.publish import (
    PublishFieldSet,
    PublishOutputData,
    PublishPackages,
    PublishProcesses,
    PublishRequest,
)
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import Digest, DigestContents, DigestSubset, MergeDigests, PathGlobs
from pants.engine.process import InteractiveProcess, Process
from pants.engine.rules import Get, collect_rules, rule
from pants.backend.python.util_rules.pex import VenvPexProcess
from pants.util.logging import LogLevel

from pants_oci.subsystems.oci import OciSubsystem, Registry, select_registries
from pants_oci.subsystems.oci_tool import OcibuildPex
from pants_oci.util_rules.base_image import BaseOrigin, BaseOriginRequest
from pants_oci.util_rules.image_names import ImageNames, ImageNamesRequest
from pants_oci.target_types import (
    OciImageRegistriesField,
    OciImageRepositoryField,
    OciImageSkipPushField,
    OciImageTagsField,
)


class PublishOciRequest(PublishRequest):
    pass


@dataclass(frozen=True)
class PublishOciFieldSet(PublishFieldSet):
    publish_request_type = PublishOciRequest
    required_fields = (OciImageRegistriesField,)

    registries: OciImageRegistriesField
    repository: OciImageRepositoryField
    tags: OciImageTagsField
    skip_push: OciImageSkipPushField

    def get_output_data(self) -> PublishOutputData:
        return PublishOutputData({"publisher": "oci", **super().get_output_data()})


def push_argv(layout_dir: str, registry: Registry, repository: str, tags: tuple, ref_name: str,
              *, dist_prefix: str, first: bool, base: Reference | None) -> tuple:
    argv = ["push", "--layout", layout_dir, "--ref-name", ref_name,
            "--to", f"{registry.address}/{repository}",
            "--digest-file", f"{dist_prefix}.digest", "--refs-file", f"{dist_prefix}.refs"]
    argv += [arg for tag in tags for arg in ("--tag", tag)]
    if not first:
        argv.append("--append-refs")
    if base is not None and base.registry == registry.address:
        argv += ["--mount-from", base.repository]
    if registry.insecure:
        argv.append("--insecure")
    if registry.ca_cert:
        argv += ["--ca-cert", registry.ca_cert]
    return tuple(argv)


@rule(desc="Prepare OCI image pushes", level=LogLevel.DEBUG)
async def publish_oci_image(
    request: PublishOciRequest,
    oci: OciSubsystem,
    tool: OcibuildPex,
    build_root: BuildRoot,
    dist_dir: DistDir,
) -> PublishProcesses:
    fs = request.field_set
    try:
        registries = select_registries(oci.registries(), fs.registries.value)
    except ValueError as err:
        raise ValueError(f"The `registries` field of {fs.address}: {err}") from err
    names = await Get(ImageNames, ImageNamesRequest(fs.address))
    where = "[oci].registries.{} (for " + str(fs.address) + ")"
    destinations = [(r, names.for_registry(r, where.format(r.alias))) for r in registries]

    def refs(registry: Registry, dest: ImageNames) -> tuple:
        return tuple(f"{registry.address}/{dest.repository}:{tag}" for tag in dest.tags)

    skipped = [
        PublishPackages(refs(r, d), description=f"(by `skip_push` on {fs.address})")
        for r, d in destinations
        if fs.skip_push.value or r.skip_push
    ]
    destinations = [(r, d) for r, d in destinations if not (fs.skip_push.value or r.skip_push)]
    if not destinations:
        if skipped:
            return PublishProcesses(skipped)
        return PublishProcesses(
            [PublishPackages((names.repository,), description="(no registries)")]
        )

    package = request.packages[0]
    metadata_path = next(a.relpath for a in package.artifacts if a.relpath.endswith(".json"))
    layout_dir = metadata_path[: -len(".json")]
    (meta,) = await Get(
        DigestContents, DigestSubset(package.digest, PathGlobs([metadata_path]))
    )
    manifest_digest = json.loads(meta.content)["manifest_digest"]
    ca_certs = [r.ca_cert for r, _ in destinations if r.ca_cert]
    inputs = package.digest
    if ca_certs:
        certs = await Get(Digest, PathGlobs(ca_certs))
        inputs = await Get(Digest, MergeDigests([package.digest, certs]))
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(credentials.ENV_VARS))
    base = await Get(BaseOrigin, BaseOriginRequest(fs.address))
    dist_prefix = os.path.join(build_root.path, dist_dir.relpath, layout_dir)

    processes = list(skipped)
    for i, (registry, dest) in enumerate(destinations):
        argv = push_argv(layout_dir, registry, dest.repository, dest.tags, names.tags[0],
                         dist_prefix=dist_prefix, first=i == 0, base=base.reference)
        process = await Get(
            Process,
            VenvPexProcess(
                tool.pex,
                argv=argv,
                input_digest=inputs,
                description=f"Pushing {fs.address} to {registry.address}",
                extra_env={k: v for k, v in env.items() if v},
            ),
        )
        processes.append(
            PublishPackages(
                names=refs(registry, dest),
                process=InteractiveProcess.from_process(process),
                description=f"{registry.address}/{dest.repository}@{manifest_digest}",
                data=PublishOutputData({"manifest_digest": manifest_digest}),
            )
        )
    return PublishProcesses(processes)


def rules():
    return (*collect_rules(), *PublishOciFieldSet.rules())
