"""An image described in a YAML file (`ocibuild build -f image.yaml`), read as untrusted input
into the same `BuildRequest` the flags build; flags given beside it then override or extend it.

The file is read as YAML nodes (`yaml.compose`), never constructed into Python objects, so each
error names the key and its line, no tag runs code, and a scalar is the text as written (`1.0`,
`on` and `8080` stay that text). What makes a document ambiguous or big is refused before it is
composed: anchors and aliases (a few lines can expand to gigabytes), several documents, deep
nesting, non-string and duplicate keys. Every path in the file stays inside its directory.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Tuple

import yaml

from ocibuild.accounts import Group, User
from ocibuild.errors import OciBuildError
from ocibuild.platform import parse_platform
from ocibuild.protocol.assemble import Pairs, Settings
from ocibuild.protocol.build import BuildRequest, DebianContents, DebianSource
from ocibuild.protocol.layer import LayerMapping
from ocibuild.untrusted import read_file
from ocibuild.validate import validate_tag

MAX_FILE = 256 * 1024  # an image file is a screenful; anything near this is not one
MAX_DEPTH = 8  # the schema nests 3 deep; deeper is a mistake or an attack on the composer
YAML_TAG = "tag:yaml.org,2002:"
# apko's arch names (and the kernel's) -> OCI's; others are taken as OCI names.
ARCHS = {"x86_64": "amd64", "aarch64": "arm64", "armv7": "arm/v7", "armv6": "arm/v6",
         "i386": "386", "x86": "386"}
STR, MAP, SEQ = "a string", "a mapping", "a list"
# Scalars are read as the text written; these tags only say how YAML would have read it. Any
# other tag (!!binary, !!python/..., !custom) is refused.
SCALAR_TAGS = {"str": "string", "int": "number", "float": "number", "bool": "boolean",
               "timestamp": "date", "null": "null"}


@dataclass(frozen=True)
class ImageFile:
    """What the file says: the parts of a `BuildRequest` an image file can set."""

    base: Optional[str]
    layers: Tuple[LayerMapping, ...]
    debian: Optional[DebianContents]
    settings: Settings
    annotations: Pairs
    platforms: Tuple[str, ...]
    tags: Tuple[str, ...]
    users: Tuple[User, ...] = ()
    groups: Tuple[Group, ...] = ()


class _Reader:
    """Node checks that name the file, the line and the key."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.dir = os.path.realpath(os.path.dirname(os.path.abspath(path)))

    def error(self, node_or_mark, message: str) -> OciBuildError:
        mark = getattr(node_or_mark, "start_mark", node_or_mark)
        # Keys and values of the file are quoted into messages: a control character in one
        # must not reach the terminal (or split the one-line error).
        visible = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
        return OciBuildError(f"{self.path}:{mark.line + 1}: {visible}")

    def scalar(self, node: yaml.Node, key: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, f"`{key}` must be {STR}, not {_kind(node)}")
        if node.tag == YAML_TAG + "null":
            raise self.error(node, f"`{key}` is empty; give {STR} or remove the key")
        if not node.tag.startswith(YAML_TAG) or node.tag[len(YAML_TAG):] not in SCALAR_TAGS:
            raise self.error(node, f"`{key}`: the tag {node.tag!r} is not supported; "
                             "write plain text")
        return node.value

    def mapping(self, node: yaml.Node, key: str, what: str = MAP
                ) -> List[Tuple[yaml.ScalarNode, yaml.Node]]:
        """The (key node, value node) pairs of a mapping whose keys are distinct strings."""
        if not isinstance(node, yaml.MappingNode):
            if not key:
                raise self.error(node, "an image file is a mapping (`base: ...`, `paths: "
                                 f"...`), not {_kind(node)}")
            raise self.error(node, f"`{key}` must be {what}, not {_kind(node)}")
        seen = set()
        for k, _ in node.value:
            if not isinstance(k, yaml.ScalarNode) or k.tag != YAML_TAG + "str":
                where = f"`{key}`: " if key else ""
                raise self.error(k, f"{where}a key must be a string, not {_kind(k)}; quote it")
            if k.value in seen:
                raise self.error(k, f"`{_join(key, k.value)}` is given twice")
            seen.add(k.value)
        return list(node.value)

    def strings(self, node: yaml.Node, key: str) -> Pairs:
        what = "a mapping of strings"
        pairs = self.mapping(node, key, what)
        for k, v in pairs:
            if not isinstance(v, yaml.ScalarNode):
                raise self.error(v, f"`{key}` must be {what}, not a mapping with "
                                 f"{_kind(v)} at `{k.value}`")
        return tuple((k.value, self.scalar(v, f"{key}.{k.value}")) for k, v in pairs)

    def sequence(self, node: yaml.Node, key: str) -> List[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"`{key}` must be {SEQ}, not {_kind(node)}")
        return list(node.value)

    def keys(self, node: yaml.Node, key: str, known: Dict[str, Callable]) -> Dict[str, object]:
        """A mapping whose keys are `known`, each read by its function."""
        out = {}
        for k, v in self.mapping(node, key):
            if k.value not in known:
                raise self.error(k, f"unknown key `{_join(key, k.value)}`; the keys here are "
                                 + ", ".join(f"`{n}`" for n in known))
            out[k.value] = known[k.value](v, _join(key, k.value))
        return out

    def words(self, node: yaml.Node, key: str) -> Tuple[str, ...]:
        """A command: a string split as a shell would (apko's form), or a list of words."""
        if isinstance(node, yaml.SequenceNode):
            return tuple(self.scalar(n, f"{key}[{i}]") for i, n in enumerate(node.value))
        text = self.scalar(node, key)
        try:
            return tuple(shlex.split(text))
        except ValueError as err:
            raise self.error(node, f"`{key}`: {text!r} does not split into words: {err}")

    def inside(self, node: yaml.Node, key: str, path: str, *, exists: bool = True) -> str:
        """`path` relative to the file's directory, which it must not leave (untrusted);
        `exists`: it must exist (else only its directory must be inside)."""
        if os.path.isabs(path) or ".." in path.replace("\\", "/").split("/") or "\0" in path:
            raise self.error(node, f"`{key}`: {path!r} must be a relative path inside "
                             f"{self.dir!r} (the file's directory), without '..'")
        full = os.path.join(self.dir, path)
        real = os.path.realpath(full)
        if real != self.dir and not real.startswith(self.dir + os.sep):
            raise self.error(node, f"`{key}`: {path!r} leads outside {self.dir!r} "
                             "(through a symlink); copy what it needs inside")
        if exists and not os.path.lexists(full):
            raise self.error(node, f"`{key}`: {path!r} does not exist in {self.dir!r}")
        return full

    def base(self, node: yaml.Node, key: str) -> str:
        value = self.scalar(node, key)
        if value.startswith("oci:"):
            path, sep, ref = value[len("oci:"):].rpartition(":")
            if not sep or not path or "/" in ref:
                path, sep, ref = value[len("oci:"):], "", ""
            return "oci:" + self.inside(node, key, path) + sep + ref
        return value

    def path_entry(self, node: yaml.Node, key: str) -> LayerMapping:
        """A `paths` entry: a file or directory of the build context, and where it goes."""
        from ocibuild.layer.entries import parse_mapping

        found = self.keys(node, key, {"source": self.scalar, "path": self.scalar})
        if "source" not in found:
            raise self.error(node, f"`{key}` needs a `source` (a file or directory, relative "
                             "to this file), e.g. `source: app/`")
        source = self.inside(node, f"{key}.source", str(found["source"]))
        dest = found.get("path")
        if dest is None:
            dest = "/" if os.path.isdir(source) else "/" + os.path.basename(source.rstrip("/"))
        elif ".." in str(dest).split("/") or "\0" in str(dest):
            raise self.error(node, f"`{key}.path`: {dest!r} must be a path in the "
                             "image without '..', e.g. /app")
        parse_mapping((source, dest))
        return LayerMapping(source, str(dest))

    def max_layers(self, node: yaml.Node, key: str) -> int:
        from ocibuild.debian.grouping import check_max_layers

        text = self.scalar(node, key)
        try:
            return check_max_layers(int(text) if text.isdigit() else text, f"`{key}`")
        except OciBuildError as err:
            raise self.error(node, str(err)) from None

    def flag(self, node: yaml.Node, key: str) -> bool:
        text = self.scalar(node, key)
        if text not in ("true", "false"):
            raise self.error(node, f"`{key}` must be true or false, not {text!r}")
        return text == "true"

    def repository(self, node: yaml.Node, key: str) -> DebianSource:
        """`MIRROR SUITE` (as in sources.list), or `{mirror, suite, keyring}`."""
        if isinstance(node, yaml.ScalarNode):
            words = self.scalar(node, key).split()
            if len(words) != 2:
                raise self.error(node, f"`{key}` must be `MIRROR SUITE`, e.g. "
                                 "`http://deb.debian.org/debian trixie`, or a mapping with "
                                 "`mirror`, `suite` and optionally `keyring`")
            found: Dict[str, object] = {"mirror": words[0], "suite": words[1]}
        else:
            found = self.keys(node, key, {"mirror": self.scalar, "suite": self.scalar,
                                          "keyring": self.file})
            missing = [k for k in ("mirror", "suite") if k not in found]
            if missing:
                raise self.error(node, f"`{key}` needs {' and '.join(f'`{m}`' for m in missing)}")
        mirror = str(found["mirror"])
        if not mirror.startswith(("http://", "https://")):
            raise self.error(node, f"`{key}`: the mirror {mirror!r} must be an http:// or "
                             "https:// URL, e.g. http://deb.debian.org/debian")
        return DebianSource(suite=str(found["suite"]), mirror=mirror.rstrip("/"),
                            keyring=found.get("keyring"))  # type: ignore[arg-type]

    def file(self, node: yaml.Node, key: str) -> str:
        return self.inside(node, key, self.scalar(node, key))

    def template(self, node: yaml.Node, key: str) -> str:
        from ocibuild.debian.fallback import check_template

        value = self.scalar(node, key)
        try:
            check_template(value, f"`{key}`")
        except OciBuildError as err:
            raise self.error(node, str(err)) from None
        return value

    def accounts(self, node: yaml.Node, key: str) -> Dict[str, object]:
        """apko's `accounts`: `run-as`, and `users`/`groups` added to the base's."""
        return self.keys(node, key, {
            "run-as": self.scalar,
            "users": self.each(lambda n, k: self.checked(n, k, User, self.keys(n, k, {
                "username": self.scalar, "uid": self.id_, "gid": self.id_,
                "homedir": self.scalar, "shell": self.scalar}), ("username", "uid"))),
            "groups": self.each(lambda n, k: self.checked(n, k, Group, self.keys(n, k, {
                "groupname": self.scalar, "gid": self.id_, "members": self.each(self.scalar)}),
                ("groupname", "gid")))})

    def id_(self, node: yaml.Node, key: str) -> int:
        text = self.scalar(node, key)
        if not text.isdigit() or int(text) >= 2**31:
            raise self.error(node, f"`{key}` must be a whole number below 2^31, not {text!r}")
        return int(text)

    def checked(self, node: yaml.Node, key: str, kind, found: Dict[str, object],
                needed: Tuple[str, ...]):
        """A user or group, each of its fields checked as it will be written into /etc/passwd
        or /etc/group (no separator, no control character: no injected line)."""
        from ocibuild.accounts import check_group, check_user

        missing = [f"`{n}`" for n in needed if n not in found]
        if missing:
            raise self.error(node, f"`{key}` needs {' and '.join(missing)}")
        entry = kind(**found)
        try:
            (check_user if kind is User else check_group)(entry, key)
        except OciBuildError as err:
            raise self.error(node, str(err)) from None
        return entry

    def contents(self, node: yaml.Node, key: str) -> DebianContents:
        """Debian packages as the base (apko's `contents`, with Debian's repositories)."""
        found = self.keys(node, key, {
            "repositories": self.each(self.repository), "keyring": self.file,
            "packages": self.each(self.scalar), "components": self.each(self.scalar),
            "lockfile": lambda n, k: self.inside(n, k, self.scalar(n, k), exists=False),
            "max-layers": self.max_layers, "allow-unsigned-index": self.flag,
            "fallback-mirrors": self.each(self.template)})
        for needed, example in (("repositories", "[http://deb.debian.org/debian trixie]"),
                                ("packages", "[python3-minimal]")):
            if not found.get(needed):
                raise self.error(node, f"`{key}` needs `{needed}`, e.g. `{needed}: {example}`")
        keyring = found.get("keyring")
        sources = tuple(s if s.keyring or not keyring else replace(s, keyring=keyring)
                        for s in found["repositories"])  # type: ignore[attr-defined]
        stem = os.path.splitext(os.path.basename(self.path))[0]
        extra = {k.replace("-", "_"): v for k, v in found.items()
                 if k in ("components", "max-layers", "allow-unsigned-index", "fallback-mirrors")}
        return DebianContents(
            sources=sources, packages=found["packages"],  # type: ignore[arg-type]
            lockfile=str(found.get("lockfile") or os.path.join(self.dir, f"{stem}.lock.json")),
            **extra)  # type: ignore[arg-type]

    def platform(self, node: yaml.Node, key: str) -> str:
        arch = self.scalar(node, key)
        platform = "linux/" + ARCHS.get(arch, arch)
        try:
            parse_platform(platform)
        except OciBuildError as err:
            raise self.error(node, f"`{key}`: {err}") from None
        return platform

    def tag(self, node: yaml.Node, key: str) -> str:
        value = self.scalar(node, key)
        try:
            validate_tag(value)
        except OciBuildError as err:
            raise self.error(node, f"`{key}`: {err}") from None
        return value

    def each(self, read: Callable) -> Callable:
        return lambda node, key: tuple(read(n, f"{key}[{i}]")
                                       for i, n in enumerate(self.sequence(node, key)))


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    kind = SCALAR_TAGS.get(node.tag[len(YAML_TAG):], "tagged value") \
        if node.tag.startswith(YAML_TAG) else "tagged value"
    return f"the {kind} {node.value!r}"


