"""The `ocibuild` core as a Pants tool: a PEX with its sources and requirements.

Layer builds and image assembly run `ocibuild` inside the sandbox, the way Pants' docker
backend runs its Dockerfile parser: the sources travel with the PEX, the script prints JSON
and the rules read typed results back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import ocibuild
from pants.backend.python.subsystems.python_tool_base import (
    LockfileRules,
    PythonToolRequirementsBase,
)
from pants.backend.python.target_types import EntryPoint
from pants.backend.python.util_rules import pex
from pants.backend.python.util_rules.pex import PexRequest, VenvPex, VenvPexProcess
from pants.engine.fs import EMPTY_DIGEST, CreateDigest, Digest, FileContent
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel
from pants.util.strutil import help_text


class OciTool(PythonToolRequirementsBase):
    options_scope = "oci-tool"
    help = help_text(
        """
        The `ocibuild` core that builds layers and assembles images inside Pants' sandbox.

        It needs `deflate` (libdeflate, for gzip layers), `zstandard` and `requests` beyond the
        standard library. In this repository it is installed from the `ocibuild` resolve
        (`install_from_resolve = "ocibuild"`). Keep `deflate` pinned: gzip layer bytes depend
        on its libdeflate version, and the layer digests with them.
        """
    )

    default_version = "zstandard==0.21.0"
    default_extra_requirements = ["requests==2.32.5", "deflate==0.8.1"]
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


class OcibuildError(Exception):
    """`ocibuild` rejected its input: the message names what is wrong and how to fix it."""


@dataclass(frozen=True)
class OcibuildRun:
    """One run of `ocibuild <argv>`: deterministic and hermetic, so cached like a compile.

    `context` prefixes any error, e.g. "building the layer for //app:bin in //app:image".
    """

    argv: tuple[str, ...]
    input_digest: Digest
    description: str
    context: str
    output_directories: tuple[str, ...] = ()
    output_files: tuple[str, ...] = ()
    # Inputs are content only (no env, no clock, no host paths), so results are cached
    # locally and remotely like compiler outputs.
    cache_scope: ProcessCacheScope = ProcessCacheScope.SUCCESSFUL


@dataclass(frozen=True)
class OcibuildResult:
    output_digest: Digest
    stdout: bytes


# `ocibuild` exits 2 for bad input (a message for the user) and 1 for a crash (a bug).
_USER_ERROR_EXIT_CODE = 2


@rule
async def run_ocibuild(request: OcibuildRun, tool: OcibuildPex) -> OcibuildResult:
    process = await Get(
        Process,
        VenvPexProcess(
            tool.pex,
            argv=request.argv,
            input_digest=request.input_digest,
            description=request.description,
            output_directories=request.output_directories,
            output_files=request.output_files,
            level=LogLevel.DEBUG,
            cache_scope=request.cache_scope,
        ),
    )
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code == 0:
        return OcibuildResult(result.output_digest, result.stdout)
    stderr = result.stderr.decode("utf-8", "replace").strip()
    if result.exit_code == _USER_ERROR_EXIT_CODE:
        message = stderr.rsplit("ocibuild: error: ", 1)[-1]
        raise OcibuildError(f"Error {request.context}: {message}")
    raise OcibuildError(
        f"ocibuild crashed {request.context} (exit code {result.exit_code}); this is a bug "
        f"in pants-oci, please report it with this output:\n{stderr}"
    )


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
            argv=("compressor-version",),
            input_digest=EMPTY_DIGEST,
            description="Identifying the ocibuild compressor",
            context="identifying the compressor",
            cache_scope=ProcessCacheScope.PER_RESTART_SUCCESSFUL,
        ),
    )
    return Compressor(json.loads(result.stdout)["compressor"])


def rules():
    return (*collect_rules(), *OciTool.rules(), *pex.rules())
