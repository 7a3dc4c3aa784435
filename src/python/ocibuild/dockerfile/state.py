"""A Dockerfile build one step at a time: a state directory in, the next one out.

A stage's state is `<stages_dir>/<index>/stage.json` (its config, layers, ARGs in scope,
platform, which image it is on) and `blobs/sha256/` holding every layer blob of the stage that
is not its base image's (those stay in the image's layout, which the caller passes in). A step
(`ocibuild.dockerfile.plan`) reads the states of the stages it builds on, runs its
instructions with the ordinary `Builder` and writes the stage's new state under `out/`.

The filesystem model of a stage is not stored: it is rebuilt by replaying the stage's layer
blobs (the builder reads them the same way it reads a base image's), and a RUN unpacks the
layers into a fresh tree in the sandbox each time (a one-shot build keeps one tree per stage).
That is the price of each RUN being its own cached process.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Dict, Optional, Tuple

from ocibuild import canonical_json
from ocibuild.dockerfile import stages as stage_graph
from ocibuild.digest import hex_of
from ocibuild.dockerfile.builder import Builder, Options, State, automatic_args
from ocibuild.dockerfile.fstree import Tree
from ocibuild.dockerfile.images import Images, Pulled, Registries
from ocibuild.dockerfile.instructions import check, where
from ocibuild.dockerfile.parser import MAX_BYTES, Node as Instruction, parse
from ocibuild.errors import OciBuildError
from ocibuild.image import mutate
from ocibuild.image.config import check_base_config, rfc3339
from ocibuild.image.image import Image
from ocibuild.image.layer import Layer
from ocibuild.layout import OciLayout, resolve_image, write
from ocibuild.platform import from_config, parse_platform
from ocibuild.protocol.assemble import AssembleResult, ImageLayer
from ocibuild.protocol.dockerfile import (
    NO_CONTEXT,
    DockerfileImageRequest,
    DockerfileStepRequest,
    DockerfileStepResult,
    LocalImage,
    RunReport,
)
from ocibuild.reference import parse_reference
from ocibuild.untrusted import load_json_file, local_path, read_file

STAGE_FILE = "stage.json"
_MAX_STAGE_FILE = 64 << 20


class LocalImages(Images):
    """FROM and COPY --from images from OCI layouts the caller resolved (by digest), never
    from a registry: the step's process is keyed by exactly what it reads."""

    def __init__(self, images: Tuple[LocalImage, ...], blobs, work: str) -> None:
        super().__init__(Registries(), blobs, work)
        self.local = {image.name: image for image in images}

    def _pull(self, name, platform, where_, ahead=None) -> Pulled:
        given = self.local.get(name)
        if given is None:
            raise OciBuildError(f"{where_}: the image {name!r} was not resolved for this step "
                                "(a bug in the caller: the plan names every image)")
        local_path(given.layout, "the step's image layout")
        origin = f"the image {given.spec or name}"
        try:
            image = resolve_image(OciLayout(given.layout), ref_name=given.ref_name,
                                  platform=platform)
        except OciBuildError as err:
            raise OciBuildError(f"{where_}: {origin}: {err}") from None
        check_base_config(image.config, f"{origin} (config {image.config_descriptor.digest})")
        tree = self._model(image, OciLayout(given.layout), origin, ahead)
        try:
            ref = parse_reference(name)
        except OciBuildError:
            ref = None  # a Pants address: only its spec and digest are recorded
        return Pulled(ref, image.manifest_descriptor.digest, given.layout, image, tree)


def _layer_json(layer: Layer) -> dict:
    return {"media_type": layer.media_type, "digest": layer.digest, "size": layer.size,
            "diff_id": layer.diff_id}


def _blob_name(digest: str) -> str:
    """The blob's file in a state directory; a digest that is not `sha256:<64 hex>` (a state
    from elsewhere: a cache entry, a hand-made directory) names no file at all."""
    return os.path.join("blobs", "sha256", hex_of(digest))