def _join(key: str, sub: str) -> str:
    return f"{key}.{sub}" if key else sub


def _compose(text: str, reader: _Reader) -> yaml.Node:
    """One plain document, checked event by event before anything is built from it."""
    depth, documents = 0, 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise reader.error(event.start_mark, "anchors and aliases (&name, *name) are "
                                   "not supported; write the value out")
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise reader.error(event.start_mark, "a second YAML document (after "
                                       "`---`); an image file holds one")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise reader.error(event.start_mark, f"nested deeper than {MAX_DEPTH} "
                                       "levels; no key of an image file nests so deep")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{reader.path}:{mark.line + 1}" if mark else reader.path
        raise OciBuildError(f"{where}: invalid YAML: {err.problem or err.context}") from None
    except yaml.reader.ReaderError as err:  # a character YAML does not allow: where it is
        line = text.count("\n", 0, err.position) + 1
        raise OciBuildError(f"{reader.path}:{line}: invalid YAML: character {err.character!r} "
                            "is not allowed (control characters are not YAML text)") from None
    except yaml.YAMLError as err:
        raise OciBuildError(f"{reader.path}: invalid YAML: {' '.join(str(err).split())}"
                            ) from None
    if node is None:
        raise OciBuildError(f"{reader.path}: the file is empty; give at least `base:` and "
                            "`paths:`, or Debian packages in `contents:` (see docs/cli.md)")
    return node


