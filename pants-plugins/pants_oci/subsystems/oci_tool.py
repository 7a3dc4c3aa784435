"""The `ocibuild` core as a Pants tool: a PEX with its sources and requirements.

Layer builds and image assembly run `ocibuild` inside the sandbox, the way Pants' docker
backend runs its Dockerfile parser: the sources travel with the PEX. Every process is made by
`ocibuild_process` from a typed request document (`ocibuild.protocol`); the answer comes back
as a typed document on stdout, an error as an `ErrorResult` the rules turn into a Pants error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ocibuild
from ocibuild.errors import EscapedError, OciBuildError
from ocibuild.protocol.assemble import AssembleRequest, AssembleResult
from ocibuild.protocol.archive import (
    DockerArchiveRequest,
    DockerArchiveResult,
    UnpackLayoutRequest,
    UnpackLayoutResult,
)
from ocibuild.protocol.debian import DebianLayerRequest
from ocibuild.protocol.dockerfile import (
    DockerfileImageRequest,
    DockerfilePlan,
    DockerfilePlanRequest,
    DockerfileStepRequest,
    DockerfileStepResult,
)
from ocibuild.protocol.index import IndexRequest, IndexResult
from ocibuild.protocol.document import Document
from ocibuild.protocol.error import BAD_INPUT, INTERRUPTED, ErrorResult
from ocibuild.protocol.layer import (
    BaseTree,
    BaseTreeRequest,
    CompressorRequest,
    CompressorVersion,
    LayerDescriptor,
    LayerRequest,
)
from ocibuild.protocol.provenance import ProvenanceRequest, ProvenanceResult
from ocibuild.protocol.referrers import ReferrersRequest, ReferrersResult
from ocibuild.protocol.sbom import SbomRequest, SbomResult
from pants.backend.python.subsystems.python_tool_base import (
    LockfileRules,
    PythonToolRequirementsBase,
)
from pants.backend.python.target_types import EntryPoint
from pants.backend.python.util_rules import pex
from pants.backend.python.util_rules.pex import PexRequest, VenvPex, VenvPexProcess
from pants.engine.fs import (
    EMPTY_DIGEST,
    CreateDigest,
    Digest,
    FileContent,
    MergeDigests,
    RemovePrefix,
)
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel
from pants.util.strutil import help_text


class OciTool(PythonToolRequirementsBase):
    options_scope = "oci-tool"
    help = help_text(
        """
        The `ocibuild` core that builds layers and assembles images inside Pants' sandbox.

        It needs `deflate` (libdeflate, for gzip layers), `zstandard` and `requests` beyond the
        standard library, and reads gzip layers faster with `isal` (ISA-L's igzip) where it is
        installed. In this repository it is installed from the `ocibuild` resolve
        (`install_from_resolve = "ocibuild"`). Keep `deflate` pinned: gzip layer bytes depend
        on its libdeflate version, and the layer digests with them.
        """
    )

    default_version = "zstandard==0.21.0"
    default_extra_requirements = ["requests==2.32.5", "deflate==0.8.1", "cryptography==43.0.3",
                                  "isal==1.9.1"]
    register_interpreter_constraints = True
    default_interpreter_constraints = ["CPython>=3.9,<3.14"]
    default_lockfile_resource = ("pants_oci.lockfiles", "ocibuild.lock")
    lockfile_rules_type = LockfileRules.SIMPLE


def ocibuild_sources() -> tuple[FileContent, ...]:
    """The core package's modules, read from where the backend imports them.

    Sorted, so the PEX (and so every layer process' cache key) depends only on their content.
    """
    root = Path(ocibuild.__file__).parent
    return tuple(
        FileContent(f"ocibuild/{path.relative_to(root).as_posix()}", path.read_bytes())
        for path in sorted(root.rglob("*.py"))
    )


@dataclass(frozen=True)
class OcibuildPex:
    pex: VenvPex


@rule(desc="Set up the ocibuild tool", level=LogLevel.DEBUG)
async def setup_ocibuild(tool: OciTool) -> OcibuildPex:
    sources = await Get(Digest, CreateDigest(ocibuild_sources()))
    built = await Get(
        VenvPex,
        PexRequest,
        tool.to_pex_request(main=EntryPoint("ocibuild.cli", "main"), sources=sources),
    )
    return OcibuildPex(built)


class OcibuildError(EscapedError):
    """`ocibuild` rejected its input: the message names what is wrong and how to fix it."""


# The sandbox files of every run: the request in, the command's files out.
REQUEST_FILE = "request.json"
OUT_DIR = "out"


@dataclass(frozen=True)
class OcibuildProcessRequest:
    """A `Process` running one typed request of `ocibuild.protocol` (`ocibuild run`)."""

    request: Document
    input_digest: Digest
    description: str
    output_directories: tuple[str, ...] = ()
    # Inputs are content only (no env, no clock, no host paths), so results are cached
    # locally and remotely like compiler outputs.
    cache_scope: ProcessCacheScope = ProcessCacheScope.SUCCESSFUL
    # Only for a push, which runs interactively: the credential sources.
    extra_env: FrozenDict[str, str] = FrozenDict()


@rule
async def ocibuild_process(request: OcibuildProcessRequest, tool: OcibuildPex) -> Process:
    """Every `ocibuild` process of the backend is made here, from its typed request."""
    document = await Get(
        Digest, CreateDigest([FileContent(REQUEST_FILE, request.request.dumps())])
    )
    inputs = await Get(Digest, MergeDigests([request.input_digest, document]))
    return await Get(
        Process,
        VenvPexProcess(
            tool.pex,
            argv=("run", "--request", REQUEST_FILE, "--out-dir", OUT_DIR),
            input_digest=inputs,
            description=request.description,
            output_directories=request.output_directories,
            level=LogLevel.DEBUG,
            cache_scope=request.cache_scope,
            extra_env=request.extra_env,
        ),
    )


@dataclass(frozen=True)
class OcibuildRun:
    """One cached run of a request; `context` prefixes any error, e.g. "building the layer for
    //app:bin in //app:image". The command's output files are under `OUT_DIR`."""

    request: Document
    input_digest: Digest
    description: str
    context: str
    cache_scope: ProcessCacheScope = ProcessCacheScope.SUCCESSFUL


@dataclass(frozen=True)
class OcibuildResult:
    output_digest: Digest  # rooted at OUT_DIR's contents
    result: Document


# What each kind of request answers.
RESULTS: dict[str, type[Document]] = {
    LayerRequest.KIND: LayerDescriptor,
    DebianLayerRequest.KIND: LayerDescriptor,
    DockerArchiveRequest.KIND: DockerArchiveResult,
    UnpackLayoutRequest.KIND: UnpackLayoutResult,
    CompressorRequest.KIND: CompressorVersion,
    BaseTreeRequest.KIND: BaseTree,
    AssembleRequest.KIND: AssembleResult,
    IndexRequest.KIND: IndexResult,
    SbomRequest.KIND: SbomResult,
    ProvenanceRequest.KIND: ProvenanceResult,
    ReferrersRequest.KIND: ReferrersResult,
    DockerfilePlanRequest.KIND: DockerfilePlan,
    DockerfileStepRequest.KIND: DockerfileStepResult,
    DockerfileImageRequest.KIND: AssembleResult,
}


def error_of(exit_code: int, stdout: bytes, stderr: bytes, context: str) -> OcibuildError:
    """The Pants error for a failed run, from the `ErrorResult` document on its stdout."""
    try:
        error = ErrorResult.loads(stdout, "the error document")
    except OciBuildError:
        error = None
    if error is not None and error.error == BAD_INPUT:
        return OcibuildError(f"Error {context}: {error.message}")
    if error is not None and error.error == INTERRUPTED:
        return OcibuildError(f"ocibuild was interrupted {context} (exit code {exit_code})")
    output = stderr.decode("utf-8", "replace").strip()
    return OcibuildError(
        f"ocibuild crashed {context} (exit code {exit_code}); this is a bug in pants-oci, "
        f"please report it with this output:\n{output}"
    )


@rule
async def run_ocibuild(request: OcibuildRun) -> OcibuildResult:
    process = await Get(
        Process,
        OcibuildProcessRequest(
            request.request,
            request.input_digest,
            request.description,
            output_directories=(OUT_DIR,),
            cache_scope=request.cache_scope,
        ),
    )
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code != 0:
        raise error_of(result.exit_code, result.stdout, result.stderr, request.context)
    answer = RESULTS[request.request.KIND].loads(result.stdout, "ocibuild's answer")
    return OcibuildResult(await Get(Digest, RemovePrefix(result.output_digest, OUT_DIR)), answer)


@dataclass(frozen=True)
class Compressor:
    """The compressor build the tool's sandboxes use (e.g. "pgzip 3 deflate 0.8.1, zlib 1.2.13;
    zstd ...").

    Compressed bytes depend on it, so it goes into every layer process's cache key: another
    zlib never silently reuses (or poisons) a cached layer digest. Probed once per pantsd."""

    version: str


@rule(desc="Identify the compressor of the ocibuild tool", level=LogLevel.DEBUG)
async def compressor() -> Compressor:
    result = await Get(
        OcibuildResult,
        OcibuildRun(
            CompressorRequest(),
            EMPTY_DIGEST,
            description="Identifying the ocibuild compressor",
            context="identifying the compressor",
            cache_scope=ProcessCacheScope.PER_RESTART_SUCCESSFUL,
        ),
    )
    answer = result.result
    assert isinstance(answer, CompressorVersion)
    return Compressor(answer.compressor)


def rules():
    return (*collect_rules(), *OciTool.rules(), *pex.rules())
