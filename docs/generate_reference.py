"""Write docs/reference.md from the targets' own help text (`./pants help-all`).

    ./pants help-all | python3 docs/generate_reference.py > docs/reference.md

The help text is the reference manual; this only lays it out. The end-to-end tests check
that the committed file matches.
"""

from __future__ import annotations

import json
import sys

TARGETS = ("oci_image", "oci_dockerfile_image", "oci_layer", "oci_python_app", "oci_pull",
           "oci_layout", "debian_packages")
SCOPES = ("oci",)
GOALS = ("oci-pin", "debian-lock")
# Fields every Pants target has; documented by Pants itself.
COMMON = {"tags", "description"}


def render(help_all: dict) -> str:
    lines = [
        "# Target reference",
        "",
        "Generated from the targets' help text by `docs/generate_reference.py`; do not edit.",
        "",
    ]
    for alias in TARGETS:
        info = help_all["name_to_target_type_info"][alias]
        lines += [f"## {alias}", "", info["description"].strip(), ""]
        for field in info["fields"]:
            if field["alias"] in COMMON:
                continue
            default = "required" if field["required"] else f"default: `{field['default']}`"
            lines += [
                f"### `{field['alias']}`",
                "",
                f"`{field['type_hint']}` ({default})",
                "",
                field["description"].strip(),
                "",
            ]
    for scope in SCOPES:
        info = help_all["scope_to_help_info"][scope]
        lines += [f"## `[{scope}]` options (pants.toml)", "", info["description"].strip(), ""]
        for option in info["basic"] + info["advanced"]:
            lines += [
                f"### `{option['config_key']}`",
                "",
                f"`{option['display_args'][0]}`, `{option['env_var']}` "
                f"(default: `{option['default']}`)",
                "",
                option["help"].strip(),
                "",
            ]
    for goal in GOALS:
        info = help_all["name_to_goal_info"][goal]
        lines += [f"## `pants {goal}`", "", info["description"].strip(), ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(json.load(sys.stdin)))
