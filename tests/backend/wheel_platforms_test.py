"""Which wheels of a PEX cannot run on an image's platform (a plain function)."""

from __future__ import annotations

import pytest
from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST

from ocibuild.platform import parse_platform
from pants_oci.util_rules.image import OciPlatformError, check_wheels_serve
from pants_oci.util_rules.layer_content import LayerContent
from pants_oci.util_rules.wheel_platforms import wheels_for_other_platforms, wheels_in

NUMPY_X86 = "numpy-2.1.0-cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
NUMPY_ARM = "numpy-2.1.0-cp313-cp313-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
CLICK = "click-8.1.7-py3-none-any.whl"
MUSL_ARM = "orjson-3.10.0-cp313-cp313-musllinux_1_2_aarch64.whl"
MAC = "pydantic_core-2.20.0-cp313-cp313-macosx_11_0_arm64.whl"


def test_wheels_are_found_in_the_deps_of_packed_and_loose_pexes() -> None:
    paths = [f"app/app.pex/.deps/{CLICK}/click/core.py", f"app/app.pex/.deps/{NUMPY_X86}",
             "app/app.pex/PEX-INFO", "srv/not-a-dep/x.whl/y", "app/other.whl"]
    assert wheels_in(paths) == {CLICK, NUMPY_X86}


@pytest.mark.parametrize("wheels, platform, wrong", [
    ([CLICK, NUMPY_X86], "linux/amd64", []),
    ([CLICK, NUMPY_X86], "linux/arm64", [NUMPY_X86]),
    ([NUMPY_X86, NUMPY_ARM], "linux/arm64", []),  # complete_platforms: both are there
    ([NUMPY_X86, NUMPY_ARM], "linux/arm/v7", [NUMPY_ARM, NUMPY_X86]),
    ([MUSL_ARM], "linux/arm64/v8", []),
    ([MAC], "linux/arm64", [MAC]),  # macOS arm64 is not Linux arm64
    ([CLICK], "linux/s390x", []),
])
def test_a_distribution_needs_one_wheel_for_the_platform(wheels, platform, wrong) -> None:
    assert wheels_for_other_platforms(wheels, parse_platform(platform)) == wrong


def test_the_error_names_the_dependency_the_wheel_the_image_and_the_platform() -> None:
    content = LayerContent(Address("app", target_name="bin"), EMPTY_DIGEST, (),
                           (f"app/bin.pex/.deps/{NUMPY_X86}/numpy/__init__.py",))
    check_wheels_serve((content,), parse_platform("linux/amd64"), "the oci_image app:image")
    with pytest.raises(OciPlatformError) as err:
        check_wheels_serve((content,), parse_platform("linux/arm64"),
                           "the oci_image app:image for linux/arm64")
    assert str(err.value) == (
        f"The dependency app:bin of the oci_image app:image for linux/arm64 holds {NUMPY_X86}, "
        "which cannot run on linux/arm64. Build it with wheels for every platform of the image "
        "(the pex_binary's `complete_platforms`), or leave linux/arm64 out of the image's "
        "`platform`/`platforms`.")


def test_an_oci_python_app_names_its_wheels_for_the_check() -> None:
    """Its image paths are /app/site-packages/numpy/..., no wheel name: the content says."""
    content = LayerContent(Address("app", target_name="app"), EMPTY_DIGEST, (),
                           ("app/site-packages/numpy/__init__.py",), "site-packages: numpy",
                           packaged=True, wheels=(NUMPY_X86,))
    check_wheels_serve((content,), parse_platform("linux/amd64"), "the oci_image app:image")
    with pytest.raises(OciPlatformError) as err:
        check_wheels_serve((content,), parse_platform("linux/arm64"), "the oci_image app:image")
    assert str(err.value) == (
        f"The dependency app:app of the oci_image app:image holds {NUMPY_X86}, which cannot "
        "run on linux/arm64. An oci_python_app installs the wheels of the machine that builds "
        "it: build the image for that machine's platform, or use a pex_binary with "
        "`complete_platforms`, or leave linux/arm64 out of the image's `platform`/`platforms`.")
