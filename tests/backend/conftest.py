"""A RuleRunner with the pants-oci backend, running the real `ocibuild` processes.

Making a RuleRunner costs ~4 s (the rule graph of the Python backend is solved anew), more
than most tests' own work, so each test module shares one: the `rule_runner` fixture hands
it to every test as if it were new (an empty build root, no file state remembered, the
default options). What the engine keeps across tests is keyed by content (process results,
downloads by URL and SHA-256), as in a user's pantsd; tests that must not find something
there already make their inputs unique (a random id in a file or config).
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

import pytest
from pants.backend.python import register as python_backend
from pants.base.build_root import BuildRoot
from pants.core.goals.package import BuiltPackage, Package
from pants.core.target_types import (
    ArchiveTarget,
    FilesGeneratorTarget,
    FileTarget,
    GenericTarget,
    RelocatedFiles,
)
from pants.core import register as core_backend
from pants.engine.fs import Digest, Snapshot
from pants.engine.goal import Goal
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.rules import QueryRule
from pants.testutil.rule_runner import GoalRuleResult, RuleRunner

from pants_oci import register
from pants_oci.goals.debian_lock import DebianLock
from pants_oci.goals.package import OciImageFieldSet
from pants_oci.util_rules.assemble import ShallowLayout, ShallowLayoutRequest

# Options the ./pants bootstrap passes in the environment (a local pex tool, the CA bundle,
# where to look for interpreters: without it every PEX build probes pyenv's shims on PATH).
_BOOTSTRAP_ENV = (
    "PANTS_PEX_CLI_VERSION",
    "PANTS_PEX_CLI_KNOWN_VERSIONS",
    "PANTS_PEX_CLI_URL_TEMPLATE",
    "PANTS_CA_CERTS_PATH",
    "PANTS_PYTHON_BOOTSTRAP_SEARCH_PATH",
)
# What the build root of a new runner holds, and `reset` keeps.
_KEPT = (".pants.d", "3rdparty")


def make_rule_runner(extra_options: tuple = (), extra_env: dict | None = None,
                     ca_certs_path: str | None = None, extra_target_types: tuple = ()
                     ) -> RuleRunner:
    """`ca_certs_path`: the CA bundle of Pants' own downloader, fixed when the engine starts."""
    runner = RuleRunner(
        ca_certs_path=ca_certs_path,
        target_types=[
            *register.target_types(),
            FilesGeneratorTarget,
            FileTarget,
            RelocatedFiles,
            ArchiveTarget,
            GenericTarget,
            *extra_target_types,
        ],
        rules=[
            *register.rules(),
            *core_backend.rules(),
            *python_backend.rules(),
            QueryRule(BuiltPackage, [OciImageFieldSet]),
            QueryRule(ShallowLayout, [ShallowLayoutRequest]),
            QueryRule(Snapshot, [Digest]),
        ],
    )
    lock = resources.read_binary("pants_oci.lockfiles", "ocibuild.lock")
    runner.write_files({"3rdparty/ocibuild.lock": lock})
    configure(runner, extra_options, extra_env)
    return runner


def _options(extra_options: tuple = ()) -> list:
    return [
        "--python-resolves={'ocibuild': '3rdparty/ocibuild.lock'}",
        # As in pants.toml: the lock is for 3.9+, so never pick an older interpreter.
        "--python-resolves-to-interpreter-constraints={'ocibuild': ['CPython>=3.9,<3.14']}",
        "--python-enable-resolves",
        "--oci-tool-install-from-resolve=ocibuild",
        "--subprocess-environment-env-vars=['PIP_CONFIG_FILE=/dev/null']",
        *extra_options,
    ]


def _env(extra_env: dict | None = None) -> dict:
    return {**{k: os.environ[k] for k in _BOOTSTRAP_ENV if k in os.environ}, **(extra_env or {})}


_ENV_INHERIT = {"PATH", "PYENV_ROOT", "HOME"}
# The options `configure` last set on each runner (by id), which goal rules run with too.
_CONFIGURED: dict = {}


def configure(runner: RuleRunner, extra_options: tuple = (), extra_env: dict | None = None) -> None:
    """The options every test needs, and the test's own; `run_goal` runs goals with them too
    (a bare `run_goal_rule` would replace them with its own)."""
    _CONFIGURED[id(runner)] = (tuple(extra_options), dict(extra_env or {}))
    runner.set_options(_options(extra_options), env=_env(extra_env), env_inherit=_ENV_INHERIT)


def reset(runner: RuleRunner) -> RuleRunner:
    """The runner as if new: the build root emptied (but for the tool lockfile and the
    workdir), every file the engine read forgotten, the default options."""
    for entry in Path(runner.build_root).iterdir():
        if entry.name not in _KEPT:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    BuildRoot().path = runner.build_root  # another runner may have been made since
    runner.scheduler.invalidate_all_files()
    configure(runner)
    return runner


def run_goal(runner: RuleRunner, goal: type[Goal], args: list) -> GoalRuleResult:
    """`pants GOAL ARGS` with the options the runner was configured with; they stay set."""
    extra_options, extra_env = _CONFIGURED.get(id(runner), ((), {}))
    try:
        return runner.run_goal_rule(goal, global_args=_options(extra_options), args=args,
                                    env=_env(extra_env), env_inherit=_ENV_INHERIT)
    finally:
        configure(runner, extra_options, extra_env)


def package_error(runner: RuleRunner, address: str) -> str:
    """`pants package ADDRESS`, the real goal (which writes dist/), must fail: its error.
    The build root's dist/ must not exist before, and nothing may be written there."""
    dist = Path(runner.build_root, "dist")
    assert not dist.exists(), "the test must start without dist/ for the check to mean anything"
    with pytest.raises(ExecutionError) as err:
        run_goal(runner, Package, [address])
    assert not dist.exists(), sorted(str(p.relative_to(dist)) for p in dist.rglob("*"))
    return str(err.value)


@pytest.fixture(scope="module")
def shared_rule_runner() -> RuleRunner:
    return make_rule_runner()


@pytest.fixture
def rule_runner(shared_rule_runner: RuleRunner) -> RuleRunner:
    """The module's runner, as if new (see `reset`)."""
    return reset(shared_rule_runner)


def build(runner: RuleRunner, address) -> tuple[BuiltPackage, Path]:
    """Package the image and write it under the build root's dist/, returning that dir."""
    target = runner.get_target(address)
    package = runner.request(BuiltPackage, [OciImageFieldSet.create(target)])
    runner.write_digest(package.digest, path_prefix="dist")
    return package, Path(runner.build_root, "dist")


def debian_lock(runner: RuleRunner, address: str = "img:base") -> str:
    """`pants debian-lock ADDRESS`, which must succeed. Its stdout."""
    result = run_goal(runner, DebianLock, [address])
    assert result.exit_code == 0, result.stderr
    return result.stdout
