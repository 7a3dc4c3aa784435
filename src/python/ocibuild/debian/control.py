"""deb822 control data: `Packages` indexes, `control` files, `InRelease` bodies."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

from ocibuild.errors import OciBuildError

Paragraph = Dict[str, str]
_RELATION = re.compile(r"^\s*([a-z0-9][a-z0-9+.-]*)(?::([a-z0-9-]+))?\s*"
                       r"(?:\(\s*(<<|<=|=|>=|>>|<|>)\s*([^)\s]+)\s*\))?\s*(?:\[[^]]*\])?\s*"
                       r"(?:<[^>]*>\s*)*$")


def paragraphs(text: str) -> Iterator[Paragraph]:
    """Field names keep their case; continuation lines are joined with newlines."""
    current: Paragraph = {}
    key: Optional[str] = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                yield current
            current, key = {}, None
        elif line[0] in " \t":
            if key is None:
                raise OciBuildError(f"control data: continuation line before any field: {line!r}")
            current[key] += "\n" + line[1:]
        else:
            name, sep, value = line.partition(":")
            if not sep:
                raise OciBuildError(f"control data: {line!r} is not `Field: value`")
            key = name.strip()
            current[key] = value.strip()
    if current:
        yield current


@dataclass(frozen=True)
class Relation:
    name: str
    op: Optional[str] = None
    version: Optional[str] = None

    def __str__(self) -> str:
        return self.name + (f" ({self.op} {self.version})" if self.op else "")


def parse_relations(field: str) -> List[List[Relation]]:
    """`a (>= 1) | b, c:any` -> [[a>=1, b], [c]] (architecture qualifiers dropped)."""
    groups = []
    for group in field.split(","):
        if not group.strip():
            continue
        alternatives = []
        for alternative in group.split("|"):
            match = _RELATION.match(alternative)
            if not match:
                raise OciBuildError(f"cannot parse the package relation {alternative.strip()!r}")
            name, _arch, op, version = match.groups()
            alternatives.append(Relation(name, op, version))
        groups.append(alternatives)
    return groups


def provides(field: str) -> List[Tuple[str, Optional[str]]]:
    """`Provides: a (= 1), b` -> [("a", "1"), ("b", None)]."""
    return [(r.name, r.version if r.op == "=" else None)
            for group in parse_relations(field) for r in group]
