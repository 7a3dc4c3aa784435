"""Which Dockerfile parser: the PyPI `dockerfile` (BuildKit's Go parser in a wheel),
`dockerfile-parse` (pure Python) and ours (ocibuild.dockerfile.parser), measured on BuildKit's
own parser golden files and on tests/core/dockerfile_corpus (heredocs, escape directive,
comments inside continuations, JSON forms, --mount flags, directives, CRLF + BOM).

    python3 bench/dockerfile_parsers.py BUILDKIT_CHECKOUT

Run it in a venv with both PyPI packages installed. An instruction counts as right when its
keyword, flags, arguments and heredocs are BuildKit's; a file counts as right when all its
instructions are (or both refuse it). Prints the table docs/dockerfile.md shows.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, List, Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src" / "python"))

from ocibuild.dockerfile import parser as ours  # noqa: E402
from ocibuild.errors import OciBuildError  # noqa: E402


_q = ours._quote


def ours_dump(path: Path) -> Optional[List[str]]:
    try:
        return [ours.dump(n) for n in ours.parse(path.read_bytes(), str(path)).nodes]
    except OciBuildError:
        return None


def dockerfile_dump(path: Path) -> Optional[List[str]]:
    import dockerfile

    try:
        commands = dockerfile.parse_file(str(path))
    except dockerfile.GoParseError:
        return None
    out = []
    for c in commands:
        parts = [c.cmd.lower()]
        if c.flags:
            parts.append("[" + " ".join(_q(f) for f in c.flags) + "]")
        if c.cmd.upper() in ("ENV", "LABEL"):
            # The wheel drops the separator BuildKit's tree keeps: "=" unless `ENV k v`.
            legacy = len(c.value) == 2 and "=" not in c.original.split(None, 2)[1]
            for k, v in zip(c.value[::2], c.value[1::2]):
                parts += [_q(k), _q(v), _q("" if legacy else "=")]
        elif c.sub_cmd:
            parts.append("(" + " ".join([c.sub_cmd.lower(), *map(_q, c.value)]) + ")")
        else:
            parts += [_q(v) for v in c.value]
        text = "(" + " ".join(parts) + ")"
        for doc in getattr(c, "heredocs", ()):
            # The wheel does not say whether a heredoc expands; assume what the file says.
            content = doc.content
            if f"<<-{doc.name}" in c.original or f"<<-\"{doc.name}" in c.original:
                content = dockerfile.ChompHeredocContent(content) if hasattr(
                    dockerfile, "ChompHeredocContent") else "\n".join(
                    line.lstrip("\t") for line in content.split("\n"))
            content = content.replace("\\", "\\\\").replace("\n", "\\n")
            quoted = f'"{doc.name}"' in c.original or f"'{doc.name}'" in c.original
            text += f" <<{doc.name}|{'noexpand' if quoted else 'expand'}|{content}"
        out.append(text)
    return out


def dockerfile_parse_dump(path: Path) -> Optional[List[str]]:
    """dockerfile-parse gives each instruction's keyword and its arguments as one string
    (no flags, no splitting, no heredocs): compared as BuildKit's line would be with the
    arguments split by our splitter, which is the least a caller would have to add."""
    from dockerfile_parse import DockerfileParser

    try:
        parsed = DockerfileParser(fileobj=open(path, "rb"))
        structure = parsed.structure
    except Exception:  # noqa: BLE001 - measuring: any failure is a failure
        return None
    out = []
    for item in structure:
        if item["instruction"] == "COMMENT":
            continue
        line = f"{item['instruction']} {item['value']}"
        try:
            node = ours._node(line, "\\", str(path), item["startline"] + 1, item["endline"] + 1)
        except OciBuildError:
            return None
        out.append(ours.dump(node))
    return out


def _expected(result: Path) -> Optional[List[str]]:
    lines = [line for line in result.read_text().splitlines() if line.strip()]
    return None if any(line.startswith("error") for line in lines) else lines


def cases(buildkit: Optional[Path]) -> List[tuple]:
    found = []
    if buildkit is not None:
        root = buildkit / "frontend" / "dockerfile" / "parser" / "testfiles"
        for d in sorted(root.iterdir()):
            found.append((f"buildkit/{d.name}", d / "Dockerfile", d / "result"))
        negative = buildkit / "frontend" / "dockerfile" / "parser" / "testfiles-negative"
        for d in sorted(negative.iterdir()):
            found.append((f"buildkit-negative/{d.name}", d / "Dockerfile", None))
    corpus = REPO / "tests" / "core" / "dockerfile_corpus"
    for f in sorted(corpus.glob("*.Dockerfile")):
        found.append((f"corpus/{f.stem}", f, f.with_suffix(".result")))
    return found


def measure(parse: Callable[[Path], Optional[List[str]]], all_cases) -> tuple:
    wrong_files, wrong_instructions, total, failures = 0, 0, 0, []
    for name, dockerfile, result in all_cases:
        expected = _expected(result) if result is not None else None
        got = parse(dockerfile)
        total += len(expected or [])
        if got == expected:
            continue
        wrong_files += 1
        failures.append(name)
        if expected is None or got is None:
            wrong_instructions += len(expected or got or [None])
        else:
            wrong_instructions += sum(a != b for a, b in zip(got, expected)) + \
                abs(len(got) - len(expected))
    return wrong_files, wrong_instructions, total, failures


def main() -> None:
    buildkit = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    all_cases = cases(buildkit)
    print(f"{len(all_cases)} files")
    print("| parser | files wrong | instructions wrong (of expected) | failing files |")
    print("| --- | --- | --- | --- |")
    for name, fn in (("ours", ours_dump), ("dockerfile 3.4.0", dockerfile_dump),
                     ("dockerfile-parse 2.0.1", dockerfile_parse_dump)):
        files, instructions, total, failures = measure(fn, all_cases)
        print(f"| {name} | {files} | {instructions} of {total} | {', '.join(failures)} |")


if __name__ == "__main__":
    main()