def load_image_file(path: str) -> ImageFile:
    data = read_file(path, "the image file", MAX_FILE)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OciBuildError(f"{path}: not UTF-8 text; an image file is YAML in UTF-8") from None
    r = _Reader(path)
    found = r.keys(_compose(text, r), "", {
        "base": r.base,
        "contents": r.contents,
        "paths": r.each(r.path_entry),
        "entrypoint": lambda n, k: r.keys(n, k, {"command": r.words}).get("command"),
        "cmd": r.words,
        "environment": r.strings,
        "work-dir": r.scalar,
        "accounts": r.accounts,
        "annotations": r.strings,
        "labels": r.strings,
        "archs": r.each(r.platform),
        "tags": r.each(r.tag),
    })
    get = found.get
    accounts: Dict[str, object] = get("accounts") or {}  # type: ignore[assignment]
    return ImageFile(
        base=get("base"), layers=get("paths", ()),  # type: ignore[arg-type]
        debian=get("contents"),  # type: ignore[arg-type]
        settings=Settings(entrypoint=get("entrypoint"), cmd=get("cmd"),  # type: ignore[arg-type]
                          env=get("environment", ()), workdir=get("work-dir"),  # type: ignore
                          user=accounts.get("run-as"), labels=get("labels", ()),  # type: ignore
                          exposed_ports=(), volumes=()),
        annotations=get("annotations", ()), platforms=get("archs", ()),  # type: ignore
        tags=get("tags", ()),  # type: ignore[arg-type]
        users=accounts.get("users", ()), groups=accounts.get("groups", ()))  # type: ignore


