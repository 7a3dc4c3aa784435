"""Run a Dockerfile's stages into images: each instruction changes the stage's config and
filesystem model as `docker build` would; each COPY/ADD (and a WORKDIR that creates
directories) becomes one layer, written by the project's layer writer (sorted entries, fixed
header policy, mtimes = SOURCE_DATE_EPOCH); history is one entry per instruction, with
`empty_layer` for those that add none, `created_by` as BuildKit spells it.

Only the stages the target needs are built. What cannot be honoured is refused before the
first layer is written (ocibuild.dockerfile.instructions), with file, line and instruction.
"""

from __future__ import annotations

import copy
import os
import platform as host
import posixpath
import sys
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from ocibuild.dockerfile import add as adds
from ocibuild.dockerfile import cache as step_cache, cache_key
from ocibuild.dockerfile import config as dcfg
from ocibuild.dockerfile import context as contexts
from ocibuild.dockerfile import copy as copies
from ocibuild.dockerfile import mounts, run as runs, shell, stages as stage_graph, users
from ocibuild.dockerfile.content import Blobs
from ocibuild.dockerfile.fstree import (DIR, FILE, SYMLINK, LayerMember, Node, Tree, apply_entries,
                                       join, normalize)
from ocibuild.dockerfile.images import (SCRATCH, Ahead, Images, Pulled, Registries,
                                       scratch_config)
from ocibuild.dockerfile.instructions import boolean, check, flags, onbuild_expression, where
from ocibuild.dockerfile.parser import Dockerfile, Node as Instruction, parse
from ocibuild.errors import OciBuildError
from ocibuild.image.config import rfc3339
from ocibuild.image.layer import Layer
from ocibuild.layer.builder import build_layer
from ocibuild.layer.entries import DIR as E_DIR, FILE as E_FILE, SYMLINK as E_SYMLINK, LayerEntry
from ocibuild.platform import Platform, parse_platform
from ocibuild.rootfs.unpack_ahead import UnpackAhead
from ocibuild.untrusted import shown

PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
              "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
DEFAULT_PLATFORM = Platform("linux", "amd64")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_MACHINES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
             "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


@dataclass(frozen=True)
class Options:
    dockerfile: str
    context: str
    build_args: Tuple[Tuple[str, str], ...] = ()
    target: Optional[str] = None
    platform: Optional[str] = None
    created_epoch: int = 0
    compression: str = "gzip"
    registries: Registries = Registries()
    cache: step_cache.Settings = step_cache.Settings()  # the RUN-step layer cache
    blob_cache: Optional[str] = None  # --cache-dir: base images' blobs kept by digest
    # RUN: --secret's sources (never their content), the cache mounts' directory (None:
    # under XDG_CACHE_HOME), a step's time limit in seconds (None: none), the CPUs steps
    # run on (None: ocibuild.rootfs.cpus chooses)
    secrets: Tuple[mounts.Secret, ...] = ()
    run_cache_dir: Optional[str] = None
    run_timeout: Optional[float] = None
    run_cpus: Optional[FrozenSet[int]] = None


@dataclass
class State:
    """A stage as it is being built."""

    tree: Tree
    config: dict  # the whole image config
    layers: List[Layer]
    platform: Platform
    base: Optional[Pulled] = None
    args: Dict[str, str] = field(default_factory=dict)
    cmd_set: bool = False
    root: Optional[runs.StageRoot] = None  # the stage's tree on disk, made by its first RUN
    ahead: Optional[UnpackAhead] = None  # its base, being unpacked for that RUN

    def env(self) -> Dict[str, str]:
        """What `$X` sees: the stage's ARGs, then its ENV (ENV wins, as docker has it)."""
        return {**self.args, **dcfg.env_map(self.inner.get("Env") or [])}

    @property
    def inner(self) -> dict:
        return self.config.setdefault("config", {})


@dataclass(frozen=True)
class Built:
    config: dict
    layers: Tuple[Layer, ...]
    base: Optional[Pulled]  # the target's base image, when it is one
    layer_dirs: Tuple[str, ...]  # layouts holding the layers' blobs
    pulled: Tuple[Pulled, ...]  # every image pulled (base images, COPY --from images)
    warnings: Tuple[str, ...]
    run_steps: Tuple[dict, ...] = ()  # each RUN: where, mechanism, ownership, what was lost
    cache: Optional[dict] = None  # the layer cache's hits and misses, when it is on


