"""RUN --mount: what BuildKit users write, parsed and made into host files and directories
the step sees at their targets, for that step only (ocibuild.rootfs mounts them and removes
the mount points it made, so the layer never holds a mount nor its mount point).

* type=bind (the default): `source` (default /) of `from` (a stage, an image, or the build
  context when unset), read-only unless `rw`; a copy, made for the step and thrown away after,
  so a write (`rw`, or proot which cannot make a binding read-only) changes nothing else;
* type=cache: a directory kept across builds under the run cache directory, by `id` (default:
  the target); `sharing=shared` (default) lets steps use it at once, `locked` makes them wait
  their turn, `private` gives a step a fresh directory while another holds it; `mode`, `uid`,
  `gid` (0755, 0, 0) are the new directory's; `source` (default /) of `from` seeds a new one;
* type=tmpfs: an empty directory, thrown away after the step (`size` is not enforced);
* type=secret: the `--secret id=...` the build was given, as a file at `target` (default
  /run/secrets/ID), `mode` 0400, `uid`/`gid` 0; a missing secret is an error with
  `required`, else the mount is left out (as BuildKit). Its content is read when the step
  runs: it is in no layer, no history entry, no build result and no cache key.
* type=ssh is refused: no agent is forwarded into steps here.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import os
import posixpath
import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ocibuild.dockerfile.fstree import DIR, FILE, SYMLINK, LayerMember, Node, Tree, normalize
from ocibuild.errors import OciBuildError
from ocibuild.rootfs.executors import Mount
from ocibuild.untrusted import shown

TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING = ("shared", "private", "locked")
MAX_SECRET = 500 * 1024  # BuildKit's limit for a secret
MAX_ID = 0xFFFFFFFE  # the largest uid/gid the kernel takes (-1 means "unchanged")
_BOOLS = ("readonly", "ro", "readwrite", "rw", "required")
_KEYS = {"type", "target", "dst", "destination", "source", "src", "from", "id", "sharing",
         "mode", "uid", "gid", "size", "env", *_BOOLS}


@dataclass(frozen=True)
class MountSpec:
    kind: str
    target: str  # absolute, in the image
    source: str = ""
    origin: str = ""  # `from=`: a stage name or index, an image, "" (the context / nothing)
    readonly: bool = False
    id: str = ""
    sharing: str = "shared"
    mode: Optional[int] = None
    uid: Optional[int] = None
    gid: Optional[int] = None
    required: bool = False


@dataclass(frozen=True)
class Secret:
    """Where a `--secret` is read from: never its content (read when a step needs it)."""

    id: str
    kind: str  # "file" or "env"
    value: str  # the path, or the variable's name


def _bool(key: str, value: Optional[str], spec: str, at: str) -> bool:
    if value is None or value.lower() == "true":
        return True
    if value.lower() == "false":
        return False
    raise OciBuildError(f"{at}: --mount={shown(spec)}: {key} is true or false, not "
                        f"{shown(value)}")


def _number(key: str, value: str, spec: str, at: str, base: int = 10) -> int:
    try:
        number = int(value, base)
    except ValueError:
        number = -1
    if number < 0:
        raise OciBuildError(f"{at}: --mount={shown(spec)}: {key}={shown(value)} is not a "
                            f"{'mode in octal' if base == 8 else 'number'}")
    if number > MAX_ID:
        raise OciBuildError(f"{at}: --mount={shown(spec)}: {key}={shown(value)} is over "
                            f"{MAX_ID}")
    return number


def parse(spec: str, workdir: str, expand: Callable[[str], str], at: str) -> MountSpec:
    """One --mount value, as BuildKit's parseMount reads it: CSV fields `key=value` (keys in
    any case, values expanded with the step's ARGs and ENV), a relative target under WORKDIR."""
    if "\0" in spec:
        raise OciBuildError(f"{at}: --mount={shown(spec)} holds a NUL character")
    try:
        fields = next(csv.reader([spec]))
    except (csv.Error, StopIteration):
        raise OciBuildError(f"{at}: --mount={shown(spec)} is not a comma-separated list of "
                            "key=value") from None
    seen: Dict[str, Optional[str]] = {}
    for item in fields:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if key not in _KEYS:
            raise OciBuildError(f"{at}: --mount={shown(spec)}: unknown key {shown(key)} "
                                f"(known: {', '.join(sorted(_KEYS))})")
        if not sep and key not in _BOOLS:
            raise OciBuildError(f"{at}: --mount={shown(spec)}: {key} needs a value: "
                                f"{key}=VALUE")
        key = {"dst": "target", "destination": "target", "src": "source", "ro": "readonly",
               "readwrite": "rw"}.get(key, key)
        seen[key] = expand(value) if sep else None
        if "\0" in (seen[key] or ""):
            raise OciBuildError(f"{at}: --mount={shown(spec)}: {key} expands to a value "
                                "holding a NUL character")
    kind = (seen.get("type") or "bind").lower()
    if kind not in TYPES:
        raise OciBuildError(f"{at}: --mount={shown(spec)}: type={shown(kind)} is not one of "
                            f"{', '.join(TYPES)}")
    if kind == "ssh":
        raise OciBuildError(f"{at}: RUN --mount=type=ssh is not supported: this builder "
                            "forwards no SSH agent into steps; fetch what needs SSH before "
                            "the build, or use a --secret")
    for key, kinds in (("mode", ("cache", "secret")), ("uid", ("cache", "secret")),
                       ("gid", ("cache", "secret")), ("required", ("secret",)),
                       ("size", ("tmpfs",)), ("sharing", ("cache",))):
        if key in seen and kind not in kinds:  # BuildKit's parseMount refuses them too
            raise OciBuildError(f"{at}: --mount={shown(spec)}: {key} is not allowed for "
                                f"type={kind} mounts")
    if kind == "secret" and seen.get("source") and seen.get("id"):
        raise OciBuildError(f"{at}: --mount={shown(spec)}: a secret takes id= or source= "
                            "(the same thing), not both")
    readonly = kind == "bind"
    if "readonly" in seen:
        readonly = _bool("readonly", seen["readonly"], spec, at)
    if "rw" in seen:
        readonly = not _bool("rw", seen["rw"], spec, at)
    ident = seen.get("id") or ""
    target = seen.get("target") or ""
    if "env" in seen:
        raise OciBuildError(f"{at}: --mount={shown(spec)}: a secret as an environment "
                            "variable (env=) is not supported: the step's environment reaches "
                            "history through ARGs of the same name; read the secret's file")
    if kind == "secret":
        if "from" in seen:
            raise OciBuildError(f"{at}: --mount={shown(spec)}: a secret mount takes no from=")
        ident = seen.pop("source", None) or ident  # BuildKit: a secret's source is its id
        if not ident and target:
            ident = posixpath.basename(target.rstrip("/"))
        if not ident:
            raise OciBuildError(f"{at}: --mount={shown(spec)}: a secret mount needs id=NAME")
        target = target or f"/run/secrets/{posixpath.basename(ident)}"
    if not target:
        raise OciBuildError(f"{at}: --mount={shown(spec)}: needs target=PATH")
    target = "/" + normalize(target if target.startswith("/") else f"{workdir}/{target}")
    if target == "/":
        raise OciBuildError(f"{at}: --mount={shown(spec)}: cannot mount over /")
    sharing = (seen.get("sharing") or "shared").lower()
    if sharing not in SHARING:
        raise OciBuildError(f"{at}: --mount={shown(spec)}: sharing={shown(sharing)} is not one "
                            f"of {', '.join(SHARING)}")
    if kind not in ("bind", "cache") and ("from" in seen or "source" in seen):
        raise OciBuildError(f"{at}: --mount={shown(spec)}: from= and source= are for bind and "
                            "cache mounts")
    mode = _number("mode", seen["mode"] or "", spec, at, 8) if "mode" in seen else None
    uid = _number("uid", seen["uid"] or "", spec, at) if "uid" in seen else None
    gid = _number("gid", seen["gid"] or "", spec, at) if "gid" in seen else None
    if mode is not None and mode > 0o7777:
        raise OciBuildError(f"{at}: --mount={shown(spec)}: mode={seen['mode']} is over 7777")
    required = _bool("required", seen["required"], spec, at) if "required" in seen else False
    return MountSpec(kind, target, seen.get("source") or "", seen.get("from") or "", readonly,
                     ident if kind != "cache" else (ident or target), sharing, mode, uid, gid,
                     required)


