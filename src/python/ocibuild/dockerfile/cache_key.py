"""The cache key of a RUN step: what a step's layer depends on, hashed.

A key is SHA-256 over the canonical JSON (ocibuild.canonical_json) of everything the step
sees that could change its layer: the stage's layers so far (their diff_ids: the bytes of the
tree the step runs in), the config fields a step reads (Env, User, WorkingDir, Shell), the
argv it runs and the instruction's flags and heredocs, the ARGs in scope with their values,
the target platform, how the layer is written (compression, SOURCE_DATE_EPOCH) and
`SEMANTICS`, the version of this builder's layer output. Two builds with equal keys would
write the same layer (up to what the step itself does: the network, the clock), so a hit
may stand in for running the step.

What is not in a key, and why (docs/dockerfile.md "Layer cache"): the RUN mechanism (a layer
is meant to be the same whichever runs it; the entry records which one made it), the proxy
build args (docker keeps them out of its cache too), and secrets, ever: a key is a tag in a
cache repository, readable by whoever can pull from it.

`Material` is how a RUN flag that brings in files (`--mount=type=bind|cache`) adds them: the
mount's options and the digest of what it mounts (from the context or a stage), never its
bytes, never a secret's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

from ocibuild import canonical_json
from ocibuild.digest import bytes_digest

# Bump when the layer this builder writes for the same inputs changes (tar policy, diff
# rules, ownership handling): every entry made before then misses.
SEMANTICS = 1

# The config fields a RUN step reads: its environment, user, working directory, and the
# shell its shell form is run with (the argv holds that already; kept for exec form's sake).
CONFIG_FIELDS = ("Env", "User", "WorkingDir", "Shell")


@dataclass(frozen=True)
class Material:
    """One more input of a step, fed by the RUN flag that brings it in.

    `kind` names the flag's kind ("bind", "cache", "tmpfs", ...); `target` where the step
    sees it; `fields` its options and, for a bind mount from the context or a stage, a
    `source_digest` of what is mounted (e.g. sha256 over the canonical JSON of the mounted
    paths, kinds, modes, owners and content digests). A cache mount adds its id and sharing,
    not its content: like BuildKit's, a cache mount is a speed-up the step must not depend on.
    """

    kind: str
    target: str
    fields: Tuple[Tuple[str, str], ...] = ()

    def to_json(self) -> dict:
        if self.kind == "secret" or self.kind == "ssh":
            # A secret's bytes or even its presence must never reach a cache tag.
            raise ValueError("a secret is never material of a cache key")
        return {"kind": self.kind, "target": self.target, "fields": dict(self.fields)}


@dataclass(frozen=True)
class StepInputs:
    """What a RUN step's layer depends on (see the module's docstring)."""

    parent: Tuple[str, ...]  # the diff_ids of the stage's layers so far, lowest first
    config: Tuple[Tuple[str, object], ...]  # CONFIG_FIELDS as the step sees them
    argv: Tuple[str, ...]
    flags: Tuple[Tuple[str, Optional[str]], ...]
    heredocs: Tuple[Tuple[str, str, bool], ...]  # (name, content, expands)
    args: Tuple[Tuple[str, str], ...]  # the ARGs in scope, with their values
    platform: str
    compression: str
    epoch: int
    material: Tuple[Material, ...] = ()

    def to_json(self) -> dict:
        return {"semantics": SEMANTICS, "instruction": "RUN", "parent": list(self.parent),
                "config": dict(self.config), "argv": list(self.argv),
                "flags": [[k, v] for k, v in self.flags],
                "heredocs": [list(h) for h in self.heredocs],
                "args": dict(self.args), "platform": self.platform,
                "compression": self.compression, "epoch": self.epoch,
                "material": [m.to_json() for m in self.material]}

    @property
    def key(self) -> str:
        """64 hex digits: a valid tag, as kaniko's keys are."""
        return bytes_digest(canonical_json.dumps(self.to_json())).split(":", 1)[1]


def step_inputs(parent: Sequence[str], config: Mapping[str, object], argv: Sequence[str],
                flags: Mapping[str, Optional[str]], heredocs: Sequence[Tuple[str, str, bool]],
                args: Mapping[str, str], platform: str, compression: str, epoch: int,
                material: Sequence[Material] = ()) -> StepInputs:
    seen: Dict[str, object] = {f: config.get(f) for f in CONFIG_FIELDS if config.get(f)}
    return StepInputs(tuple(parent), tuple(sorted(seen.items())), tuple(argv),
                      tuple(sorted(flags.items())), tuple(heredocs),
                      tuple(sorted(args.items())), platform, compression, epoch,
                      tuple(material))

