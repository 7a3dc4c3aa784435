"""Which CPUs a RUN step runs on (ocibuild.rootfs.cpus): one under proot unless asked, where
ptrace's stops are several times cheaper (docs/performance.md); the build's own elsewhere;
`--cpuset-cpus` (docker build's spelling) everywhere."""

from __future__ import annotations

import os

import pytest

from ocibuild.errors import OciBuildError
from ocibuild.rootfs import cpus
from tests.core.rootfs_base import busybox_layers
from tests.core.rootfs_run_test import _mechanism_ok, pod, work  # noqa: F401 (fixture)

ALLOWED = sorted(os.sched_getaffinity(0))
NPROC = {"argv": ["/bin/sh", "-c", "nproc > /nproc"]}


def _nproc(result: dict) -> int:
    for step in result["steps"]:
        assert step["result"]["exit_code"] == 0, result["logs"]
    with open(os.path.join(result["out"], "..", "root", "nproc")) as f:
        return int(f.read())


@pytest.mark.parametrize("where", ["pod", "root"])
def test_a_step_runs_where_it_is_asked_and_on_one_cpu_under_proot(work, where):  # noqa: F811
    result = pod(work, busybox_layers(work), [NPROC], where)
    assert "error" not in result, result["error"]
    _mechanism_ok(where, result)
    (step,) = result["steps"]
    if where == "pod":
        assert _nproc(result) == 1
        assert step["result"]["cpus"] in [str(c) for c in ALLOWED]
    else:
        assert _nproc(result) == len(ALLOWED)
        assert step["result"]["cpus"] is None

    asked = pod(work, busybox_layers(work), [{**NPROC, "cpus": ALLOWED}], where)
    assert "error" not in asked, asked["error"]
    assert _nproc(asked) == len(ALLOWED)
    assert asked["steps"][0]["result"]["cpus"] == cpus.spell(frozenset(ALLOWED))


@pytest.mark.parametrize("spec, expected", [
    ("0", {0}), ("0-0", {0}), (f"0-{ALLOWED[-1]}", set(range(ALLOWED[-1] + 1))),
    (",".join(map(str, reversed(ALLOWED))), set(ALLOWED)),
])
def test_cpu_lists_read_as_docker_spells_them(spec, expected):
    if not expected <= set(ALLOWED):
        pytest.skip("this machine's CPUs are not contiguous from 0")
    assert cpus.parse(spec) == frozenset(expected)
    assert cpus.parse(cpus.spell(frozenset(expected))) == frozenset(expected)


@pytest.mark.parametrize("spec, says", [
    ("", "not a CPU list"), ("a", "not a CPU list"), ("1-", "not a CPU list"),
    ("-1", "not a CPU list"), ("0,,1", "not a CPU list"), ("\u00b2", "not a CPU list"),
    ("\u0661", "not a CPU list"), ("3-1", "'3-1' is no CPU range"),
    ("0-99999", "'0-99999' is no CPU range"),
    ("4095", "this build may not run on CPU 4095 (it may run on "),
])
def test_a_bad_cpu_list_is_one_error_naming_the_flag(spec, says):
    with pytest.raises(OciBuildError) as err:
        cpus.parse(spec)
    assert str(err.value).startswith(f"--cpuset-cpus {spec!r}: ")
    assert says in str(err.value)


def test_spelling_folds_runs():
    assert cpus.spell(frozenset({0, 1, 2, 5, 7, 8})) == "0-2,5,7-8"
    assert cpus.spell(frozenset({3})) == "3"


def test_the_current_cpu_is_one_the_build_may_use():
    assert cpus.current() in ALLOWED
    (one,) = cpus.for_step("proot", None)
    assert one in ALLOWED
    assert cpus.for_step("root", None) is None
    assert cpus.for_step("userns", frozenset({ALLOWED[0]})) == frozenset({ALLOWED[0]})