class StepBuilder(Builder):
    """The builder, with its stages loaded from states and its context limited to what the
    plan said the step reads."""

    def __init__(self, request: DockerfileStepRequest, work: str, out_dir: str) -> None:
        options = Options(dockerfile=request.dockerfile,
                          context=request.context or os.path.join(work, "no-context"),
                          build_args=tuple(request.build_args), platform=request.platform,
                          created_epoch=request.created_epoch, compression=request.compression)
        super().__init__(options, work)
        self.request = request
        self.images = LocalImages(request.images, self.blobs, work)
        data = read_file(request.dockerfile, "the Dockerfile", MAX_BYTES + 1)
        self.df = parse(data, request.name)
        self.globals, _ = stage_graph.global_args(self.df, self.build_args,
                                                  automatic_args(self.platform))
        self.stages = stage_graph.split(self.df, self.globals)
        self.out = os.path.join(out_dir, str(request.step.stage))
        self.layers_dir = self.out  # new layers land beside the ones linked in
        self.built: Dict[int, State] = {}
        for index in sorted({request.step.stage, *request.step.from_stages}):
            directory = os.path.join(request.stages_dir, str(index))
            if os.path.isfile(os.path.join(directory, STAGE_FILE)):
                self.built[index] = self._load(index, directory)

    # -- states ----------------------------------------------------------------------------

    def _load(self, index: int, directory: str) -> State:
        raw = load_json_file(os.path.join(directory, STAGE_FILE), "a stage state",
                             _MAX_STAGE_FILE)
        layers = [Layer(d["media_type"], d["digest"], d["size"], d["diff_id"])
                  for d in raw["layers"]]
        platform = parse_platform(raw["platform"])
        base = self.images.get(raw["image"], platform, f"stage {index}") \
            if raw["image"] else None
        tree = base.tree.copy() if base else Tree()
        own = layers[len(base.image.layers):] if base else layers
        if base and [layer.digest for layer in layers[:len(base.image.layers)]] != \
                [layer.digest for layer in base.image.layers]:
            raise OciBuildError(f"the state of stage {index} is not on its image "
                                f"{raw['image']!r} (a bug in the caller)")
        for layer in own:
            path = os.path.join(directory, _blob_name(layer.digest))
            self.blobs.add(layer.digest, layer.media_type, lambda p=path: open(p, "rb"))
            self.blobs.apply(tree, layer.digest, f"stage {index}")
            _link(path, os.path.join(self.layers_dir, _blob_name(layer.digest)))
        state = State(tree, raw["config"], layers, platform, base,
                      dict(raw["args"]), raw["cmd_set"])
        state.image_name = raw["image"]  # type: ignore[attr-defined]
        return state

    def save(self, index: int, state: State) -> None:
        base_layers = len(state.base.image.layers) if state.base else 0
        keep = {_blob_name(layer.digest) for layer in state.layers[base_layers:]}
        for layer in state.layers[base_layers:]:
            if not os.path.isfile(os.path.join(self.out, _blob_name(layer.digest))):
                _link(self._blob_path(layer)[0], os.path.join(self.out,
                                                               _blob_name(layer.digest)))
        _prune(self.out, keep)
        document = {"config": state.config, "layers": [_layer_json(x) for x in state.layers],
                    "platform": str(state.platform),
                    # In order: history text lists the ARGs in the order they were declared.
                    "args": [[k, v] for k, v in state.args.items()],
                    "cmd_set": state.cmd_set,
                    "image": getattr(state, "image_name", None)}
        with open(os.path.join(self.out, STAGE_FILE), "wb") as f:
            f.write(canonical_json.dumps(document))

    # -- the step --------------------------------------------------------------------------

    def step(self) -> DockerfileStepResult:
        step = self.request.step
        if not 0 <= step.stage < len(self.stages):
            raise OciBuildError(f"{self.df.path}: the step's stage {step.stage} is not in the "
                                "Dockerfile given (a bug in the caller)")
        stage = self.stages[step.stage]
        os.makedirs(self.out, exist_ok=True)
        if step.first < 0:
            state = self._stage(dataclasses.replace(stage, instructions=()))
            state.image_name = None if state.base is None else _image_of(  # type: ignore
                stage, self.stages, self.built)
        else:
            if step.stage not in self.built:
                raise OciBuildError(f"{where(self.df, stage.node)}: no state for this stage "
                                    "(a bug in the caller)")
            state = self.built[step.stage]
            for node in stage.instructions[step.first:step.last + 1]:
                check(self.df, node)
                self._dispatch(state, node, where(self.df, node))
        self.save(step.stage, state)
        runs = tuple(RunReport(r["at"], r["mechanism"], r["ownership"], tuple(r["lost"]))
                     for r in self.run_steps)
        return DockerfileStepResult(step.stage, len(state.layers), runs)

    def _source(self, state: State, node: Instruction, at: str):
        reads_context = stage_graph.copy_from(self.df, node, self.globals) is None \
            if node.keyword == "COPY" else True
        if reads_context and self.request.step.context == NO_CONTEXT:
            raise OciBuildError(f"{at}: this step was planned to read no build context "
                                "(a bug in the plan)")
        return super()._source(state, node, at)