def parse_secret(text: str) -> Secret:
    """`--secret id=x,src=path` | `id=x,env=VAR` (buildx's spelling; `source=`, and `type=file
    |env` with `src=` too)."""
    fields = dict(item.partition("=")[::2] for item in next(csv.reader([text]), []))
    ident = fields.pop("id", "")
    kind = fields.pop("type", "")
    src = fields.pop("src", "") or fields.pop("source", "")
    env = fields.pop("env", "")
    if not ident or fields or (src and env) or kind not in ("", "file", "env"):
        raise OciBuildError(f"--secret {shown(text)}: write id=NAME,src=PATH or id=NAME,env=VAR")
    if env or kind == "env":
        return Secret(ident, "env", env or src or ident)
    if not src:
        raise OciBuildError(f"--secret {shown(text)}: say where the secret is: "
                            f"id={ident},src=PATH or id={ident},env=VAR")
    return Secret(ident, "file", src)


def _read_secret(secret: Secret, at: str) -> bytes:
    if secret.kind == "env":
        value = os.environ.get(secret.value)
        if value is None:
            raise OciBuildError(f"{at}: the secret {shown(secret.id)}: the environment "
                                f"variable {shown(secret.value)} is not set")
        data = value.encode()
    else:
        try:
            with open(secret.value, "rb") as f:
                data = f.read(MAX_SECRET + 1)
        except OSError as err:
            raise OciBuildError(f"{at}: the secret {shown(secret.id)}: cannot read "
                                f"{shown(secret.value)}: {err.strerror}") from None
    if len(data) > MAX_SECRET:
        raise OciBuildError(f"{at}: the secret {shown(secret.id)} is over {MAX_SECRET} bytes "
                            "(BuildKit's limit too)")
    return data