def _merged(under: Optional[Pairs], over: Optional[Pairs]) -> Pairs:
    """Mappings: the file's keys in order, a flag's value replacing the file's for its key."""
    merged = dict(under or ())
    merged.update(over or ())
    return tuple(merged.items())


def with_flags(image: ImageFile, flags: BuildRequest) -> BuildRequest:
    """The file under the flags: a flag's scalar wins (base, entrypoint, cmd, workdir, user);
    list flags add to the file's lists (layers on top, env after, platforms, tags); label and
    annotation flags add keys and win on the same key. `flags.base` is already decided."""
    own, given = image.settings, flags.settings

    def pick(name: str):
        value = getattr(given, name)
        return value if value is not None else getattr(own, name)

    settings = replace(own, entrypoint=pick("entrypoint"), cmd=pick("cmd"),
                       workdir=pick("workdir"), user=pick("user"),
                       env=(*(own.env or ()), *(given.env or ())),
                       labels=_merged(own.labels, given.labels))
    return replace(flags, layers=(*image.layers, *flags.layers), settings=settings,
                   debian=image.debian, users=image.users, groups=image.groups,
                   annotations=_merged(image.annotations, flags.annotations),
                   platforms=tuple(dict.fromkeys((*image.platforms, *flags.platforms))),
                   tags=(*image.tags, *flags.tags))
