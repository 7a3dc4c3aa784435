"""An `oci_python_app` in an image: site-packages and sources as plain, byte-compiled files.

No PEX goes into the image. The third-party distributions come from a `loose` PEX of the
app's requirements (resolved from its lockfile, as for a `pex_binary`): each distribution is
an installed-wheel directory there (`.deps/<wheel>/`), merged into `/app/site-packages`. They
are grouped into at most `max_layers` layers by the rule `debian_packages` uses (the largest
alone, the rest by a hash of their name: ocibuild.debian.grouping), so a new version of one
requirement changes its layer only. The sources (source roots stripped, resources included)
go to `/app/src`, one layer, built without any PEX: a code change rebuilds that layer alone.

Every `.py` is compiled to an unchecked-hash `.pyc` (PEP 552: no mtime in it, never
re-validated) by the interpreter Pants picks for the app's `interpreter_constraints`, with
`PYTHONHASHSEED=0` and the image path as the file name in the code objects, so the bytes do not
depend on the sandbox, and the container imports without compiling or writing anything.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass

from pants.backend.python.target_types import PexLayout, PythonResolveField
from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints
from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.util_rules.pex import Pex
from pants.backend.python.util_rules.pex_environment import PythonExecutable
from pants.backend.python.util_rules.pex_from_targets import (
    InterpreterConstraintsRequest,
    PexFromTargetsRequest,
)
from pants.backend.python.util_rules.python_sources import (
    PythonSourceFilesRequest,
    StrippedPythonSourceFiles,
)
from pants.engine.addresses import Addresses
from pants.engine.fs import AddPrefix, Digest, DigestEntries, DigestSubset, FileEntry, PathGlobs
from pants.engine.process import Process, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import DependenciesRequest, Target, TransitiveTargets, TransitiveTargetsRequest
from pants.engine.unions import UnionMembership, UnionRule
from pants.util.logging import LogLevel

from ocibuild.debian.grouping import group_packages
from pants_oci.target_types import (
    OciPythonAppDependenciesField,
    OciPythonAppMaxLayersField,
    OciPythonAppTarget,
)
from pants_oci.util_rules.layer_content import (
    INPUT_DIR,
    PACKAGE_DIR,
    LayerContent,
    LayerContentProvider,
    LayerContents,
    OciDependencyError,
)

SITE_PACKAGES = posixpath.join(PACKAGE_DIR, "site-packages")
SOURCES = posixpath.join(PACKAGE_DIR, "src")
REQUIREMENTS_PEX = "requirements.pex"
_DEPS = f"{REQUIREMENTS_PEX}/.deps/"
# What pex adds to an installed wheel's directory for its own use, not the distribution's
# files: its record of the layout (the same name in every distribution, so two in one
# site-packages would collide) and the install prefix for scripts and data files.
_PEX_ONLY = (".layout.json", ".prefix/**")
# Compiles each (directory, image directory) pair of argv[1] (JSON) in place.
_COMPILE = """
import compileall, json, py_compile, sys
for directory, image_dir in json.loads(sys.argv[1]):
    ok = compileall.compile_dir(directory, quiet=1, stripdir=directory, prependdir=image_dir,
                                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    if not ok:
        sys.exit(f"compiling {image_dir} failed")
"""


@dataclass(frozen=True)
class PythonAppContent(LayerContentProvider):
    """An oci_python_app: site-packages layers, then the sources layer."""

    priority = 25

    @classmethod
    def applies_to(cls, target: Target, union_membership: UnionMembership) -> bool:
        return isinstance(target, OciPythonAppTarget)


@dataclass(frozen=True)
class CompiledTree:
    """`digest` with a `.pyc` beside each `.py` of `dirs` (sandbox dir, image dir pairs)."""

    digest: Digest
    dirs: tuple[tuple[str, str], ...]
    interpreter_constraints: InterpreterConstraints
    what: str


@rule(desc="Byte-compile Python files for an image", level=LogLevel.DEBUG)
async def compile_tree(request: CompiledTree) -> Digest:
    python = await Get(PythonExecutable, InterpreterConstraints, request.interpreter_constraints)
    result = await Get(
        ProcessResult,
        Process(
            argv=(python.path, "-c", _COMPILE, json.dumps([list(d) for d in request.dirs])),
            input_digest=request.digest,
            output_directories=tuple(sorted({d.split("/", 1)[0] for d, _ in request.dirs})),
            env={"PYTHONHASHSEED": "0"},
            append_only_caches=python.append_only_caches,
            immutable_input_digests=python.immutable_input_digests,
            description=f"Byte-compiling {request.what}",
            level=LogLevel.DEBUG,
        ),
    )
    return result.output_digest


def _distribution(path: str) -> str:
    """`requirements.pex/.deps/click-8.1.7-py3-none-any.whl/...` -> the wheel directory."""
    return path[len(_DEPS) :].split("/", 1)[0]


def _image_paths(entries: DigestEntries, prefix: str, dest: str) -> tuple[str, ...]:
    return tuple(sorted(posixpath.join(dest, e.path[len(prefix) :]) for e in entries
                        if isinstance(e, FileEntry) and e.path.startswith(prefix)))


@dataclass(frozen=True)
class AppRequirementsRequest:
    target: Target


@dataclass(frozen=True)
class AppRequirements:
    """What an oci_python_app is made of: its requirements as a loose PEX (`requirements.pex/`,
    `.deps/<wheel>/` each), its stripped sources, and the resolve they came from."""

    pex: Digest
    sources: Digest
    resolve: str
    interpreter_constraints: InterpreterConstraints


@rule(desc="Resolve an oci_python_app", level=LogLevel.DEBUG)
async def app_requirements(request: AppRequirementsRequest, python_setup: PythonSetup
                           ) -> AppRequirements:
    target = request.target
    roots = await Get(Addresses, DependenciesRequest(target[OciPythonAppDependenciesField]))
    if not roots:
        raise OciDependencyError(
            f"The oci_python_app {target.address} has no `dependencies`: list its "
            "python_sources, e.g. dependencies=[\":lib\"]."
        )
    transitive = await Get(TransitiveTargets, TransitiveTargetsRequest(roots))
    # The targets with a resolve (python_source, python_requirement): a `python_sources`
    # generator has none itself, and Pants would then pick the default resolve.
    resolved = [t for t in transitive.closure if t.has_field(PythonResolveField)]
    if not resolved:
        raise OciDependencyError(
            f"The oci_python_app {target.address} depends on no Python code: list its "
            "python_sources in `dependencies`."
        )
    roots = Addresses(t.address for t in resolved)
    sources, requirements, constraints = await MultiGet(
        Get(StrippedPythonSourceFiles, PythonSourceFilesRequest(transitive.closure,
                                                               include_resources=True)),
        Get(Pex, PexFromTargetsRequest(roots, output_filename=REQUIREMENTS_PEX, internal_only=False,
                                       layout=PexLayout.LOOSE, include_source_files=False,
                                       description=f"Resolving the requirements of "
                                                   f"{target.address}")),
        Get(InterpreterConstraints, InterpreterConstraintsRequest(roots)),
    )
    return AppRequirements(requirements.digest, sources.stripped_source_files.snapshot.digest,
                           resolved[0][PythonResolveField].normalized_value(python_setup),
                           constraints)


@rule(desc="Lay out an oci_python_app", level=LogLevel.DEBUG)
async def python_app_content(request: PythonAppContent) -> LayerContents:
    target = request.target
    app = await Get(AppRequirements, AppRequirementsRequest(target))
    constraints = app.interpreter_constraints
    entries = await Get(DigestEntries, Digest, app.pex)
    # Grouped by project name, not by wheel file name: a new version of a requirement keeps
    # its name's hash bucket, so it changes its own layer and no other.
    wheels: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for entry in entries:
        if isinstance(entry, FileEntry) and entry.path.startswith(_DEPS):
            wheel = _distribution(entry.path)
            name = wheel.split("-", 1)[0].lower()
            wheels[name] = wheel
            sizes[name] = sizes.get(name, 0) + entry.file_digest.serialized_bytes_length
    groups = group_packages(sizes, target[OciPythonAppMaxLayersField].value) if sizes else []

    contents = []
    for group in groups:
        dirs = tuple((f"{_DEPS}{wheels[name]}", "/" + SITE_PACKAGES) for name in group)
        subset = await Get(Digest, DigestSubset(app.pex, PathGlobs(
            [f"{d}/**" for d, _ in dirs] + [f"!{d}/{pex}" for d, _ in dirs for pex in _PEX_ONLY])))
        names = ", ".join(group)
        compiled = await Get(Digest, CompiledTree(subset, dirs, constraints,
                                                  f"{names} for {target.address}"))
        compiled_entries = await Get(DigestEntries, Digest, compiled)
        contents.append(LayerContent(
            target.address,
            await Get(Digest, AddPrefix(compiled, INPUT_DIR)),
            tuple((posixpath.join(INPUT_DIR, d), SITE_PACKAGES) for d, _ in dirs),
            tuple(p for d, _ in dirs
                  for p in _image_paths(compiled_entries, d + "/", SITE_PACKAGES)),
            f"site-packages: {names}",
            packaged=True,
            wheels=tuple(sorted(wheels[name] for name in group)),
        ))

    tree = "src"
    moved = await Get(Digest, AddPrefix(app.sources, tree))
    compiled = await Get(Digest, CompiledTree(moved, ((tree, "/" + SOURCES),), constraints,
                                              f"the sources of {target.address}"))
    compiled_entries = await Get(DigestEntries, Digest, compiled)
    contents.append(LayerContent(
        target.address,
        await Get(Digest, AddPrefix(compiled, INPUT_DIR)),
        ((posixpath.join(INPUT_DIR, tree), SOURCES),),
        _image_paths(compiled_entries, tree + "/", SOURCES),
        "sources",
        packaged=True,
    ))
    return LayerContents(tuple(contents))


def rules():
    return (*collect_rules(), UnionRule(LayerContentProvider, PythonAppContent))
