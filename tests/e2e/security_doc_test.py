"""docs/security.md names the test that proves each rule: every one it names must exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List

DOC = Path("docs/security.md")
# `tests/core/x_test.py::test_name[params]`, or `::test_name` after a bullet named the file.
_REF = re.compile(r"`(tests/[\w/]+\.py)?(?:::(\w+))?(?:\[[^\]]*\])?`")
# Sections whose bullets are rules, each of which must cite a test.
_NOT_RULES = ("Known limits", "Property-based tests", "Trusted and untrusted",
              "Rules everyone inherits")


def _bullets(text: str) -> List[tuple]:
    """(section, bullet text) for each `* ` bullet."""
    found, section = [], ""
    for block in re.split(r"\n(?=\* |## )", text):
        if block.startswith("## "):
            section = block[3:].splitlines()[0]
        elif block.startswith("* "):
            found.append((section, block))
    return found


def test_every_test_named_in_security_md_exists() -> None:
    missing, uncited = [], []
    for section, bullet in _bullets(DOC.read_text()):
        current = None
        cites = 0
        for path, name in _REF.findall(bullet):
            if path:
                current = path
                cites += 1
                if not Path(path).is_file():
                    missing.append(path)
            if name:
                source = Path(current).read_text() if current and Path(current).is_file() else ""
                if not re.search(rf"^(async )?def {name}\(", source, re.MULTILINE):
                    missing.append(f"{current}::{name}")
        if cites == 0 and section not in _NOT_RULES:
            uncited.append(f"{section}: {bullet[:60]}...")
    assert missing == [], f"docs/security.md names tests that do not exist: {missing}"
    assert uncited == [], f"docs/security.md states rules without a test: {uncited}"