def build_platform() -> Platform:
    return Platform("linux", _MACHINES.get(host.machine().lower(), host.machine().lower()))


def automatic_args(target: Platform) -> Dict[str, str]:
    build = build_platform()
    out = {}
    for prefix, p in (("TARGET", target), ("BUILD", build)):
        out[f"{prefix}PLATFORM"] = str(p)
        out[f"{prefix}OS"] = p.os
        out[f"{prefix}ARCH"] = p.architecture
        out[f"{prefix}VARIANT"] = p.variant or ""
    return out


class Builder:
    def __init__(self, options: Options, work: str) -> None:
        self.options = options
        self.work = work
        self.layers_dir = os.path.join(work, "layers")
        self.blobs = Blobs()
        self.images = Images(options.registries, self.blobs, work, options.blob_cache)
        self.cache = step_cache.LayerCache(options.cache, self.layers_dir, options.compression) \
            if options.cache.enabled else None
        self.open = self.blobs.opener(work)
        self.platform = parse_platform(options.platform) if options.platform else DEFAULT_PLATFORM
        self.build_args = dict(options.build_args)
        self.used_args: set = set()
        self.context: Optional[Tree] = None
        self.epoch = options.created_epoch
        self.created = rfc3339(options.created_epoch)
        self._count = 0
        self.run_steps: List[dict] = []
        self._started: List[UnpackAhead] = []

    # -- the whole build -------------------------------------------------------------------

    def run(self) -> Built:
        from ocibuild.untrusted import read_file
        from ocibuild.dockerfile.parser import MAX_BYTES

        contexts.own_file(self.options.dockerfile, self.options.context, "the Dockerfile ")
        df = parse(read_file(self.options.dockerfile, "the Dockerfile", MAX_BYTES + 1),
                   self.options.dockerfile)
        self.df = df
        automatic = automatic_args(self.platform)
        self.globals, global_nodes = stage_graph.global_args(df, self.build_args, automatic)
        for node in global_nodes:
            self.used_args |= {w.partition("=")[0] for w in node.args}
        all_stages = stage_graph.split(df, self.globals)
        goal = stage_graph.target(all_stages, self.options.target, df.path)
        wanted = stage_graph.needed(df, all_stages, goal, self.globals)
        for stage in wanted:  # refuse what cannot be honoured before any work
            for node in stage.instructions:
                check(df, node)
        self.stages = all_stages
        self.built: Dict[int, State] = {}
        try:
            for stage in wanted:
                self.built[stage.index] = self._stage(stage)
        finally:
            for ahead in self._started:
                ahead.cancel()  # what no step took (a hit, a failed build): stopped, removed
        state = self.built[goal.index]
        unused = sorted(set(self.build_args) - self.used_args - set(PROXY_ARGS))
        warnings = tuple([f"build arguments not used by the Dockerfile: {', '.join(unused)}"]
                         if unused else [])
        return Built(state.config, tuple(state.layers), state.base,
                     (self.layers_dir, *(p.layout for p in self.images._pulled.values())),
                     tuple(self.images._pulled.values()), warnings, tuple(self.run_steps),
                     step_cache.summary(self.run_steps) if self.cache else None)

    def _stage(self, stage: stage_graph.Stage) -> State:
        df = self.df
        platform = self.platform
        if stage.platform:
            try:
                platform = parse_platform(stage.platform)
            except OciBuildError as err:
                raise OciBuildError(f"{where(df, stage.node)}: --platform: {err}") from None
        parent = stage_graph.stage_named(self.stages, stage.base, stage.index)
        if parent is not None:
            before = self.built[parent.index]
            state = State(before.tree.copy(), copy.deepcopy(before.config), list(before.layers),
                          before.platform, before.base)
        elif stage.base.lower() == SCRATCH:
            state = State(Tree(), scratch_config(platform), [], platform)
        else:
            started: List[UnpackAhead] = []
            pulled = self.images.get(stage.base, platform, where(df, stage.node),
                                     self._ahead(stage, started))
            config = copy.deepcopy(pulled.image.config)
            config.setdefault("config", {})
            layers = [Layer(d.media_type, d.digest, d.size, diff_id)
                      for d, diff_id in zip(pulled.image.layers,
                                            (config.get("rootfs") or {}).get("diff_ids") or [])]
            state = State(pulled.tree.copy(), config, layers, platform, pulled,
                          ahead=started[0] if started else None)
            triggers = list(state.inner.pop("OnBuild", None) or [])
            self._triggers(state, triggers, stage.base)
        env = state.inner.get("Env") or []
        if "PATH" not in dcfg.env_map(env):  # docker gives every stage a PATH
            state.inner["Env"] = [*env, f"PATH={DEFAULT_PATH}"]
        for node in stage.instructions:
            self._dispatch(state, node, where(df, node))
        return state

    def _ahead(self, stage: stage_graph.Stage, started: List[UnpackAhead]) -> Optional[Ahead]:
        """For a stage with a RUN step certain to run (no layer cache, or one that never
        stored a step on this base), its base unpacked while it is modelled: the unpacking
        a cold build waits for (ocibuild.rootfs.unpack_ahead)."""
        if not any(node.keyword == "RUN" for node in stage.instructions):
            return None

        def start(digest: str, blobs: List[Tuple[str, str]]) -> None:
            if blobs and (self.cache is None or not self.cache.may_hold_steps_on(digest)):
                ahead = UnpackAhead(blobs, os.path.join(self.work, "rootfs",
                                                        f"base-{stage.index}"))
                self._started.append(ahead)
                started.append(ahead)
        return start

    def _triggers(self, state: State, triggers: List[str], image: str) -> None:
        """The base image's ONBUILD instructions run first, as docker runs them."""
        for i, text in enumerate(triggers):
            origin = f"ONBUILD trigger {i + 1} of the base image {image}"
            try:
                nodes = parse(text.encode(), origin).nodes
            except OciBuildError as err:
                raise OciBuildError(f"{origin}: {err}") from None
            for node in nodes:
                if node.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
                    raise OciBuildError(f"{origin}: {node.keyword} is not allowed in ONBUILD")
                try:
                    check(Dockerfile(origin, (node,)), node)
                except OciBuildError as err:  # the trigger is one line: no line number
                    text = str(err)
                    prefix = f"{origin}:{node.start_line}: "
                    raise OciBuildError(f"{origin}: {text[len(prefix):]}"
                                        if text.startswith(prefix) else text) from None
                self._dispatch(state, node, f"{origin}: {node.keyword}")

    # -- instructions ----------------------------------------------------------------------

    def _expand(self, state: State, text: str, at: str) -> str:
        try:
            return shell.expand(text, state.env(), self.df.escape)
        except OciBuildError as err:
            raise OciBuildError(f"{at}: {err}") from None

    def _words(self, state: State, text: str, at: str) -> List[str]:
        try:
            return shell.expand_words(text, state.env(), self.df.escape)
        except OciBuildError as err:
            raise OciBuildError(f"{at}: {err}") from None

    def _history(self, state: State, created_by: str, empty: bool) -> None:
        entry = {"created": self.created, "created_by": created_by}
        if empty:
            entry["empty_layer"] = True
        state.config.setdefault("history", []).append(entry)

    def _dispatch(self, state: State, node: Instruction, at: str) -> None:
        handler = getattr(self, "_" + node.keyword.lower())
        handler(state, node, at)

    def _env(self, state: State, node: Instruction, at: str) -> None:
        parts = []
        for key, value in node.pairs:
            key, value = self._expand(state, key, at), self._expand(state, value, at)
            if not key:
                raise OciBuildError(f"{at}: an empty variable name")
            state.inner["Env"] = dcfg.set_env(state.inner.get("Env") or [], key, value)
            parts.append(f"{key}={value}")
        self._history(state, "ENV " + " ".join(parts), True)

    def _label(self, state: State, node: Instruction, at: str) -> None:
        parts = []
        labels = dict(state.inner.get("Labels") or {})
        for key, value in node.pairs:
            key, value = self._expand(state, key, at), self._expand(state, value, at)
            labels[key] = value
            parts.append(f"{key}={value}")
        state.inner["Labels"] = labels
        self._history(state, "LABEL " + " ".join(parts), True)

    def _maintainer(self, state: State, node: Instruction, at: str) -> None:
        state.config["author"] = node.args[0]
        self._history(state, f"MAINTAINER {node.args[0]}", True)

    def _arg(self, state: State, node: Instruction, at: str) -> None:
        shown_parts = []
        for word in node.args:
            name, sep, default = word.partition("=")
            self.used_args.add(name)
            if name in self.build_args:
                value: Optional[str] = self.build_args[name]
            elif sep:
                value = self._expand(state, default, at)
            else:
                value = self.globals.get(name)
            if value is not None:
                state.args[name] = value
            shown_parts.append(name if value is None else f"{name}={value}")
        self._history(state, "ARG " + " ".join(shown_parts), True)

    def _user(self, state: State, node: Instruction, at: str) -> None:
        user = self._expand(state, node.args[0], at)
        state.inner["User"] = user
        self._history(state, f"USER {user}", True)

    def _expose(self, state: State, node: Instruction, at: str) -> None:
        words = [w for a in node.args for w in self._words(state, a, at)]
        keys = dcfg.ports(words, at)
        state.inner["ExposedPorts"] = {**(state.inner.get("ExposedPorts") or {}),
                                       **{k: {} for k in keys}}
        self._history(state, f"EXPOSE {dcfg.go_map_ports(dict.fromkeys(keys))}", True)

    def _volume(self, state: State, node: Instruction, at: str) -> None:
        volumes = [self._expand(state, a, at) for a in node.args]
        if not volumes or any(not v for v in volumes):
            raise OciBuildError(f"{at}: VOLUME cannot be an empty string")
        state.inner["Volumes"] = {**(state.inner.get("Volumes") or {}),
                                  **{v: {} for v in volumes}}
        self._history(state, f"VOLUME {dcfg.go_list(volumes)}", True)

    def _stopsignal(self, state: State, node: Instruction, at: str) -> None:
        signal = dcfg.stop_signal(self._expand(state, node.args[0], at), at)
        state.inner["StopSignal"] = signal
        self._history(state, f"STOPSIGNAL {signal}", True)

    def _command(self, state: State, node: Instruction) -> List[str]:
        if node.json:
            return list(node.args)
        return dcfg.with_shell(state.inner.get("Shell"), node.args[0] if node.args else "")

    def _cmd(self, state: State, node: Instruction, at: str) -> None:
        args = self._command(state, node)
        state.inner["Cmd"] = args
        state.cmd_set = True
        self._history(state, f"CMD {dcfg.go_quoted(args)}", True)

    def _entrypoint(self, state: State, node: Instruction, at: str) -> None:
        args = self._command(state, node)
        state.inner["Entrypoint"] = args
        if not state.cmd_set:
            state.inner.pop("Cmd", None)
        self._history(state, f"ENTRYPOINT {dcfg.go_quoted(args)}", True)

    def _shell(self, state: State, node: Instruction, at: str) -> None:
        if not node.args:
            raise OciBuildError(f"{at}: SHELL needs at least one word, e.g. "
                                '["/bin/bash", "-c"]')
        state.inner["Shell"] = list(node.args)
        self._history(state, f"SHELL {dcfg.go_list(node.args)}", True)

    def _healthcheck(self, state: State, node: Instruction, at: str) -> None:
        kind = node.args[0].upper()
        health, text = dcfg.healthcheck(kind, tuple(node.args[1:]), node.json,
                                        flags(self.df, node), at)
        state.inner["Healthcheck"] = health
        self._history(state, text, True)

    def _onbuild(self, state: State, node: Instruction, at: str) -> None:
        state.inner["OnBuild"] = [*(state.inner.get("OnBuild") or []), onbuild_expression(node)]

    def _run(self, state: State, node: Instruction, at: str) -> None:
        opts = flags(self.df, node)
        runs.check_flags(opts, at)
        runs.check_heredocs(node, at)
        cmd = runs.command(node, self._command(state, node))
        workdir = state.inner.get("WorkingDir") or "/"
        specs = tuple(mounts.parse(v, workdir, lambda t: self._expand(state, t, at), at)
                      for v in mounts.values(node.flags))
        options = runs.StepOptions(specs, opts.get("network") or "default",
                                   self.options.run_timeout, tuple(sorted(cmd.files.items())),
                                   self.options.run_cpus)
        argv = cmd.argv
        env = runs.step_env(state.args, state.inner.get("Env") or [], self.build_args,
                            PROXY_ARGS)
        self.used_args |= {k for k in PROXY_ARGS if k in self.build_args}
        text = runs.created_by(cmd.shown, state.args, env)
        inputs = self._cache_inputs(state, node, argv, specs, at)
        if inputs is not None and self._cache_hit(state, inputs, text, at):
            return
        miss = step_cache.report_miss(at, inputs)  # said before the step's own output
        self._count += 1
        state.root = runs.ensure_root(
            state.root, [self._blob_path(layer) for layer in state.layers],
            os.path.join(self.work, "rootfs", str(self._count)), state.ahead)
        state.ahead = None
        done = runs.run_step(state.root, argv, env, state.inner.get("WorkingDir") or "/",
                             state.inner.get("User") or "", self.layers_dir,
                             self.options.compression, self.epoch, at, options,
                             self._mount_sources(state, node, at) if specs else None,
                             os.path.join(self.work, "run"))
        self.run_steps.append({**runs.report(at, done.result), **miss})
        if done.layer is None:
            self._history(state, text, True)
            self._cache_store(state, inputs, None, text, done.result.mechanism, at)
            return
        blob = done.layer
        path = os.path.join(self.layers_dir, "blobs", "sha256", blob.digest.split(":", 1)[1])
        self.blobs.add(blob.digest, blob.media_type, lambda p=path: open(p, "rb"))
        self._add_layer(state, blob, text)
        apply_entries(state.tree, done.entries, blob.digest, at)  # the model sees what it made
        state.root.applied = len(state.layers)  # the tree on disk has the step already
        self._cache_store(state, inputs, state.layers[-1], text, done.result.mechanism, at)

    # -- the layer cache (ocibuild.dockerfile.cache) ---------------------------------------

    def _cache_inputs(self, state: State, node: Instruction, argv: List[str],
                      specs: Sequence[mounts.MountSpec],
                      at: str) -> Optional[cache_key.StepInputs]:
        if self.cache is None:
            return None
        opts = flags(self.df, node)
        return cache_key.step_inputs(
            [layer.diff_id or "" for layer in state.layers], state.inner, argv, opts,
            [(h.name, h.content, h.expand) for h in node.heredocs], state.args,
            str(state.platform), self.options.compression, self.epoch,
            self._run_material(state, node, specs, at))

    def _run_material(self, state: State, node: Instruction, specs: Sequence[mounts.MountSpec],
                      at: str) -> Tuple[cache_key.Material, ...]:
        """What a step's mounts bring in beyond its tree and config: a bind mount's options
        and a digest of what it mounts; a cache mount's id and sharing, not its content (as
        BuildKit: a cache must not change a step's result); a tmpfs its target. A secret
        is never material: its bytes or presence never reach a cache tag."""
        out = []
        for spec in specs:
            fields = [("readonly", str(spec.readonly)), ("mode", str(spec.mode)),
                      ("uid", str(spec.uid)), ("gid", str(spec.gid))]
            if spec.kind == "bind":
                tree, what = self._mount_tree(state, node, spec.origin, at)
                fields += [("from", spec.origin), ("source", spec.source),
                           ("source_digest", mounts.source_digest(tree, spec.source, what, at))]
            elif spec.kind == "cache":
                fields += [("id", spec.id), ("sharing", spec.sharing), ("from", spec.origin),
                           ("source", spec.source)]
            elif spec.kind != "tmpfs":
                continue
            out.append(cache_key.Material(spec.kind, spec.target, tuple(fields)))
        return tuple(out)

    def _cache_hit(self, state: State, inputs: cache_key.StepInputs, text: str,
                   at: str) -> bool:
        """The step's cached layer over the stage, verified, instead of running it. The
        stage's tree on disk is left behind: a later step that runs brings it up to date."""
        assert self.cache is not None
        hit = self.cache.lookup(inputs, at)
        if hit is None:
            return False
        if hit.layer is None:
            self._history(state, text, True)
        else:
            path = os.path.join(self.layers_dir, "blobs", "sha256", hit.layer.digest[7:])
            self.blobs.add(hit.layer.digest, hit.layer.media_type, lambda p=path: open(p, "rb"))
            tree = state.tree.copy()  # a layer that fails must leave the stage as it was
            try:
                self.blobs.apply(tree, hit.layer.digest, at, diff_id=hit.layer.diff_id)
            except OciBuildError as err:
                self.cache.refused(hit, str(err), at)
                return False
            state.tree = tree
            self._add_layer(state, hit.layer, text)
        self.cache.keep(hit, text, state.platform.to_json())
        self.run_steps.append(step_cache.report_hit(at, hit))
        return True

    def _cache_store(self, state: State, inputs: Optional[cache_key.StepInputs],
                     layer: Optional[Layer], text: str, mechanism: str, at: str) -> None:
        if self.cache is not None and inputs is not None:
            self.cache.store(inputs, layer, text, state.platform.to_json(), mechanism, at,
                             state.base.digest if state.base else None)

    def _mount_tree(self, state: State, node: Instruction, origin: str,
                    at: str) -> Tuple[Tree, str]:
        """The tree a mount's `from=` names (the context when empty), and what it is."""
        if not origin:
            if self.context is None:
                self.context = contexts.load(self.options.context, self.options.dockerfile)
            return self.context, "the build context"
        stage = stage_graph.stage_named(self.stages, origin, self._index_of(node))
        if stage is not None:
            return self.built[stage.index].tree, f"the stage {shown(origin)}"
        if origin.lower() == SCRATCH:
            return Tree(), "scratch"
        return self.images.get(origin, state.platform, at).tree, f"the image {shown(origin)}"

    def _mount_sources(self, state: State, node: Instruction, at: str) -> mounts.Sources:
        from ocibuild.rootfs.select import choose

        return mounts.Sources(lambda origin: self._mount_tree(state, node, origin, at),
                              self.blobs.materialize,
                              mounts.cache_root(self.options.run_cache_dir),
                              {s.id: s for s in self.options.secrets}, choose() == "proot")

    def _blob_path(self, layer: Layer) -> Tuple[str, str]:
        name = layer.digest.split(":", 1)[1]
        for directory in (self.layers_dir, *(p.layout for p in self.images._pulled.values())):
            path = os.path.join(directory, "blobs", "sha256", name)
            if os.path.isfile(path):
                return path, layer.media_type
        raise OciBuildError(f"the layer {layer.digest} is in no image of this build")

    def _workdir(self, state: State, node: Instruction, at: str) -> None:
        path = self._expand(state, node.args[0], at)
        current = state.inner.get("WorkingDir") or "/"
        workdir = "/" + join(current, path)
        state.inner["WorkingDir"] = workdir
        owner = (0, 0)
        if state.inner.get("User"):
            owner = users.resolve(state.inner["User"], state.tree, self.open, at)
        real = state.tree.resolve(workdir)
        writes: List[copies.Write] = []
        parts = real.split("/") if real else []
        for i in range(1, len(parts) + 1):
            here = "/".join(parts[:i])
            existing = state.tree.get(here)
            if existing is None:
                writes.append((here, Node(DIR, 0o755, *owner)))
            elif existing.kind != DIR:
                raise OciBuildError(f"{at}: /{here} is a {existing.kind} in the image, not a "
                                    "directory")
        if writes:
            self._layer(state, writes, f"WORKDIR {workdir}", at)
        else:
            self._history(state, f"WORKDIR {workdir}", True)

    def _copy(self, state: State, node: Instruction, at: str) -> None:
        self._copy_or_add(state, node, at, add=False)

    def _add(self, state: State, node: Instruction, at: str) -> None:
        self._copy_or_add(state, node, at, add=True)

    # -- COPY and ADD ----------------------------------------------------------------------

    def _source(self, state: State, node: Instruction, at: str) -> Tuple[Tree, bool]:
        """The tree COPY reads from, and whether its owners are kept (another stage/image)."""
        source = stage_graph.copy_from(self.df, node, self.globals) if node.keyword == "COPY" \
            else None
        if source is None:
            if self.context is None:
                self.context = contexts.load(self.options.context, self.options.dockerfile)
            return self.context, False
        stage = stage_graph.stage_named(self.stages, source, self._index_of(node))
        if stage is not None:
            return self.built[stage.index].tree, True
        if source.lower() == SCRATCH:
            return Tree(), True
        return self.images.get(source, state.platform, at).tree, True

    def _index_of(self, node: Instruction) -> int:
        for stage in self.stages:
            if node in stage.instructions:
                return stage.index
        return len(self.stages)

    def _copy_or_add(self, state: State, node: Instruction, at: str, add: bool) -> None:
        opts = flags(self.df, node)
        expand = (lambda v: self._expand(state, v, at))
        raw_sources, raw_dest = node.args[:-1], node.args[-1]
        dest = expand(raw_dest)
        chown = expand(opts["chown"]) if opts.get("chown") else None
        chmod = expand(opts["chmod"]) if opts.get("chmod") else None
        owner = users.resolve(chown, state.tree, self.open, at) if chown else None
        mode = _mode(chmod, at) if chmod else None
        if "link" in opts:
            boolean(opts["link"])  # accepted: the layer is the same either way here
        heredocs = {h.name: h for h in node.heredocs}
        sources, shown_sources, trees = [], [], []
        source_tree, keep = (None, False)
        for raw in raw_sources:
            if raw.startswith("<<") and raw[2:].lstrip("-").strip("'\"") in heredocs:
                doc = heredocs[raw[2:].lstrip("-").strip("'\"")]
                trees.append(self._heredoc_tree(state, doc, at))
                sources.append((len(trees) - 1, doc.name))
                shown_sources.append("<<" + doc.name)
                continue
            value = expand(raw)
            shown_sources.append(value)
            if add and adds.is_url(value):
                trees.append(self._url_tree(state, value, opts.get("checksum"), dest, at))
                sources.append((len(trees) - 1, trees[-1].nodes[""].origin.rpartition(" ")[2]))
                continue
            if add and adds.is_git(value):
                raise OciBuildError(f"{at}: ADD of a git repository ({shown(value)}) is not "
                                    "supported; clone it beforehand and COPY it")
            if source_tree is None:
                source_tree, keep = self._source(state, node, at)
            if add:
                archive = self._archive(source_tree, value, at)
                if archive is not None:
                    trees.append(archive)
                    sources.append((len(trees) - 1, "/"))
                    continue
            sources.append((-1, value))
        if opts.get("checksum") and not (add and all(adds.is_url(s) for s in shown_sources)):
            raise OciBuildError(f"{at}: --checksum is only for ADD of a URL")
        writes = self._plan(state, sources, trees, source_tree, keep, dest, owner, mode, at,
                            several=len(raw_sources) > 1)
        words = [node.keyword] + ([f"--chown={chown}"] if chown else []) + \
            ([f"--chmod={chmod}"] if chmod else []) + shown_sources + [dest]
        self._layer(state, writes, " ".join(words), at)

    def _plan(self, state: State, sources, trees, source_tree, keep, dest, owner, mode, at,
              several: bool) -> List[copies.Write]:
        if several and not dest.endswith("/"):
            raise OciBuildError(f"{at}: with more than one source the destination must be a "
                                f"directory ending in /: write {shown(dest)}/")
        workdir = state.inner.get("WorkingDir") or "/"
        view = state.tree.copy()
        writes: Dict[str, Node] = {}
        for index, path in sources:
            tree = trees[index] if index >= 0 else source_tree
            is_archive = index >= 0 and path == "/"
            spec = copies.CopySpec((path,), (dest.rstrip("/") + "/") if is_archive or several
                                   else dest, workdir, owner, mode,
                                   keep_owner=keep or is_archive, where=at)
            done = copies.plan(spec, tree, view)
            copies.apply(view, done)
            writes.update(done)
        return sorted(writes.items(), key=lambda w: w[0].split("/"))

    def _heredoc_tree(self, state: State, doc, at: str) -> Tree:
        text = doc.content
        if doc.expand:
            try:
                text = shell.expand_heredoc(text, state.env())
            except OciBuildError as err:
                raise OciBuildError(f"{at}: {err}") from None
        path = self._work_file()
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        tree = Tree({"": Node(DIR, origin="a heredoc")})
        tree.put(doc.name, Node(FILE, 0o644, size=os.path.getsize(path), content=path))
        return tree

    def _url_tree(self, state: State, url: str, checksum: Optional[str], dest: str,
                  at: str) -> Tree:
        digest = adds.checksum(checksum, at)
        if digest is None:
            raise adds.no_checksum(url, at)
        name = adds.url_name(url, at)
        path = self._work_file()
        size = adds.download(url, digest, path, at)
        tree, _ = adds.url_source_tree(path, name, size, f"the URL {name}")
        return tree

    def _archive(self, tree: Tree, source: str, at: str) -> Optional[Tree]:
        if copies.has_wildcard(source):
            return None  # each match is copied as it is (docker unpacks only plain paths)
        node = tree.get(tree.resolve(normalize(source)))
        if node is None or node.kind != FILE or not isinstance(node.content, str):
            return None
        if not adds.is_archive(node.content):
            return None
        return adds.unpack(node.content, shown(source), self._work_dir(), at)

    def _work_file(self) -> str:
        self._count += 1
        os.makedirs(os.path.join(self.work, "files"), exist_ok=True)
        return os.path.join(self.work, "files", str(self._count))

    def _work_dir(self) -> str:
        self._count += 1
        return os.path.join(self.work, "unpacked", str(self._count))

    # -- layers ----------------------------------------------------------------------------

    def _layer(self, state: State, writes: List[copies.Write], created_by: str, at: str) -> None:
        entries = self._entries(state.tree, writes, at)
        try:
            blob = build_layer(entries, self.layers_dir, compression=self.options.compression,
                               mtime=self.epoch)
        except OciBuildError as err:  # e.g. an owner of a base's file no Linux file can have
            raise OciBuildError(f"{at}: {err}") from None
        self._add_layer(state, blob, created_by)
        copies.apply(state.tree, writes)

    def _add_layer(self, state: State, blob, created_by: str) -> None:
        state.layers.append(Layer(blob.media_type, blob.digest, blob.size, blob.diff_id))
        rootfs = state.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        rootfs["diff_ids"] = [*(rootfs.get("diff_ids") or []), blob.diff_id]
        rootfs.setdefault("type", "layers")
        self._history(state, created_by, False)

    def _entries(self, tree: Tree, writes: List[copies.Write], at: str) -> List[LayerEntry]:
        members = [n.content for _, n in writes
                   if n.kind == FILE and isinstance(n.content, LayerMember)]
        files = self.blobs.materialize(members, os.path.join(self.work, "content")) \
            if members else {}
        out = []
        for path, node in copies.with_parents(tree, writes):
            if posixpath.basename(path).startswith(".wh."):
                raise OciBuildError(f"{at}: /{path} would be read as a whiteout (a deletion) "
                                    "by every image unpacker; rename it")
            if node.kind == DIR:
                out.append(LayerEntry(path, E_DIR, mode=node.mode, uid=node.uid, gid=node.gid))
            elif node.kind == SYMLINK:
                out.append(LayerEntry(path, E_SYMLINK, mode=0o777, uid=node.uid, gid=node.gid,
                                      link_target=node.link))
            elif node.kind == FILE:
                source = node.content if isinstance(node.content, str) else \
                    files.get(node.content) if node.content is not None else self._empty()
                out.append(LayerEntry(path, E_FILE, source=source, mode=node.mode,
                                      uid=node.uid, gid=node.gid, size=node.size))
            else:
                raise OciBuildError(f"{at}: /{path} is a device, FIFO or socket; a layer built "
                                    "without privilege cannot hold one")
        return out

    def _empty(self) -> str:
        path = os.path.join(self.work, "empty")
        if not os.path.exists(path):
            open(path, "wb").close()
        return path


def _mode(text: str, at: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o7777:
        raise OciBuildError(f"{at}: --chmod={shown(text)} must be an octal mode from 0 to "
                            "7777, e.g. 755 (symbolic modes such as u+x are not supported)")
    return value


def build(options: Options, work: str) -> Built:
    return Builder(options, work).run()


def warn(built: Built) -> None:
    for line in built.warnings:
        print(f"ocibuild: warning: {line}", file=sys.stderr)


__all__ = ["Options", "Built", "Builder", "build", "Mapping"]
