"""What Pants says of a layer's inputs decides its bytes, through the real layer processes.

A file of 512 KiB or more is hardlinked into the layer process's sandbox from Pants' store,
mode 0555 whatever `is_executable` says (Pants 2.17, fs/store); a remote worker would write it
0644. The layer must say 0644, as the digest does. And an input named like a whiteout is
refused naming the dependency, whichever way the name is made.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from textwrap import dedent

import pytest
from pants.engine.addresses import Address
from pants.testutil.rule_runner import RuleRunner

from ocibuild.layout import OciLayout, resolve_image
from tests.backend.conftest import build, package_error

LARGE = 512 * 1024  # Pants 2.17's LARGE_FILE_SIZE_LIMIT


def _members(layout: Path) -> dict[str, tarfile.TarInfo]:
    image = resolve_image(OciLayout(layout), ref_name="latest")
    (layer,) = image.layers
    with tarfile.open(OciLayout(layout).blob_path(layer.digest), "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def test_a_large_file_has_the_mode_pants_records_not_the_sandboxs(rule_runner: RuleRunner
                                                                  ) -> None:
    rule_runner.write_files({
        "app/BUILD": 'files(name="data", sources=["big.zip", "small.txt", "run.sh", "tool"])\n'
                     'oci_image(name="image", base="scratch", dependencies=[":data"])\n',
        "app/small.txt": "small\n", "app/run.sh": "#!/bin/sh\n",
    })
    root = Path(rule_runner.build_root)
    # Unique content: no layer of an earlier run is found in the cache.
    (root / "app/big.zip").write_bytes(b"PK\x03\x04" + os.urandom(LARGE))
    (root / "app/tool").write_bytes(b"\x7fELF" + os.urandom(LARGE))
    for executable in ("app/run.sh", "app/tool"):
        os.chmod(root / executable, 0o755)
    _, dist = build(rule_runner, Address("app", target_name="image"))
    modes = {name: oct(m.mode) for name, m in _members(dist / "app/image").items()}
    assert modes == {"app": "0o755", "app/big.zip": "0o644", "app/run.sh": "0o755",
                     "app/small.txt": "0o644", "app/tool": "0o755"}


@pytest.mark.parametrize("build_file, path, name", [
    ('files(name="data", sources=["etc/.wh.passwd"])\n', "app/etc/.wh.passwd", ".wh.passwd"),
    ('files(name="raw", sources=["etc/passwd"])\n'
     'relocated_files(name="data", files_targets=[":raw"], src="app/etc", dest=".wh..wh..opq")\n',
     ".wh..wh..opq/passwd", ".wh..wh..opq"),
])
def test_a_whiteout_input_is_refused_naming_the_dependency(rule_runner: RuleRunner,
                                                           build_file: str, path: str,
                                                           name: str) -> None:
    rule_runner.write_files({
        "app/BUILD": build_file + 'oci_image(name="image", base="scratch", '
                                  'dependencies=[":data"])\n',
        "app/etc/.wh.passwd": "", "app/etc/passwd": "root:x:0:0::/root:/bin/sh\n",
    })
    assert (f"The dependency app:data of the oci_image app:image puts /{path} in the image, "
            f"and {name!r} is a whiteout name (.wh.*): unpacking the layer would delete or "
            "hide files of the base instead.") in package_error(rule_runner, "app:image")


def _merged_usr_base(rule_runner: RuleRunner) -> None:
    from tests.core.base_tree_test import layout_of, tar_of

    layout_of(Path(rule_runner.build_root, "app/base"), [tar_of([
        ("usr/", "dir", ""), ("usr/bin/", "dir", ""), ("usr/bin/sh", "file", ""),
        ("bin", "symlink", "usr/bin"), ("app/", "dir", ""), ("app/srv/", "dir", ""),
        ("app/srv/index.html", "file", "")])])


@pytest.mark.parametrize("build_file, message", [
    ('files(name="raw", sources=["tools/run.sh"])\n'
     'relocated_files(name="data", files_targets=[":raw"], src="app/tools", dest="bin")\n',
     "The dependency app:data of the oci_image app:image puts files under /bin, but the base "
     "'app:base' has /bin as a symlink to 'usr/bin': unpacking the layer would replace the link by "
     "a directory holding only these files, and hide what the base has in /usr/bin. Put them "
     "under /usr/bin instead (with `relocated_files` or an `oci_layer`'s `destination`)."),
    ('files(name="data", sources=["srv"])\n',
     "The dependency app:data of the oci_image app:image writes the file /app/srv, but the base "
     "'app:base' has a directory there: unpacking the layer would delete /app/srv and everything "
     "the base has in it. Put the file elsewhere (with `relocated_files` or an `oci_layer`'s "
     "`destination`)."),
])
def test_a_layer_never_replaces_a_base_link_or_directory(rule_runner: RuleRunner,
                                                         build_file: str, message: str) -> None:
    rule_runner.write_files({
        "app/BUILD": 'oci_layout(name="base", layout="base")\n' + build_file
        + 'oci_image(name="image", base=":base", dependencies=[":data"])\n',
        "app/tools/run.sh": "#!/bin/sh\n", "app/srv": "a file\n",
    })
    _merged_usr_base(rule_runner)
    error = package_error(rule_runner, "app:image")
    assert message in error, error


def test_files_under_the_links_target_are_fine(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({
        "app/BUILD": 'oci_layout(name="base", layout="base")\n'
                     'files(name="raw", sources=["tools/run.sh"])\n'
                     'relocated_files(name="data", files_targets=[":raw"], src="app/tools", '
                     'dest="usr/bin")\n'
                     'oci_image(name="image", base=":base", dependencies=[":data"])\n',
        "app/tools/run.sh": "#!/bin/sh\n",
    })
    _merged_usr_base(rule_runner)
    _, dist = build(rule_runner, Address("app", target_name="image"))
    image = resolve_image(OciLayout(dist / "app/image"), ref_name="latest")
    with tarfile.open(OciLayout(dist / "app/image").blob_path(image.layers[-1].digest),
                      "r:gz") as tar:
        assert tar.getnames() == ["usr", "usr/bin", "usr/bin/run.sh"]
