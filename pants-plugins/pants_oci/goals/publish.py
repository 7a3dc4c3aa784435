"""`pants publish` for `oci_image`: push the packaged layout to each registry, interactively.

Pushes run as interactive processes: never cached, and the credential sources (the variables
of `ocibuild.registry.credentials`) reach only their environment. The manifest digest is known
from `package`, so each push is reported as `ref@digest`; after pushing, dist/ holds
`<name>.digest` (the manifest digest) and `<name>.refs` (`registry/repo:tag@digest` per push).
Blobs another repository of the same registry has are mounted, not uploaded: a base pulled
from it, or another image on the same base published to it (`util_rules.mount_source`). The
image's SBOMs and provenance (unless `sbom=False`, `provenance=False`) follow it as OCI 1.1
referrers (`ocibuild.registry.referrers`). With `[oci].signing_key`, a second interactive
process signs each pushed digest as cosign does and pushes the signature, and signs each
SBOM and provenance as a cosign attestation of the manifest it is about
(`ocibuild.registry.signatures`); the key reaches that process only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ocibuild.cosign import signature_tag
from ocibuild.protocol.push import PushRequest
from ocibuild.protocol.sign import KEY_ENV, SignRequest
from ocibuild.registry import credentials
from pants.base.build_root import BuildRoot
from pants.core.util_rules.distdir import DistDir

from pants.core.goals.package import OutputPathField
from pants.core.goals.publish import (
    PublishFieldSet,
    PublishOutputData,
    PublishPackages,
    PublishProcesses,
    PublishRequest,
)
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import EMPTY_DIGEST, AddPrefix, Digest, MergeDigests, PathGlobs
from pants.engine.process import InteractiveProcess, Process
from pants.engine.rules import Get, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from pants_oci.subsystems.oci import OciSubsystem, Registry, SigningKey, select_registries
from pants_oci.subsystems.oci_tool import OcibuildProcessRequest
from pants_oci.util_rules.mount_source import MountSource, MountSourceRequest
from pants_oci.util_rules.image import OciImage, OciImageRequest
from pants_oci.util_rules.image_names import ImageNames, ImageNamesRequest
from pants_oci.util_rules.referrers import ImageWithReferrers, ImageWithReferrersRequest
from pants_oci.target_types import (
    OciImageRegistriesField,
    OciImageProvenanceField,
    OciImageRepositoryField,
    OciImageSbomField,
    OciImageSkipPushField,
    OciImageTagsField,
)


# Where the image's layout is in the push's sandbox.
_LAYOUT = "layout"


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
    output_path: OutputPathField
    sbom: OciImageSbomField
    provenance: OciImageProvenanceField

    def get_output_data(self) -> PublishOutputData:
        return PublishOutputData({"publisher": "oci", **super().get_output_data()})


def push_request(registry: Registry, repository: str, tags: tuple, ref_name: str, *,
                 dist_prefix: str, first: bool, mount_from: str | None) -> PushRequest:
    return PushRequest(
        layout=_LAYOUT,
        to=f"{registry.address}/{repository}",
        ref_name=ref_name,
        tags=tuple(tags),
        mount_from=mount_from,
        digest_file=f"{dist_prefix}.digest",
        refs_file=f"{dist_prefix}.refs",
        append_refs=not first,
        insecure=registry.insecure,
        ca_cert=registry.ca_cert,
    )


async def _signing_env(oci: OciSubsystem, build_root: BuildRoot, address
                       ) -> tuple[SigningKey | None, dict[str, str]]:
    """Where the signing key is, and the environment that carries it to the sign process
    (empty for a key file, which that process reads itself)."""
    if not oci.signing_key:
        return None, {}
    try:
        key = SigningKey.parse(oci.signing_key, build_root.path)
    except ValueError as err:
        raise ValueError(f"{err} (publishing {address})") from err
    if key.env_var is None:
        return key, {}
    found = await Get(EnvironmentVars, EnvironmentVarsRequest([key.env_var]))
    pem = found.get(key.env_var) or ""
    if not pem.strip():
        raise ValueError(f"[oci].signing_key is env:{key.env_var}, but ${key.env_var} is unset "
                         f"or empty (publishing {address}); set it to the PEM private key")
    return key, {KEY_ENV: pem}


def sign_request(registry: Registry, repository: str, digest: str, key: SigningKey,
                 attest: bool = False) -> SignRequest:
    """`attest`: the layout has SBOM or provenance referrers, signed as attestations too."""
    return SignRequest(to=f"{registry.address}/{repository}", manifest_digest=digest,
                       key_file=key.path, insecure=registry.insecure, ca_cert=registry.ca_cert,
                       layout=_LAYOUT if attest else None)


@rule(desc="Prepare OCI image pushes", level=LogLevel.DEBUG)
async def publish_oci_image(
    request: PublishOciRequest,
    oci: OciSubsystem,
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

    output_path = fs.output_path.value_or_default(file_ending=None)
    image = await Get(OciImage, OciImageRequest(fs.address))
    layout = image.layout
    if fs.sbom.value or fs.provenance.value:  # as `package` wrote it: referrers after the image
        layout = (await Get(ImageWithReferrers, ImageWithReferrersRequest(
            fs.address, output_path, fs.sbom.value, fs.provenance.value))).layout
    ca_certs = [r.ca_cert for r, _ in destinations if r.ca_cert]
    certs = await Get(Digest, PathGlobs(ca_certs)) if ca_certs else EMPTY_DIGEST
    inputs = await Get(Digest, MergeDigests([await Get(Digest, AddPrefix(layout, _LAYOUT)),
                                             certs]))
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(credentials.ENV_VARS))
    registry_env = {k: v for k, v in env.items() if v}
    signing, signing_env = await _signing_env(oci, build_root, fs.address)
    dist_prefix = os.path.join(build_root.path, dist_dir.relpath, output_path)

    processes = list(skipped)
    for i, (registry, dest) in enumerate(destinations):
        mount = await Get(MountSource, MountSourceRequest(fs.address, registry.address))
        process = await Get(
            Process,
            OcibuildProcessRequest(
                push_request(registry, dest.repository, dest.tags, names.tags[0],
                             dist_prefix=dist_prefix, first=i == 0,
                             mount_from=mount.repository),
                inputs,
                description=f"Pushing {fs.address} to {registry.address}",
                extra_env=FrozenDict(registry_env),
            ),
        )
        name = f"{registry.address}/{dest.repository}"
        processes.append(
            PublishPackages(
                names=refs(registry, dest),
                process=InteractiveProcess.from_process(process),
                description=f"{name}@{image.manifest_digest}",
                data=PublishOutputData({"manifest_digest": image.manifest_digest}),
            )
        )
        if signing is None:
            continue
        # Right after its push (publish runs them in order): the key reaches only this
        # uncached process, through its environment or the file it reads.
        sign = await Get(
            Process,
            OcibuildProcessRequest(
                sign_request(registry, dest.repository, image.manifest_digest, signing,
                             attest=bool(fs.sbom.value or fs.provenance.value)),
                inputs,
                description=f"Signing {fs.address} in {registry.address}",
                extra_env=FrozenDict({**registry_env, **signing_env}),
            ),
        )
        processes.append(
            PublishPackages(
                names=(f"{name}:{signature_tag(image.manifest_digest)}",),
                process=InteractiveProcess.from_process(sign),
                description=f"(cosign signature of {name}@{image.manifest_digest}"
                + (", and attestations of its SBOMs and provenance)"
                   if fs.sbom.value or fs.provenance.value else ")"),
                data=PublishOutputData({"signature_of": image.manifest_digest}),
            )
        )
    return PublishProcesses(processes)


def rules():
    return (*collect_rules(), *PublishOciFieldSet.rules())
