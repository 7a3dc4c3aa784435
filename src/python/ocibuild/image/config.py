"""Image configs: settings applied to a base's config with Dockerfile semantics, new layers.

The `with_*` functions are pure: each returns a new config and never mutates the one given
(`ocibuild.image.mutate` applies them to images). Semantics, as `docker build` gives them, so
a Dockerfile user gets no surprises:
* env merges by name: a name already in the base keeps its position and takes the new value;
  new names follow in the order given;
* setting `entrypoint` without `cmd` clears the base's Cmd, as a Dockerfile ENTRYPOINT does
  (the base's Cmd was arguments for the base's entrypoint, not for the new one);
* labels, exposed ports and volumes merge into the base's; user, workdir and stop signal
  replace the base's; an empty entrypoint or cmd clears it;
* one history entry per new layer, each with `created` (umoci rejects history without it).

The base's config is untrusted: a field this module reads or extends that has the wrong JSON
type (`"Env": "PATH=/bin"`, `Labels` a list, `rootfs.diff_ids` not digests) is refused with
an error naming the base and the field. It is never "fixed": extending a string Env as a list
would write a corrupt config (one variable per character).
"""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from ocibuild import validate
from ocibuild.digest import validate_digest
from ocibuild.errors import OciBuildError
from ocibuild.image import kind
from ocibuild.platform import Platform
from ocibuild.untrusted import field, str_list, str_map

Pairs = Tuple[Tuple[str, str], ...]
# 9999-12-31T23:59:59Z: RFC 3339 has four-digit years (and datetime overflows beyond).
_MAX_EPOCH = 253402300799
SETTINGS_KEYS = ("entrypoint", "cmd", "env", "workdir", "user", "labels", "exposed_ports",
                 "volumes", "stop_signal")


@dataclass(frozen=True)
class ImageSettings:
    """None everywhere means "keep the base's"."""

    entrypoint: Optional[Tuple[str, ...]] = None
    cmd: Optional[Tuple[str, ...]] = None
    env: Optional[Pairs] = None
    workdir: Optional[str] = None
    user: Optional[str] = None
    labels: Optional[Pairs] = None
    exposed_ports: Optional[Tuple[str, ...]] = None  # normalized "8080/tcp"
    volumes: Optional[Tuple[str, ...]] = None
    stop_signal: Optional[str] = None

    @classmethod
    def from_json(cls, raw: object) -> "ImageSettings":
        """From the assemble spec's `settings`, validated with the same checks as the fields."""
        if not isinstance(raw, dict):
            raise OciBuildError(f'settings {raw!r}: must be an object, e.g. {{"cmd": ["/app"]}}')
        unknown = sorted(set(raw) - set(SETTINGS_KEYS))
        if unknown:
            raise OciBuildError(f"settings: unknown key(s) {', '.join(unknown)}; known: "
                                f"{', '.join(SETTINGS_KEYS)}")
        ports, volumes = _strings(raw, "exposed_ports"), _strings(raw, "volumes")
        return cls(
            entrypoint=_strings(raw, "entrypoint"),
            cmd=_strings(raw, "cmd"),
            env=_pairs(raw, "env", validate.validate_env_name),
            workdir=_optional(raw, "workdir",
                              lambda v: validate.validate_absolute_path("workdir", v)),
            user=_optional(raw, "user", validate.validate_user),
            labels=_pairs(raw, "labels", validate.validate_label_key),
            exposed_ports=None if ports is None else tuple(map(validate.parse_exposed_port, ports)),
            volumes=None if volumes is None else tuple(
                validate.validate_absolute_path("volume", v) for v in volumes),
            stop_signal=_optional(raw, "stop_signal", validate.validate_stop_signal),
        )


def _strings(raw: dict, key: str) -> Optional[Tuple[str, ...]]:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise OciBuildError(f'settings.{key} {value!r}: must be a list of strings, '
                            'e.g. ["/app/app.pex", "--port", "8080"]')
    return tuple(value)


def _is_pair(p: object) -> bool:
    return isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, str) for v in p)


def _pairs(raw: dict, key: str, check) -> Optional[Pairs]:
    value = raw.get(key)
    if value is None:
        return None
    # An object, or [[name, value], ...] when order matters and the JSON is key-sorted.
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        items = list(value.items())
    elif isinstance(value, list) and all(_is_pair(p) for p in value):
        items = [tuple(p) for p in value]
    else:
        raise OciBuildError(f'settings.{key} {value!r}: must be an object of strings '
                            'or a list of [name, value] pairs, e.g. {"APP_MODE": "prod"}')
    return tuple((check(k), v) for k, v in items)


def _optional(raw: dict, key: str, check) -> Optional[str]:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise OciBuildError(f"settings.{key} {value!r}: must be a string")
    return check(value)


