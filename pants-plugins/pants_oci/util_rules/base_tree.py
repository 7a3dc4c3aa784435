"""New layers must not replace the base's symlinks or directories (ocibuild.layer.base_tree).

On a merged-/usr base (`/bin -> usr/bin`), a dependency placed under /bin gives a layer with
a `bin/` directory entry, and unpacking it replaces the link by a directory holding only that
dependency: `/bin/sh` is gone. A file or symlink where the base has a directory deletes that
directory. Both are refused here, naming the dependency, the base and where to put it instead.
The base's tree is read once per base (a cached process); the check itself is set lookups.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from ocibuild.layer.base_tree import resolved
from ocibuild.protocol.layer import BaseTree, BaseTreeRequest
from pants.engine.addresses import Address
from pants.engine.fs import AddPrefix, Digest
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel

from pants_oci.subsystems.oci_tool import OcibuildResult, OcibuildRun
from pants_oci.util_rules.base_image import BaseImage
from pants_oci.util_rules.layer_content import LayerContent, OciDependencyError

_BASE_DIR = "base"


@dataclass(frozen=True)
class BaseTreeOf:
    base: BaseImage
    platform: str | None


@rule(desc="List the directories and symlinks of a base image", level=LogLevel.DEBUG)
async def base_tree_of(request: BaseTreeOf) -> BaseTree:
    base = request.base
    assert base.layout is not None
    inputs = await Get(Digest, AddPrefix(base.layout, _BASE_DIR))
    result = await Get(
        OcibuildResult,
        OcibuildRun(
            BaseTreeRequest(_BASE_DIR, base.ref_name, request.platform),
            inputs,
            description=f"Listing the directories and symlinks of the base {base.spec!r}",
            context=f"reading the base {base.spec!r}",
        ),
    )
    assert isinstance(result.result, BaseTree)
    return result.result


def _directories_of(content: LayerContent) -> set[str]:
    """Every directory the layer writes: those on the way to each of its files and dests."""
    found: set[str] = set()
    for path in (*content.image_paths, *(dest for _, dest in content.mappings)):
        parent = posixpath.dirname(path.strip("/"))
        while parent and parent not in found:
            found.add(parent)
            parent = posixpath.dirname(parent)
    return found


def check_base_kinds(contents: tuple[LayerContent, ...], tree: BaseTree, image: Address,
                     base: str) -> None:
    links = dict(tree.symlinks)
    directories = set(tree.directories)
    for content in contents:
        for path in sorted(_directories_of(content) & set(links)):
            target = resolved(path, links)
            raise OciDependencyError(
                f"The dependency {content.dependency} of the oci_image {image} puts files under "
                f"/{path}, but the base {base!r} has /{path} as a symlink to "
                f"{links[path]!r}: unpacking the layer would replace the link by a directory "
                f"holding only these files, and hide what the base has in {target}. Put them "
                f"under {target} instead (with `relocated_files` or an `oci_layer`'s "
                "`destination`).")
        for path in sorted(set(content.image_paths) & directories):
            raise OciDependencyError(
                f"The dependency {content.dependency} of the oci_image {image} writes the file "
                f"/{path}, but the base {base!r} has a directory there: unpacking the layer "
                f"would delete /{path} and everything the base has in it. Put the file "
                "elsewhere (with `relocated_files` or an `oci_layer`'s `destination`).")


def rules():
    return collect_rules()
