"""An image's repository and tags, with templates filled in: `{build_args.GIT_SHA}`, `{name}`,
`{directory}`, `{parent_directory}`, as Pants' docker backend writes them.

`[oci].build_args` lists the variables templates may use (`NAME` takes its value from the
environment of the Pants run, `NAME=value` sets it); using one that is not listed, or a
placeholder that does not exist, is an error naming the target and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from ocibuild import validate
from ocibuild.errors import OciBuildError
from pants.engine.addresses import Address
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import Target, WrappedTarget, WrappedTargetRequest

from pants_oci.subsystems.oci import OciSubsystem, Registry
from pants_oci.target_types import OciImageRepositoryField, OciImageTagsField

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")  # as in target_types.without_placeholders


class ImageNameError(Exception):
    pass


def template_values(address: Address, build_args: Mapping[str, str]) -> dict[str, str]:
    parts = [p for p in address.spec_path.split("/") if p]
    values = {
        "name": address.target_name,
        "directory": parts[-1] if parts else "",
        "parent_directory": parts[-2] if len(parts) > 1 else "",
    }
    values.update({f"build_args.{k}": v for k, v in build_args.items()})
    return values


def interpolate(template: str, values: Mapping[str, str], where: str) -> str:
    def fill(match: re.Match) -> str:
        key = match.group(1)
        if key not in values:
            known = ", ".join("{" + k + "}" for k in sorted(values)) or "none"
            hint = (f"; list {key.split('.', 1)[1]!r} in [oci].build_args"
                    if key.startswith("build_args.") else "")
            raise ImageNameError(f"{where}: unknown placeholder {{{key}}} in {template!r}{hint} "
                                 f"(known: {known})")
        return values[key]

    return _PLACEHOLDER.sub(fill, template)


@dataclass(frozen=True)
class ImageNamesRequest:
    address: Address


@dataclass(frozen=True)
class ImageNames:
    repository: str
    tags: tuple[str, ...]
    # What templates could use, for per-registry `repository` and `extra_image_tags`.
    values: tuple[tuple[str, str], ...] = ()

    def for_registry(self, registry: Registry, where: str) -> ImageNames:
        """The repository and tags in one `[oci].registries` entry: its `repository` template
        (which may use `{default_repository}`) and its `extra_image_tags` added."""
        values = {**dict(self.values), "default_repository": self.repository}
        repository = self.repository
        if registry.repository:
            repository = interpolate(registry.repository, values, where)
            _checked(validate.validate_repository, repository, where)
        extra = tuple(
            _checked(validate.validate_tag, interpolate(t, values, where), where)
            for t in registry.extra_image_tags
        )
        tags = self.tags + tuple(t for t in extra if t not in self.tags)
        return ImageNames(repository, tags, self.values)


def _checked(validator, value: str, where: str) -> str:
    try:
        return validator(value)
    except OciBuildError as err:
        raise ImageNameError(f"{where}: {err}") from err


def build_args(oci: OciSubsystem, env: Mapping[str, str]) -> dict[str, str]:
    values = {}
    for entry in oci.build_args:
        name, sep, value = entry.partition("=")
        values[name] = value if sep else env.get(name, "")
    return values


def image_names(target: Target, values: Mapping[str, str]) -> ImageNames:
    where = f"The 'repository' field of {target.address}"
    repository = interpolate(target[OciImageRepositoryField].value_or_default(), values, where)
    _checked(validate.validate_repository, repository, where)
    where = f"The 'image_tags' field of {target.address}"
    tags = tuple(
        _checked(validate.validate_tag, interpolate(t, values, where), where)
        for t in target[OciImageTagsField].value
    )
    return ImageNames(repository, tags, tuple(sorted(values.items())))


@rule
async def resolve_image_names(request: ImageNamesRequest, oci: OciSubsystem) -> ImageNames:
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(request.address, description_of_origin="<infallible>")
    )
    names = [entry.partition("=")[0] for entry in oci.build_args]
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(names))
    return image_names(wrapped.target, template_values(request.address, build_args(oci, env)))


def rules():
    return collect_rules()
