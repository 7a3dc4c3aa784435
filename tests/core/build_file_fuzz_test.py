"""The YAML image-file reader on generated and mutated files: a request, or one clear
`OciBuildError` naming the file and line; never another exception, never a path outside."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocibuild.build_file import load_image_file
from ocibuild.errors import OciBuildError

from .conftest import SOURCE_ROOT

EXAMPLE = (Path(SOURCE_ROOT).parent.parent / "examples/cli/image.yaml").read_text()
KEYS = ("base", "contents", "source", "destination", "entrypoint", "command", "cmd",
        "environment", "work-dir", "accounts", "run-as", "annotations", "labels", "archs",
        "tags")
SCALARS = (st.none() | st.booleans() | st.integers(-5, 2**40)
           | st.sampled_from(["scratch", "oci:base", "site", "../x", "/etc", "amd64",
                              "aarch64", "latest", "&a x", "*a", "!!python/object:os.system"])
           | st.text(max_size=10))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner,
                                        max_size=4), max_leaves=12)
FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def _load(text: str) -> None:
    with tempfile.TemporaryDirectory(prefix="ocibuild-yaml-") as root:
        (Path(root) / "site").mkdir()
        (Path(root) / "site/index.html").write_text("hi\n")
        path = Path(root) / "image.yaml"
        path.write_text(text)
        try:
            image = load_image_file(str(path))
        except OciBuildError as err:
            assert str(err).startswith(str(path)), err  # the file (and line) first
            assert "\n" not in str(err)
            return
        inside = str(Path(root).resolve()) + "/"
        assert all(str(Path(layer.source).resolve()).startswith(inside) for layer in image.layers)


@FUZZ
@given(doc=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8))
def test_generated_files(doc) -> None:
    _load(yaml.safe_dump(doc, default_flow_style=False))


@FUZZ
@given(cut=st.integers(0, len(EXAMPLE)), insert=st.text(max_size=8))
def test_mutated_example(cut: int, insert: str) -> None:
    _load(EXAMPLE[:cut] + insert + EXAMPLE[cut:])