def _image_of(stage, stages, built) -> Optional[str]:
    """The image a stage is on, through the stages it is FROM."""
    parent = stage_graph.stage_named(stages, stage.base, stage.index)
    if parent is None:
        return stage.base
    return getattr(built[parent.index], "image_name", None)


def _link(source: str, dest: str) -> None:
    if os.path.exists(dest):
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def _prune(directory: str, keep: set) -> None:
    """Only the stage's own blobs go out: anything else the builder left (work files) not."""
    for root, dirs, files in os.walk(directory):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), directory)
            if rel != STAGE_FILE and rel not in keep:
                os.unlink(os.path.join(root, name))


def step(request: DockerfileStepRequest, out_dir: str) -> DockerfileStepResult:
    import tempfile

    from ocibuild.layer.request import check_compressor

    check_compressor(request.compressor)
    if request.context is not None:
        local_path(request.context, "the step's context")
    with tempfile.TemporaryDirectory(prefix="ocibuild-step-") as work:
        return StepBuilder(request, work, out_dir).step()


def image(request: DockerfileImageRequest, out_dir: str) -> AssembleResult:
    """The stage's image: config (with `created`), manifest and index.json in `out_dir`."""
    directory = os.path.join(request.stages_dir, str(request.stage))
    raw = load_json_file(os.path.join(directory, STAGE_FILE), "the stage state",
                         _MAX_STAGE_FILE)
    layers = tuple(Layer(d["media_type"], d["digest"], d["size"], d["diff_id"])
                   for d in raw["layers"])
    base_digest, base_layers, spec = None, 0, None
    if raw["image"]:
        given = {i.name: i for i in request.images}.get(raw["image"])
        if given is None:
            raise OciBuildError(f"the image {raw['image']!r} of the stage was not given")
        base = resolve_image(OciLayout(local_path(given.layout, "the base layout")),
                             ref_name=given.ref_name, platform=parse_platform(raw["platform"]))
        base_digest, base_layers, spec = (base.manifest_descriptor.digest, len(base.layers),
                                          given.spec or given.name)
    config = dict(raw["config"])
    config["created"] = rfc3339(request.created_epoch)
    config.setdefault("history", [])
    built = Image(canonical_json.dumps(config), layers)
    annotations = {**mutate.base_annotations(spec, base_digest), **dict(request.annotations)}
    built = mutate.with_annotations(built, annotations)
    os.makedirs(out_dir, exist_ok=True)
    write(OciLayout(out_dir), built, list(request.ref_names))
    platform = from_config(config, where="the built image")
    return AssembleResult(
        manifest_digest=built.manifest_descriptor.digest,
        config_digest=built.config_descriptor.digest,
        platform=str(platform),
        ref_name=request.ref_names[0],
        ref_names=tuple(request.ref_names),
        repository=request.repository,
        layers=tuple(ImageLayer(d.digest, d.size, d.media_type, str(d.diff_id),
                                i < base_layers) for i, d in enumerate(built.layers)),
        base_blobs=tuple(sorted({d.digest for d in layers[:base_layers]})),
    )


__all__ = ["step", "image", "StepBuilder", "LocalImages", "STAGE_FILE"]