def _own(path: str, uid: int, gid: int) -> None:
    if os.geteuid() == 0:
        os.lchown(path, uid, gid)


def _mounted(tree: Tree, source: str, what: str, at: str) -> List[Tuple[str, Node]]:
    """The nodes a mount of `source` shows: the file, or the directory and its subtree."""
    path = tree.resolve(normalize(source))
    node = tree.get(path)
    if node is None:
        raise OciBuildError(f"{at}: --mount source {shown(source)} is not in {what}")
    if node.kind not in (DIR, FILE):
        raise OciBuildError(f"{at}: --mount source {shown(source)} in {what} is a {node.kind}, "
                            "not a file or directory")
    return [(path, node)] + ([(p, tree.get(p)) for p in tree.under(path)]
                             if node.kind == DIR else [])


def source_digest(tree: Tree, source: str, what: str, at: str) -> str:
    """What a bind mount shows, as a cache key needs it: SHA-256 over each path (from the
    mount's root), kind, mode, owner, link target and content (a context file's bytes
    hashed; a layer member named by its content-addressed layer and index)."""
    items = _mounted(tree, source, what, at)
    root = items[0][0]
    h = hashlib.sha256()
    for p, n in items:
        content = n.content
        if isinstance(content, LayerMember):
            named = f"{content.layer}#{content.index}"
        elif isinstance(content, str):
            with open(content, "rb") as f:
                named = _sha256(f)
        else:
            named = ""
        h.update(json.dumps([p[len(root):], n.kind, n.mode, n.uid, n.gid, n.link, n.size,
                             named]).encode() + b"\n")
    return "sha256:" + h.hexdigest()


def _sha256(f) -> str:
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()


def materialize(tree: Tree, source: str, dest: str, fetch: Callable[[List[LayerMember], str],
                Dict[LayerMember, str]], what: str, at: str) -> None:
    """`source` of `tree` (a directory's whole subtree, or one file) written at `dest`, with
    its modes (and owners, as root). Devices and FIFOs are left out."""
    items = _mounted(tree, source, what, at)
    path = items[0][0]
    members = [n.content for _, n in items if n.kind == FILE and isinstance(n.content, LayerMember)]
    files = fetch(members, dest + ".content") if members else {}
    root = os.geteuid() == 0
    keep = 0 if root else 0o700  # the build user can still clean up its copy
    # Without root no set-id file the build user owns is left on the host (docs/security.md),
    # even for the step's lifetime: the copy drops those bits.
    bits = 0o7777 if root else 0o1777
    dirs: List[Tuple[str, int]] = []
    for p, n in items:
        out = dest if p == path else os.path.join(dest, p[len(path):].lstrip("/"))
        if n.kind == DIR:
            os.mkdir(out, 0o700)
            dirs.append((out, (n.mode & bits) | keep))
        elif n.kind == FILE:
            content = n.content
            if isinstance(content, LayerMember):
                os.rename(files[content], out)
            elif isinstance(content, str):
                shutil.copyfile(content, out)
            else:
                open(out, "wb").close()
            os.chmod(out, (n.mode & bits) | (keep & 0o600))
        elif n.kind == SYMLINK:
            os.symlink(n.link, out)
        else:
            continue
        _own(out, n.uid, n.gid)
    for out, mode in reversed(dirs):
        os.chmod(out, mode)
    shutil.rmtree(dest + ".content", ignore_errors=True)


