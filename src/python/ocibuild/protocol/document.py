"""Typed, versioned JSON documents: what the plugin asks a command, and what it answers.

Each request and result is a frozen dataclass deriving from `Document`. Its JSON is
`{"version": 1, "kind": "<KIND>", <field>: <value>, ...}`; `from_json` checks the version and
kind, refuses unknown keys, and checks every value against the field's declared type, so a
plugin and a core that disagree fail with one clear error naming the field, not with a
KeyError deep in a command. Supported field types: `str`, `int` (never a bool), `bool`,
`Optional[T]`, `Tuple[T, ...]`, and nested documents (`Part`s, which carry no version or
kind of their own). Values stay hashable, so a request can travel inside a Pants request.

Field metadata: `json` renames the key on the wire (`diffID`), `parse` turns the raw JSON
value into the field's value before the type check (e.g. an octal mode string into an int),
`check` validates the typed value and returns None or what is wrong, worded to follow the
key ("must be [UID, GID], e.g. [65532, 65532]"). Errors name the document and the key path:
"the layer spec 's.json': `mappings[0].mode` must be ...".
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from typing import Any, ClassVar, Dict, Tuple, Type, TypeVar

from ocibuild import canonical_json
from ocibuild.errors import OciBuildError
from ocibuild.untrusted import load_json, load_json_file

VERSION = 1
# A request lists paths and settings: a layer of 100,000 mapped files is ~15 MiB of JSON.
MAX_DOCUMENT = 64 << 20

P = TypeVar("P", bound="Part")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(t: Any) -> str:
    origin = typing.get_origin(t)
    if origin is tuple:
        return "array"
    if origin is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(t))
    if isinstance(t, type) and issubclass(t, Part):
        return "object"
    return {str: "string", int: "integer", bool: "boolean", type(None): "null"}.get(t, str(t))


def _value_kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", int: "integer", float: "number",
            bool: "boolean"}.get(type(value), type(value).__name__)


def _wrong(t: Any, value: Any, where: str) -> OciBuildError:
    return OciBuildError(f"{where} must be a JSON {_type_name(t)}, not {_value_kind(value)} "
                         f"({_short(value)})")


def _convert(t: Any, value: Any, where: str) -> Any:
    """`value` as type `t`; `where` ends with the key path in backquotes, e.g. "... `a[0].b`"."""
    origin = typing.get_origin(t)
    if origin is typing.Union:  # Optional[T]
        (inner,) = [a for a in typing.get_args(t) if a is not type(None)]
        return None if value is None else _convert(inner, value, where)
    if origin is tuple:
        args = typing.get_args(t)
        if not isinstance(value, list):
            raise _wrong(t, value, where)
        if len(args) == 2 and args[1] is Ellipsis:
            items = [(args[0], v) for v in value]
        elif len(value) != len(args):
            raise OciBuildError(f"{where} must be an array of {len(args)} items, not "
                                f"{_short(value)}")
        else:
            items = list(zip(args, value))
        return tuple(_convert(a, v, f"{where[:-1]}[{i}]`") for i, (a, v) in enumerate(items))
    if isinstance(t, type) and issubclass(t, Document):  # nested: its envelope is checked too
        return t.from_json(value, where)
    if isinstance(t, type) and issubclass(t, Part):
        return t._from_json(value, where)
    if not isinstance(value, t) or (t is not bool and isinstance(value, bool)):
        raise _wrong(t, value, where)
    return value


def _to_json(value: Any) -> Any:
    if isinstance(value, Part):
        return value.to_json()
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


class Part:
    """A typed JSON object inside a document (a layer mapping, a descriptor)."""

    @classmethod
    def _hints(cls) -> Dict[str, Any]:
        # Annotations are strings (`from __future__ import annotations`): evaluated in the
        # defining module, with `typing`'s names for those a base class uses.
        names = {**vars(typing), **vars(sys.modules[cls.__module__])}
        return typing.get_type_hints(cls, names)

    @classmethod
    def _from_json(cls: Type[P], raw: Any, where: str) -> P:
        """`where` names the document, then (inside one) the key path: "the spec 's.json'" or
        "the spec 's.json': `mappings[0]`"."""
        if not isinstance(raw, dict):
            raise OciBuildError(f"{where} must be a JSON object, not {_value_kind(raw)} "
                                f"({_short(raw)})")
        hints = cls._hints()
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        wire = {f.metadata.get("json", f.name): f for f in fields}
        unknown = sorted(set(raw) - set(wire) - cls._envelope())
        inside = where.endswith("`")
        if unknown:
            raise OciBuildError(f"{where}: unknown key(s) {', '.join(unknown)}; known: "
                                f"{', '.join(wire)}")
        values = {}
        for key, f in wire.items():
            here = f"{where[:-1]}.{key}`" if inside else f"{where}: `{key}`"
            if key not in raw or raw[key] is None:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    if typing.get_origin(hints[f.name]) is not typing.Union:
                        raise OciBuildError(f"{here} is missing")
                    values[f.name] = None
                continue
            value = raw[key]
            if "parse" in f.metadata:
                value = f.metadata["parse"](value, here)
            value = _convert(hints[f.name], value, here)
            problem = f.metadata["check"](value) if "check" in f.metadata else None
            if problem:
                raise OciBuildError(f"{here} {problem}")
            values[f.name] = value
        return cls(**values)  # type: ignore[call-arg]

    @classmethod
    def _envelope(cls) -> frozenset:
        return frozenset()

    def to_json(self) -> Dict[str, Any]:
        return {f.metadata.get("json", f.name): _to_json(getattr(self, f.name))
                for f in dataclasses.fields(self)}  # type: ignore[arg-type]


D = TypeVar("D", bound="Document")


class Document(Part):
    """A request or result: a `Part` with a version and a kind."""

    KIND: ClassVar[str]

    @classmethod
    def _envelope(cls) -> frozenset:
        return frozenset({"version", "kind"})

    @classmethod
    def from_json(cls: Type[D], raw: Any, where: str) -> D:
        if not isinstance(raw, dict):
            raise OciBuildError(f"{where} must be a JSON object, not {_value_kind(raw)} "
                                f"({_short(raw)})")
        # Hand-written requests may leave out the envelope; what the plugin writes has both.
        version = raw.get("version", VERSION)
        if version != VERSION:
            raise OciBuildError(
                f"{where} is version {_short(version)} of the ocibuild protocol; this ocibuild "
                f"reads version {VERSION}. The plugin and the core come from different "
                "releases: install them together")
        kind = raw.get("kind", cls.KIND)
        if kind != cls.KIND:
            raise OciBuildError(f"{where} is a {_short(kind)} document, not {cls.KIND!r}")
        return cls._from_json(raw, where)

    @classmethod
    def loads(cls: Type[D], data: bytes, where: str) -> D:
        return cls.from_json(load_json(data, where, max_bytes=MAX_DOCUMENT), where)

    @classmethod
    def load(cls: Type[D], path: str, what: str) -> D:
        return cls.from_json(load_json_file(path, what, MAX_DOCUMENT), f"{what} {path!r}")

    def to_json(self) -> Dict[str, Any]:
        return {"version": VERSION, "kind": self.KIND, **super().to_json()}

    def dumps(self) -> bytes:
        """Canonical bytes: the same request is the same Pants cache key on every machine."""
        return canonical_json.dumps(self.to_json())


def pairs(mapping: Dict[str, str]) -> Tuple[Tuple[str, str], ...]:
    """A mapping as sorted (key, value) pairs: hashable, and one spelling per mapping."""
    return tuple(sorted(mapping.items()))
