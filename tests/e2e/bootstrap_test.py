"""The ./pants bootstrap: where Pants searches for interpreters (pyenv's and asdf's shims left
out, since every PEX build probes each entry and failing shims are probed anew each time)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

from tests.e2e.repo import copy_repo, run_pants


def search_path(repo: Path, env: Dict[str, str]) -> List[str]:
    help_all = json.loads(run_pants(repo, "help-all", extra_env=env).stdout)
    scope = help_all["scope_to_help_info"]["python-bootstrap"]
    option = next(o for o in scope["basic"] + scope["advanced"] if o["config_key"] == "search_path")
    return option["value_history"]["ranked_values"][-1]["value"]


def test_interpreter_search_skips_pyenv_and_asdf_shims(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo", pantsd=True)
    pyenv, asdf = tmp_path / "pyenv", tmp_path / "asdf"
    shims = [f"{pyenv}/shims", f"{pyenv}/plugins/pyenv-virtualenv/shims", f"{asdf}/shims"]
    kept = ["/opt/mise/shims", "/usr/local/bin", "/usr/bin", "/bin"]
    env = {"PATH": ":".join([shims[0], kept[0], shims[1], shims[2], *kept[1:]]),
           "PYENV_ROOT": str(pyenv), "ASDF_DATA_DIR": str(asdf)}
    assert search_path(repo, env) == ["<PYENV>", "<ASDF>", *kept]

    explicit = {**env, "PANTS_PYTHON_BOOTSTRAP_SEARCH_PATH": '["/opt/python/bin"]'}
    assert search_path(repo, explicit) == ["/opt/python/bin"]
