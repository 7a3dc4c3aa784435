"""`pants oci-verify --public-key=cosign.pub path/to:image`: check what each of the image's
registries serves under its first tag now: a cosign signature of exactly that digest and
repository made with the key; (as the target builds them) its SBOMs and provenance as
cosign attestations of each image manifest, signed with the key and about exactly that
manifest; and every SBOM or provenance referrer of it (what scanners read) held by one of
those attestations: an unsigned one fails, named as unsigned.

Each check is one `ocibuild run` of a `VerifyRequest`, which talks to the registry, so it
runs once per Pants run (`PER_SESSION`: never stored in a cache) with the credential sources
in its environment, as a push does; the public key is an input file.
"""

from __future__ import annotations

import os

from pants.base.build_root import BuildRoot
from pants.engine.console import Console
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import (
    EMPTY_DIGEST,
    CreateDigest,
    Digest,
    FileContent,
    MergeDigests,
    PathGlobs,
)
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, collect_rules, goal_rule
from pants.engine.target import Targets
from pants.option.option_types import StrOption
from pants.util.frozendict import FrozenDict
from pants.util.strutil import help_text

from ocibuild.cosign import MAX_KEY
from ocibuild.protocol.sign import VerifyRequest, VerifyResult
from ocibuild.registry import credentials
from ocibuild.registry.signatures import required_types
from pants_oci.subsystems.oci import OciSubsystem, select_registries
from pants_oci.subsystems.oci_tool import OcibuildProcessRequest, error_of
from pants_oci.target_types import (
    OciImageProvenanceField,
    OciImageRegistriesField,
    OciImageSbomField,
    OciImageTarget,
)
from pants_oci.util_rules.image_names import ImageNames, ImageNamesRequest

class OciVerifySubsystem(GoalSubsystem):
    name = "oci-verify"
    help = help_text(
        """
        Check the published images of the given `oci_image` targets against a public key:
        for each registry the target publishes to, what its first tag names there now must
        carry a cosign signature of that digest and repository made with the key
        (`[oci].signing_key` at `pants publish`); each image manifest must have the SBOMs
        and provenance the target builds (`sbom`, `provenance`) as cosign attestations
        signed with the key and about exactly that manifest (what `cosign
        verify-attestation --key` checks); and each SBOM or provenance attached as an OCI
        1.1 referrer (what scanners read) must be a document one of those attestations
        holds, else it is reported as unsigned and the check fails.
        E.g. `pants oci-verify --public-key=cosign.pub //app:image`.
        """
    )

    public_key = StrOption(
        default=None,
        help="The PEM ECDSA P-256 public key (`cosign public-key`, `openssl ec -pubout`): a "
        "file from the build root or an absolute path.",
    )


class OciVerify(Goal):
    subsystem_cls = OciVerifySubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


def _public_key(option: str | None, build_root: BuildRoot) -> bytes:
    """Read here (it is public): a clear error beats a sandbox's missing file."""
    if not option:
        raise ValueError("`pants oci-verify` needs --public-key=PATH: the PEM public key the "
                         "images were signed for (`openssl ec -in cosign.pem -pubout`)")
    path = os.path.join(build_root.path, os.path.expanduser(option))
    try:
        with open(path, "rb") as f:
            return f.read(MAX_KEY)
    except OSError as err:
        raise ValueError(f"--oci-verify-public-key: cannot read {option!r}: "
                         f"{err.strerror}") from None


@goal_rule
async def oci_verify(targets: Targets, console: Console, subsystem: OciVerifySubsystem,
                     oci: OciSubsystem, build_root: BuildRoot) -> OciVerify:
    images = [t for t in targets if isinstance(t, OciImageTarget)]
    if not images:
        console.print_stderr("No oci_image targets among the given addresses: nothing to verify.")
        return OciVerify(exit_code=0)
    # In the sandbox under its own name, which errors then say.
    key_name = os.path.basename(subsystem.public_key or "") or "public-key.pem"
    key = await Get(Digest, CreateDigest([FileContent(
        key_name, _public_key(subsystem.public_key, build_root))]))
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(credentials.ENV_VARS))
    failed = 0
    for target in images:
        try:
            registries = select_registries(oci.registries(),
                                           target[OciImageRegistriesField].value)
        except ValueError as err:
            raise ValueError(f"The `registries` field of {target.address}: {err}") from err
        names = await Get(ImageNames, ImageNamesRequest(target.address))
        if not registries:
            console.print_stderr(f"{target.address}: no registries: nothing to verify")
        for registry in registries:
            dest = names.for_registry(registry, f"[oci].registries.{registry.alias} (for "
                                                f"{target.address})")
            image = f"{registry.address}/{dest.repository}:{dest.tags[0]}"
            request = VerifyRequest(
                image, key_name,
                required_types(target[OciImageSbomField].value,
                               target[OciImageProvenanceField].value),
                insecure=registry.insecure, ca_cert=registry.ca_cert)
            certs = await Get(Digest, PathGlobs([registry.ca_cert])) if registry.ca_cert \
                else EMPTY_DIGEST
            process = await Get(Process, OcibuildProcessRequest(
                request, await Get(Digest, MergeDigests([key, certs])),
                description=f"Verifying {image}",
                cache_scope=ProcessCacheScope.PER_SESSION,
                extra_env=FrozenDict({k: v for k, v in env.items() if v})))
            result = await Get(FallibleProcessResult, Process, process)
            if result.exit_code != 0:
                failed += 1
                error = error_of(result.exit_code, result.stdout, result.stderr,
                                 f"verifying {image}")
                console.print_stderr(console.red(f"✕ {error}"))
                continue
            answer = VerifyResult.loads(result.stdout, "ocibuild's answer")
            kinds = sorted({a.predicate_type for a in answer.attestations})
            console.print_stdout(
                f"✓ {image}@{answer.digest}: {answer.signatures} signature(s) verified; "
                f"{len(answer.attestations)} attestation(s) verified"
                + (f" ({', '.join(kinds)})" if kinds else "")
                + f"; {len(answer.referrers)} referrer(s) match them")
    return OciVerify(exit_code=1 if failed else 0)


def rules():
    return collect_rules()
