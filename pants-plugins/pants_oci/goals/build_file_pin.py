"""Rewrite one `oci_pull(...)`'s `digest` in a BUILD file's text, touching nothing else."""

from __future__ import annotations

import ast


class PinError(Exception):
    pass


def _offset(lines: list[str], lineno: int, col: int) -> int:
    """ast positions are (1-based line, UTF-8 byte column): a character offset into the text."""
    line = lines[lineno - 1]
    return sum(len(l) for l in lines[: lineno - 1]) + len(line.encode()[:col].decode())


def _constant(node: ast.keyword | None) -> object:
    return node.value.value if node is not None and isinstance(node.value, ast.Constant) else None


def pin_digest(source: str, target_name: str, directory_name: str, digest: str,
               where: str) -> str:
    """`source` with the `oci_pull` named `target_name` pinned to `digest`.

    An existing `digest=` string is replaced in place; otherwise `digest="..."` is inserted
    right after the `image=` argument. Comments and formatting elsewhere are kept.
    """
    tree = ast.parse(source, filename=where)
    lines = source.splitlines(keepends=True)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "oci_pull"):
            continue
        keywords = {k.arg: k for k in node.keywords}
        name = _constant(keywords.get("name")) or directory_name
        if name != target_name:
            continue
        current = keywords.get("digest")
        if current is not None:
            if not isinstance(current.value, ast.Constant):
                raise PinError(f"{where}: the `digest` of the oci_pull {name!r} is not a plain "
                               "string; edit it by hand")
            value = current.value
            start = _offset(lines, value.lineno, value.col_offset)
            end = _offset(lines, value.end_lineno, value.end_col_offset)  # type: ignore[arg-type]
            return source[:start] + f'"{digest}"' + source[end:]
        image = keywords.get("image")
        if image is None:
            raise PinError(f"{where}: the oci_pull {name!r} has no `image` argument")
        end = _offset(lines, image.value.end_lineno, image.value.end_col_offset)  # type: ignore[arg-type]
        return source[:end] + f', digest="{digest}"' + source[end:]
    raise PinError(f"{where}: no oci_pull(name={target_name!r}) call found to pin")
