"""Parsing bytes we do not trust: bounded, and every failure is an `OciBuildError` naming where.

Everything fetched (registries, token servers, mirrors, archives) and every file a user hands
us goes through these before any field of it is used. Why: `json.loads` raises
`RecursionError` on deeply nested input and happily returns a list where a dict is expected;
`obj["x"]` on hostile input is a traceback. Here a bad document is one clear error.
"""

from __future__ import annotations

import json
import os
from typing import Any, BinaryIO, Dict, List, Optional, Tuple, Type, TypeVar, Union

from ocibuild.errors import OciBuildError

T = TypeVar("T")
# Real manifests, configs, indexes, token replies and docker configs nest < 10 deep.
MAX_DEPTH = 64


def _depth_ok(text: str, limit: int) -> bool:
    """Nesting of `[`/`{` outside strings stays within `limit` (checked before json recurses)."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def read_bounded(f: BinaryIO, limit: int, where: str) -> bytes:
    """At most `limit` bytes of `f`; more is an error, never a silent truncation."""
    data = f.read(limit + 1)
    if len(data) > limit:
        raise OciBuildError(f"{where} is over {limit} bytes; refusing to read it")
    return data


def load_json(data: Union[bytes, str], where: str, *, max_bytes: Optional[int] = None,
              expect: Type[T] = dict) -> T:  # type: ignore[assignment]
    """`data` as JSON of type `expect` (dict by default)."""
    if max_bytes is not None and len(data) > max_bytes:
        raise OciBuildError(f"{where} is over {max_bytes} bytes; refusing to parse it")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise OciBuildError(f"{where} is not UTF-8 text, so not JSON") from None
    if not _depth_ok(text, MAX_DEPTH):
        raise OciBuildError(f"{where} nests deeper than {MAX_DEPTH} levels: not a document "
                            "this tool reads")
    try:
        value = json.loads(text, parse_constant=_not_json, parse_float=_finite,
                           object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as err:
        raise OciBuildError(f"{where} is not valid JSON: {err}") from None
    if not isinstance(value, expect):
        raise OciBuildError(f"{where} must be a JSON {_kind(expect)}, not {_kind(type(value))}")
    return value


def _unique_keys(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    """An object whose keys are all different (after escapes: "\\u006dediaType" is mediaType).

    JSON leaves duplicate keys undefined: Python keeps the last, some readers the first, so
    `{"mediaType": A, "mediaType": B}` would be one digest read as two documents by two tools
    (the CVE-2021-41190 class). A document that does not say one thing is refused."""
    out: Dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {_short(key)} appears twice in one object; a document "
                             "whose keys repeat means different things to different readers")
        if any("\ud800" <= ch <= "\udfff" for ch in key):
            # Go reads a lone surrogate as U+FFFD: two keys distinct here would be one there.
            raise ValueError(f"the key {_short(key)} holds a lone UTF-16 surrogate, which is "
                             "not text")
        out[key] = value
    return out


def _not_json(constant: str) -> None:
    """Python's json reads NaN and Infinity; they are not JSON, no other tool writes them,
    and canonical JSON cannot write them back (a base config holding one would fail the
    build later, far from its cause)."""
    raise ValueError(f"{constant} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):  # "1e999"
        _not_json(text)
    return value


def _kind(t: type) -> str:
    return {dict: "object", list: "array", str: "string", int: "integer", float: "number",
            bool: "boolean", type(None): "null"}.get(t, t.__name__)


def field(doc: Dict[str, Any], key: str, expect: Union[type, Tuple[type, ...]], where: str,
          *, required: bool = False, default: Any = None) -> Any:
    """`doc[key]` checked to be of `expect` (bool is never taken for int). Absent or null:
    `default`, or an error when `required`."""
    value = doc.get(key)
    if value is None:
        if required:
            raise OciBuildError(f"{where}: `{key}` is missing")
        return default
    types = expect if isinstance(expect, tuple) else (expect,)
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        names = " or ".join(_kind(t) for t in types)
        raise OciBuildError(f"{where}: `{key}` must be a JSON {names}, not "
                            f"{_kind(type(value))} ({_short(value)})")
    return value


def str_list(doc: Dict[str, Any], key: str, where: str) -> Optional[List[str]]:
    """`doc[key]` as a list of strings (absent/null: None)."""
    value = field(doc, key, list, where)
    if value is not None and not all(isinstance(v, str) for v in value):
        raise OciBuildError(f"{where}: `{key}` must be a list of strings, not {_short(value)}")
    return value


def str_map(doc: Dict[str, Any], key: str, where: str) -> Optional[Dict[str, str]]:
    """`doc[key]` as an object of string values (absent/null: None)."""
    value = field(doc, key, dict, where)
    if value is not None and not all(isinstance(v, str) for v in value.values()):
        raise OciBuildError(f"{where}: `{key}` must map names to strings, not {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def shown(text: str, limit: int = 200) -> str:
    """Text from an untrusted file or server, for a message: quoted when it holds control
    characters (a terminal would act on them) and cut when long."""
    return text if text.isprintable() and len(text) <= limit else repr(text[:limit])


def os_reason(err: OSError) -> str:
    """"Permission denied", "Is a directory": the reason without errno and path noise."""
    return err.strerror or str(err)


def read_file(path: str, what: str, limit: int) -> bytes:
    """The bytes of the file `path`, at most `limit` of them. `what` names the file for errors
    ("the layer spec"), so an unreadable or oversized input is one clear error, not a traceback."""
    try:
        with open(path, "rb") as f:
            return read_bounded(f, limit, f"{what} {path!r}")
    except OSError as err:
        raise OciBuildError(f"cannot read {what} {path!r}: {os_reason(err)}") from None


def load_json_file(path: str, what: str, limit: int, *,
                   expect: Type[T] = dict) -> T:  # type: ignore[assignment]
    """`read_file` then `load_json`: a JSON file a user or a build step handed us."""
    return load_json(read_file(path, what, limit), f"{what} {path!r}", expect=expect)


def local_path(value: object, where: str) -> str:
    """`value` as a path this machine's filesystem can take: a string without NUL that the
    file system encoding can encode (JSON can spell "\\u0000" and lone surrogates)."""
    if not isinstance(value, str) or not value:
        raise OciBuildError(f"{where}: {_short(value)} must be a path, e.g. \"dist/app.pex\"")
    try:
        encoded = os.fsencode(value)
    except UnicodeEncodeError:
        raise OciBuildError(f"{where}: path {_short(value)} cannot be a file name here "
                            "(not encodable)") from None
    if b"\0" in encoded:
        raise OciBuildError(f"{where}: path {_short(value)} holds a NUL character")
    return value
