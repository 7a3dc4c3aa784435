"""ocibuild.untrusted: hostile bytes become one clear OciBuildError, never a traceback."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ocibuild.errors import OciBuildError
from ocibuild.untrusted import (MAX_DEPTH, field, load_json, load_json_file, read_bounded,
                                read_file, str_list, str_map)


def error(call, *args, **kwargs) -> str:
    with pytest.raises(OciBuildError) as err:
        call(*args, **kwargs)
    return str(err.value)


def test_nesting_up_to_the_limit_loads_and_deeper_is_refused() -> None:
    ok = "[" * (MAX_DEPTH - 1) + "{}" + "]" * (MAX_DEPTH - 1)
    assert load_json(ok, "doc", expect=list)
    # Deep enough that json.loads itself would raise RecursionError.
    deep = "[" * 100_000 + "]" * 100_000
    assert error(load_json, deep, "doc", expect=list) == (
        f"doc nests deeper than {MAX_DEPTH} levels: not a document this tool reads")
    assert error(load_json, '{"a":' * 100 + "1" + "}" * 100, "doc") == (
        f"doc nests deeper than {MAX_DEPTH} levels: not a document this tool reads")


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = '{"s": "' + "[{" * 1000 + '\\"]"}'
    assert load_json(text, "doc") == {"s": "[{" * 1000 + '"]'}


def test_not_utf8_not_json_and_the_wrong_top_type() -> None:
    assert error(load_json, b'{"a": "\xff"}', "doc") == "doc is not UTF-8 text, so not JSON"
    assert error(load_json, b"{", "doc") == (
        "doc is not valid JSON: Expecting property name enclosed in double quotes: line 1 "
        "column 2 (char 1)")
    assert error(load_json, b"[1]", "doc") == "doc must be a JSON object, not array"
    assert error(load_json, b"null", "doc") == "doc must be a JSON object, not null"
    assert error(load_json, b'"x"', "doc", expect=list) == "doc must be a JSON array, not string"


def test_size_limits() -> None:
    assert load_json(b"{}", "doc", max_bytes=2) == {}
    assert error(load_json, b"{ }", "doc", max_bytes=2) == (
        "doc is over 2 bytes; refusing to parse it")
    assert read_bounded(io.BytesIO(b"abc"), 3, "f") == b"abc"
    assert error(read_bounded, io.BytesIO(b"abcd"), 3, "f") == (
        "f is over 3 bytes; refusing to read it")


def test_field_types_and_bool_is_not_int() -> None:
    doc = {"n": 1, "b": True, "s": "x", "null": None}
    assert field(doc, "n", int, "doc") == 1
    assert field(doc, "b", bool, "doc") is True
    assert error(field, doc, "b", int, "doc") == (
        "doc: `b` must be a JSON integer, not boolean (True)")
    assert error(field, doc, "s", (int, list), "doc") == (
        "doc: `s` must be a JSON integer or array, not string ('x')")
    assert field(doc, "null", str, "doc", default="d") == "d"
    assert field(doc, "absent", str, "doc") is None
    assert error(field, doc, "absent", str, "doc", required=True) == "doc: `absent` is missing"


def test_long_values_are_cut_in_messages() -> None:
    message = error(field, {"k": "x" * 1000}, "k", int, "doc")
    assert message == f"doc: `k` must be a JSON integer, not string ('{'x' * 76}...)"


def test_str_list_and_str_map() -> None:
    assert str_list({"l": ["a", "b"]}, "l", "doc") == ["a", "b"]
    assert str_list({}, "l", "doc") is None
    assert error(str_list, {"l": "PATH=/bin"}, "l", "doc") == (
        "doc: `l` must be a JSON array, not string ('PATH=/bin')")
    assert error(str_list, {"l": ["a", 1]}, "l", "doc") == (
        "doc: `l` must be a list of strings, not ['a', 1]")
    assert str_map({"m": {"a": "b"}}, "m", "doc") == {"a": "b"}
    assert error(str_map, {"m": ["a"]}, "m", "doc") == (
        "doc: `m` must be a JSON object, not array (['a'])")
    assert error(str_map, {"m": {"a": 1}}, "m", "doc") == (
        "doc: `m` must map names to strings, not {'a': 1}")


def test_read_file_names_the_file_and_the_reason(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_bytes(b'{"a": 1}')
    assert load_json_file(str(tmp_path / "spec.json"), "the spec", 100) == {"a": 1}
    assert error(read_file, str(tmp_path / "spec.json"), "the spec", 3) == (
        f"the spec {str(tmp_path / 'spec.json')!r} is over 3 bytes; refusing to read it")
    assert error(read_file, str(tmp_path / "none.json"), "the spec", 100) == (
        f"cannot read the spec {str(tmp_path / 'none.json')!r}: No such file or directory")
    assert error(read_file, str(tmp_path), "the spec", 100) == (
        f"cannot read the spec {str(tmp_path)!r}: Is a directory")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe")
    assert error(load_json_file, str(tmp_path / "bin.json"), "the spec", 100) == (
        f"the spec {str(tmp_path / 'bin.json')!r} is not UTF-8 text, so not JSON")


def test_load_json_refuses_nan_and_infinity_anywhere() -> None:
    from ocibuild.untrusted import load_json

    assert load_json(b'{"a": [1.5, {"b": -2e3}]}', "doc") == {"a": [1.5, {"b": -2e3}]}
    assert error(load_json, b'{"a": [1, {"b": NaN}]}', "doc") == (
        "doc is not valid JSON: NaN is not a JSON number")
    assert error(load_json, b'[Infinity]', "doc", expect=list) == (
        "doc is not valid JSON: Infinity is not a JSON number")
    assert error(load_json, b'{"x": -1e999}', "doc") == (
        "doc is not valid JSON: -1e999 is not a JSON number")


def test_local_path_refuses_what_no_file_system_takes() -> None:
    from ocibuild.untrusted import local_path

    assert local_path("dist/app.pex", "spec source") == "dist/app.pex"
    assert error(local_path, "in\0x", "spec source") == (
        "spec source: path 'in\\x00x' holds a NUL character")
    assert error(local_path, "\ud800", "spec source") == (
        "spec source: path '\\ud800' cannot be a file name here (not encodable)")
    assert error(local_path, "", "spec source") == (
        "spec source: '' must be a path, e.g. \"dist/app.pex\"")
