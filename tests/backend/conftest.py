"""A RuleRunner with the pants-oci backend, running the real `ocibuild` processes."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import pytest
from pants.backend.python import register as python_backend
from pants.core.goals.package import BuiltPackage
from pants.core.target_types import (
    ArchiveTarget,
    FilesGeneratorTarget,
    FileTarget,
    GenericTarget,
    RelocatedFiles,
)
from pants.core import register as core_backend
from pants.engine.rules import QueryRule
from pants.testutil.rule_runner import RuleRunner

from pants_oci import register
from pants_oci.goals.debian_lock import DebianLock
from pants_oci.goals.package import OciImageFieldSet

# Options the ./pants bootstrap passes in the environment (a local pex tool, the CA bundle).
_BOOTSTRAP_ENV = (
    "PANTS_PEX_CLI_VERSION",
    "PANTS_PEX_CLI_KNOWN_VERSIONS",
    "PANTS_PEX_CLI_URL_TEMPLATE",
    "PANTS_CA_CERTS_PATH",
)


def make_rule_runner(extra_options: tuple = (), extra_env: dict | None = None,
                     ca_certs_path: str | None = None) -> RuleRunner:
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
        ],
        rules=[
            *register.rules(),
            *core_backend.rules(),
            *python_backend.rules(),
            QueryRule(BuiltPackage, [OciImageFieldSet]),
        ],
    )
    lock = resources.read_binary("pants_oci.lockfiles", "ocibuild.lock")
    runner.write_files({"3rdparty/ocibuild.lock": lock})
    configure(runner, extra_options, extra_env)
    return runner


def configure(runner: RuleRunner, extra_options: tuple = (), extra_env: dict | None = None) -> None:
    """The options every test needs (again after `run_goal_rule`, which replaces them)."""
    runner.set_options(
        [
            "--python-resolves={'ocibuild': '3rdparty/ocibuild.lock'}",
            # As in pants.toml: the lock is for 3.9+, so never pick an older interpreter.
            "--python-resolves-to-interpreter-constraints={'ocibuild': ['CPython>=3.9,<3.14']}",
            "--python-enable-resolves",
            "--oci-tool-install-from-resolve=ocibuild",
            "--subprocess-environment-env-vars=['PIP_CONFIG_FILE=/dev/null']",
            *extra_options,
        ],
        env={**{k: os.environ[k] for k in _BOOTSTRAP_ENV if k in os.environ}, **(extra_env or {})},
        env_inherit={"PATH", "PYENV_ROOT", "HOME"},
    )


@pytest.fixture
def rule_runner() -> RuleRunner:
    return make_rule_runner()


def build(runner: RuleRunner, address) -> tuple[BuiltPackage, Path]:
    """Package the image and write it under the build root's dist/, returning that dir."""
    target = runner.get_target(address)
    package = runner.request(BuiltPackage, [OciImageFieldSet.create(target)])
    runner.write_digest(package.digest, path_prefix="dist")
    return package, Path(runner.build_root, "dist")


def debian_lock(runner: RuleRunner, address: str = "img:base") -> str:
    """`pants debian-lock ADDRESS`, which must succeed; then the options again (the goal
    rule leaves the runner's options set to its own). Its stdout."""
    result = runner.run_goal_rule(DebianLock, args=[address])
    configure(runner)
    assert result.exit_code == 0, result.stderr
    return result.stdout
