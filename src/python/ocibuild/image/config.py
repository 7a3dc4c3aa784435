"""Apply an image's settings to its base's config, with Dockerfile semantics.

A pure function: it returns a new config and never mutates the base's.
"""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass
from typing import Sequence

from ocibuild.platform import Platform


def _pairs(value) -> tuple[tuple[str, str], ...]:
    """Env as `[[name, value], ...]` (order kept) or an object (its order)."""
    items = value.items() if isinstance(value, dict) else (value or ())
    return tuple((str(k), str(v)) for k, v in items)


@dataclass(frozen=True)
class ImageSettings:
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[tuple[str, str], ...] = ()
    workdir: str | None = None
    user: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    stop_signal: str | None = None

    @classmethod
    def from_json(cls, raw: dict) -> "ImageSettings":
        def seq(key):
            return None if raw.get(key) is None else tuple(raw[key])

        return cls(
            entrypoint=seq("entrypoint"),
            cmd=seq("cmd"),
            env=_pairs(raw.get("env")),
            workdir=raw.get("workdir"),
            user=raw.get("user"),
            labels=tuple((raw.get("labels") or {}).items()),
            exposed_ports=tuple(raw.get("exposed_ports") or ()),
            volumes=tuple(raw.get("volumes") or ()),
            stop_signal=raw.get("stop_signal"),
        )


def rfc3339(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def _merge_env(base: list[str], env: tuple[tuple[str, str], ...]) -> list[str]:
    """By name: a name already in the base keeps its place with the new value; new names follow."""
    merged = dict(item.split("=", 1) if "=" in item else (item, "") for item in base)
    merged.update(env)
    return [f"{k}={v}" for k, v in merged.items()]


def _apply(conf: dict, s: ImageSettings) -> None:
    if s.entrypoint is not None:
        conf["Entrypoint"] = list(s.entrypoint)
        if s.cmd is None:
            # As a Dockerfile ENTRYPOINT does: the base's CMD was meant for the base's entrypoint.
            conf.pop("Cmd", None)
    if s.cmd is not None:
        conf["Cmd"] = list(s.cmd)
    if s.env:
        conf["Env"] = _merge_env(conf.get("Env") or [], s.env)
    for key, value in (("WorkingDir", s.workdir), ("User", s.user), ("StopSignal", s.stop_signal)):
        if value is not None:
            conf[key] = value
    if s.labels:
        conf["Labels"] = {**(conf.get("Labels") or {}), **dict(s.labels)}
    for key, values in (("ExposedPorts", s.exposed_ports), ("Volumes", s.volumes)):
        if values:
            conf[key] = {**(conf.get(key) or {}), **{v: {} for v in values}}


def apply_settings(base_config: dict, settings: ImageSettings, *, platform: Platform,
                   created: str, new_diff_ids: Sequence[str], history: Sequence[str]) -> dict:
    config = copy.deepcopy(base_config)
    config.update(platform.to_json())
    if not platform.variant:
        config.pop("variant", None)
    config["created"] = created
    conf = config.setdefault("config", {})
    _apply(conf, settings)
    rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs["type"] = "layers"
    rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), *new_diff_ids]
    # `created` on every entry: umoci (and others) reject history without it.
    config["history"] = [
        *config.get("history", []),
        *({"created": created, "created_by": by} for by in history),
    ]
    return config