@dataclass
class Sources:
    """What the builder offers mounts: the tree `from=` names ("" = the context), layer
    members' bytes, the run cache directory, the secrets, the RUN mechanism."""

    tree: Callable[[str], Tuple[Tree, str]]  # from= -> (tree, what it is, for messages)
    fetch: Callable[[List[LayerMember], str], Dict[LayerMember, str]]
    cache_dir: str
    secrets: Dict[str, Secret]
    proot: bool  # proot cannot make a binding read-only: a read-only cache becomes a copy


def cache_root(given: Optional[str]) -> str:
    if given:
        return os.path.abspath(given)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ocibuild", "run-cache")


def _cache(spec: MountSpec, src: Sources, work: str, stack: ExitStack, at: str) -> str:
    os.makedirs(src.cache_dir, mode=0o700, exist_ok=True)
    key = hashlib.sha256(spec.id.encode()).hexdigest()
    path = os.path.join(src.cache_dir, key)
    lock = stack.enter_context(open(path + ".lock", "a"))
    if spec.sharing == "locked":
        fcntl.flock(lock, fcntl.LOCK_EX)
    else:
        try:
            fcntl.flock(lock, (fcntl.LOCK_SH if spec.sharing == "shared" else fcntl.LOCK_EX)
                        | fcntl.LOCK_NB)
        except BlockingIOError:
            if spec.sharing != "private":
                fcntl.flock(lock, fcntl.LOCK_SH)
            else:  # another step holds it: a fresh one of our own, as BuildKit
                path = tempfile.mkdtemp(dir=work)
                os.chmod(path, spec.mode if spec.mode is not None else 0o755)
                return path
    if not os.path.isdir(path):
        fresh = tempfile.mkdtemp(dir=src.cache_dir, prefix=key[:16] + ".new.")
        if spec.origin:  # BuildKit: a cache without from= starts empty (scratch), source or not
            os.rmdir(fresh)
            tree, what = src.tree(spec.origin)
            materialize(tree, spec.source or "/", fresh, src.fetch, what, at)
        os.chmod(fresh, spec.mode if spec.mode is not None else 0o755)
        _own(fresh, spec.uid or 0, spec.gid or 0)
        try:
            os.rename(fresh, path)
        except OSError:  # another build made it meanwhile: theirs is the cache
            shutil.rmtree(fresh, ignore_errors=True)
    if spec.readonly and src.proot:
        copy = os.path.join(tempfile.mkdtemp(dir=work), "cache")
        shutil.copytree(path, copy, symlinks=True)
        return copy
    return path


def prepare(specs: Sequence[MountSpec], src: Sources, work: str, stack: ExitStack,
            at: str) -> List[Mount]:
    """The host side of each mount, made under `work` (thrown away with it); caches locked in
    `stack` for as long as it lasts."""
    out = []
    caches: Dict[str, str] = {}  # id -> path: one cache twice in a step is one lock, not a wait
    for i, spec in enumerate(specs):
        here = os.path.join(work, str(i))
        if spec.kind == "bind":
            tree, what = src.tree(spec.origin)
            materialize(tree, spec.source or "/", here, src.fetch, what, at)
            out.append(Mount(spec.target, here, spec.readonly))
        elif spec.kind == "tmpfs":
            os.mkdir(here, 0o700)
            os.chmod(here, 0o1777)
            out.append(Mount(spec.target, here, False))
        elif spec.kind == "cache":
            if spec.id not in caches:
                caches[spec.id] = _cache(spec, src, work, stack, at)
            out.append(Mount(spec.target, caches[spec.id], spec.readonly))
        else:
            secret = src.secrets.get(spec.id)
            if secret is None:
                if spec.required:
                    raise OciBuildError(f"{at}: the secret {shown(spec.id)} is required and "
                                        f"was not given: add --secret id={spec.id},src=PATH")
                continue
            fd = os.open(here, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(_read_secret(secret, at))
            os.chmod(here, spec.mode if spec.mode is not None else 0o400)
            _own(here, spec.uid or 0, spec.gid or 0)
            out.append(Mount(spec.target, here, True))
    return out


def values(flags: Sequence[str]) -> List[str]:
    """Every `--mount=...` of a RUN (the only flag given more than once)."""
    return [raw.partition("=")[2] for raw in flags if raw.partition("=")[0].lower() == "--mount"]


def froms(flags: Sequence[str]) -> List[str]:
    """The `from=` of each --mount, unexpanded: which stages a RUN needs built first."""
    out = []
    for value in values(flags):
        for item in next(csv.reader([value]), []):
            key, _, v = item.partition("=")
            if key.strip().lower() == "from" and v:
                out.append(v)
    return out