def check_base_config(config: dict, where: str) -> None:
    """Refuse a base config whose fields we read or extend have the wrong JSON type (see the
    module doc); `where` names the base image and its config blob."""
    # Go reads a config case-insensitively: "Config" beside "config" would be merged into what
    # a runtime runs while this tool reads (and keeps, and reports) only "config".
    kind.go_spelling(config, kind.CONFIG_KEYS, where)
    for key in ("os", "architecture", "variant"):
        field(config, key, str, where)
    inner = field(config, "config", dict, where) or {}
    in_config = f"{where}, in `config`"
    kind.go_spelling(inner, kind.RUN_CONFIG_KEYS, in_config)
    for key in ("Env", "Entrypoint", "Cmd"):
        str_list(inner, key, in_config)
    str_map(inner, "Labels", in_config)
    for key in ("ExposedPorts", "Volumes"):
        field(inner, key, dict, in_config)
    for key in ("WorkingDir", "User", "StopSignal"):
        field(inner, key, str, in_config)
    rootfs = field(config, "rootfs", dict, where) or {}
    kind.go_spelling(rootfs, kind.ROOTFS_KEYS, f"{where}, in `rootfs`")
    for i, diff_id in enumerate(str_list(rootfs, "diff_ids", f"{where}, in `rootfs`") or []):
        try:
            validate_digest(diff_id)
        except OciBuildError as err:
            raise OciBuildError(f"{where}: rootfs.diff_ids[{i}]: {err}") from None
    for i, entry in enumerate(field(config, "history", list, where) or []):
        if not isinstance(entry, dict):
            raise OciBuildError(f"{where}: history[{i}] {entry!r} must be a JSON object")
        kind.go_spelling(entry, kind.HISTORY_KEYS, f"{where}, in `history[{i}]`")


def rfc3339(epoch: int) -> str:
    """`1970-01-01T00:00:00Z` for 0: UTC, whole seconds, so no time zone or clock leaks in."""
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= _MAX_EPOCH:
        raise OciBuildError(f"created epoch {epoch!r}: must be a whole number of seconds since "
                            "1970-01-01 UTC, e.g. 0 or $SOURCE_DATE_EPOCH")
    moment = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_env(base: Sequence[str], env: Pairs) -> list:
    """Base entries are kept verbatim (even a bare "NAME") unless the name is set again."""
    merged = list(base)
    names = [item.split("=", 1)[0] for item in merged]
    for name, value in env:
        if name in names:
            merged[names.index(name)] = f"{name}={value}"
        else:
            merged.append(f"{name}={value}")
            names.append(name)
    return merged


def _set_or_clear(conf: dict, key: str, value: Optional[Tuple[str, ...]]) -> None:
    if value is None:
        return
    if value:
        conf[key] = list(value)
    else:
        conf.pop(key, None)


def _apply(conf: dict, s: ImageSettings) -> None:
    _set_or_clear(conf, "Entrypoint", s.entrypoint)
    if s.entrypoint is not None and s.cmd is None:
        conf.pop("Cmd", None)
    _set_or_clear(conf, "Cmd", s.cmd)
    if s.env:
        conf["Env"] = merge_env(conf.get("Env") or [], s.env)
    for key, value in (("WorkingDir", s.workdir), ("User", s.user), ("StopSignal", s.stop_signal)):
        if value is not None:
            conf[key] = value
    if s.labels:
        conf["Labels"] = {**(conf.get("Labels") or {}), **dict(s.labels)}
    for key, values in (("ExposedPorts", s.exposed_ports), ("Volumes", s.volumes)):
        if values:
            conf[key] = {**(conf.get(key) or {}), **{v: {} for v in values}}


def with_platform(config: dict, platform: Platform) -> dict:
    """The base's variant goes too: "arm64/v8" on a base does not describe an amd64 image."""
    config = copy.deepcopy(config)
    config.pop("variant", None)
    config.update(platform.to_json())
    return config


def with_created(config: dict, created: str) -> dict:
    return {**copy.deepcopy(config), "created": created}


def with_settings(config: dict, settings: ImageSettings) -> dict:
    """The settings applied to the config's `config`, which is written even when empty."""
    config = copy.deepcopy(config)
    config["config"] = config.get("config") or {}
    _apply(config["config"], settings)
    return config


def with_layers(config: dict, diff_ids: Sequence[str], *, created: str,
                created_by: Sequence[Optional[str]]) -> dict:
    """New layers' diff_ids and one history entry each, after the base's. `rootfs` is always
    written (the OCI image spec requires it), and `history` too, even when empty."""
    config = copy.deepcopy(config)
    rootfs = config.get("rootfs") or {}
    config["rootfs"] = {"type": "layers",
                        "diff_ids": [*(rootfs.get("diff_ids") or []), *diff_ids]}
    config["history"] = [*(config.get("history") or []),
                         *({"created": created, **({"created_by": by} if by is not None else {})}
                           for by in created_by)]
    return config
