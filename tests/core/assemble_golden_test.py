"""assemble writes the same bytes as before the image model: digests pinned from 0b98f5a.

The digests below were computed once by running the assemble.py of commit 0b98f5a (before
the image model and the typed AssembleRequest) on these exact specs and inputs; the specs are
spelled as AssembleRequests now (inline layer descriptors, pairs for env, labels and
annotations, `ref_names`), which describe the same images. The inputs are written by hand
(fake layer digests; bases with config and manifest blobs only), so nothing here depends on a
compressor or the machine. Each written file is also checked with hashlib alone.

"scratch-no-history" is newer than 0b98f5a (whose default history named each layer.json):
its digests were pinned from the typed assemble, and its config and manifest are rebuilt here
byte for byte from a hand-written literal (`test_no_history_bytes_by_hand`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict

import pytest

from .layouts import assemble_json

GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _fake(n: int) -> str:
    return "sha256:" + f"{n:x}" * 64


def _blob(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs/sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _base(layout: Path, config: dict, *, docker: bool = False, indent=None,
          manifest_annotations=None) -> dict:
    """A base layout of one image (no layer blobs); `indent` writes non-canonical JSON."""
    config_type = ("application/vnd.docker.container.image.v1+json" if docker
                   else "application/vnd.oci.image.config.v1+json")
    manifest_type = ("application/vnd.docker.distribution.manifest.v2+json" if docker
                     else OCI_MANIFEST)
    layer_type = DOCKER_GZIP if docker else GZIP
    config_d = _blob(layout, json.dumps(config, indent=indent).encode())
    manifest = {"schemaVersion": 2, "mediaType": manifest_type,
                "config": {"mediaType": config_type, **config_d},
                "layers": [{"mediaType": layer_type, "digest": _fake(i + 1), "size": 100 + i,
                            **({"annotations": {"x.layer": str(i)}} if i else {})}
                           for i in range(len(config["rootfs"]["diff_ids"]))]}
    if manifest_annotations:
        manifest["annotations"] = manifest_annotations
    manifest_d = _blob(layout, json.dumps(manifest, indent=indent).encode())
    return {"mediaType": manifest_type, **manifest_d}


def _config(arch: str, marker: str, layers: int = 2, **extra) -> dict:
    return {"architecture": arch, "os": "linux", "created": "2023-05-01T10:00:00Z",
            "config": {"Env": ["PATH=/usr/bin:/bin", f"MARKER={marker}", "BARE"],
                       "Entrypoint": ["/entry.sh"], "Cmd": ["serve"],
                       "Labels": {"base": "yes"}, "ExposedPorts": {"80/tcp": {}}},
            "rootfs": {"type": "layers", "diff_ids": [_fake(9 - i) for i in range(layers)]},
            "history": [{"created": "2023-05-01T10:00:00Z", "created_by": "ADD rootfs"},
                        {"created": "2023-05-01T10:00:00Z", "created_by": "ENV X",
                         "empty_layer": True},
                        *({"created_by": f"RUN {i}"} for i in range(1, layers))],
            **extra}


def _index(layout: Path, manifests: list) -> None:
    (layout / "index.json").write_text(json.dumps(
        {"schemaVersion": 2, "manifests": manifests}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')


# New layers' descriptors, as `ocibuild layer` describes them (fake digests).
A = {"mediaType": GZIP, "digest": _fake(2), "size": 1010, "diffID": _fake(4)}
B = {"mediaType": ZSTD, "digest": _fake(3), "size": 1011, "diffID": _fake(5)}
# The history 0b98f5a gave layers without one: "ocibuild layer <the layer.json path>".
OLD_DEFAULT_HISTORY = ["ocibuild layer a/layer.json", "ocibuild layer b/layer.json"]


def _inputs(root: Path) -> None:
    oci = _base(root / "oci", _config("amd64", "oci"),
                manifest_annotations={"org.opencontainers.image.version": "base-1"})
    _index(root / "oci", [{**oci, "annotations": {
        "org.opencontainers.image.ref.name": "1.0"}}])
    docker = _base(root / "docker", _config("amd64", "docker", layers=1), docker=True)
    _index(root / "docker", [{**docker, "annotations": {
        "org.opencontainers.image.ref.name": "docker.io/library/base:1"}}])
    odd = _base(root / "odd", _config("arm64", "odd", variant="", **{"os.version": "1"}),
                indent=1)
    _index(root / "odd", [odd])
    amd = _base(root / "multi", _config("amd64", "amd"))
    arm = _base(root / "multi", _config("arm64", "arm", variant="v8"))
    index = _blob(root / "multi", json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{**amd, "platform": {"os": "linux", "architecture": "amd64"}},
                      {**arm, "platform": {"os": "linux", "architecture": "arm64",
                                           "variant": "v8"}}]}).encode())
    _index(root / "multi", [{"mediaType": "application/vnd.oci.image.index.v1+json", **index,
                             "annotations": {"org.opencontainers.image.ref.name": "latest"}}])


SETTINGS = {"entrypoint": ["/app/run"], "env": [["MARKER", "new"], ["APP", "1"]],
            "labels": [["team", "core"]], "exposed_ports": ["8080", "53/udp"],
            "volumes": ["/data"], "user": "65532:65532", "workdir": "/app",
            "stop_signal": "term"}

SPECS: Dict[str, dict] = {
    "scratch": {"base": None, "layers": [A], "history": ["pants-oci: //:app"],
                "settings": {"cmd": ["/app"]}, "annotations": [["org.example.x", "y"]],
                "created_epoch": 0, "ref_names": ["1.0"], "repository": "team/app"},
    # 0b98f5a's default history, given explicitly (the default now has no created_by).
    "scratch-default-history": {"platform": "linux/arm64", "layers": [A, B],
                                "history": OLD_DEFAULT_HISTORY},
    "scratch-no-history": {"platform": "linux/arm64", "layers": [A, B]},
    "scratch-empty": {"layers": []},
    "base-oci": {"base": {"layout": "oci", "ref_name": "1.0", "name": "//:base"},
                 "layers": [A, B], "history": ["one", "two"],
                 "settings": SETTINGS, "created_epoch": 1700000000,
                 "annotations": [["org.opencontainers.image.base.name", "mine"],
                                 ["org.example.x", "y"]],
                 "ref_names": ["latest", "1.0"]},
    "base-docker": {"base": {"layout": "docker", "ref_name": "1", "name": "base"},
                    "layers": [A], "history": ["app"],
                    "settings": {"cmd": ["x"], "env": [["B", "2"], ["A", "1"]]}},
    "base-odd-unnamed": {"base": {"layout": "odd"}, "layers": [], "history": [],
                         "settings": {"entrypoint": []}},
    "base-multi-arm": {"base": {"layout": "multi", "name": "multi"}, "platform": "linux/arm64",
                       # With the envelope `ocibuild layer` writes: the same descriptor.
                       "layers": [{"version": 1, "kind": "layer-descriptor", **B}],
                       "history": ["arm app"]},
}

# Computed by the assemble.py of 0b98f5a (but "scratch-no-history", see above): (manifest
# digest, config digest, index.json sha256, metadata sha256 (json.dumps sort_keys, of the
# result without its version and kind: 0b98f5a's metadata had none)).
PINNED: Dict[str, tuple] = {
    "base-docker": (
        "sha256:6a7d2c02fd671561141150fd5a346c06fc06bab42d7ffa78d90235267f40bd71",
        "sha256:7be62ca033eb07de9616d1eec405552bb60a4468498d6824841f3e21b8979bea",
        "sha256:ae0124111531632c980f9fd0536bb981897c11f2c389503d18dcc1a59df98737",
        "sha256:689507b4b7a1f1d2bc8d3a206d579415f4e6a27c2fb8b8499715d7ebd7740f49",
    ),
    "base-multi-arm": (
        "sha256:83a7541e20fd760b3dc13bff2142c9a0b14b1f82856cc6935f5062b3d684434c",
        "sha256:a08165137222db1648c62bd6eb34dc26666cd82c0afd96f4f0cfe91a2f98247b",
        "sha256:7513de638d8c22a9e5dafd7b2d3d111ae68c9677d02d57cc46d6904aa1c01056",
        "sha256:b4b8de6d8004b2b1a49526701fbdf875c1b143837c5d7cce7e4c2f2dd00a6410",
    ),
    "base-oci": (
        "sha256:f0dd9a5260fd6ae17844adea6b9756192991f2eaac1093369993c58e877b3865",
        "sha256:fc9f6aab186d213a7c24fe1638684b2cc991458ea9b53345c4d0a2369596ec4a",
        "sha256:12763cec408b8689c881d86d2b68dd1a7f7e3a38c45c10261a597a818a351a18",
        "sha256:fda81245080f4d3bc9081cc0b35a949be221a0f9be77c37171228de71474ed24",
    ),
    "base-odd-unnamed": (
        "sha256:552638947cd954899e55db04da3907ec1c3ceb86e3d48bb4af14b0f240401c0e",
        "sha256:831fd80ace8a7348a8d4071198b45aaa06caf989eee0c2fd578e99776ec77b3c",
        "sha256:ad8b504e677550e74b93716bc28ec75ac370d6d1c183fd64b66a36999a2bbe41",
        "sha256:ff852674d5efe0829778c08d6cdab7d4add30269243e7771e6e364461a6bebd7",
    ),
    "scratch": (
        "sha256:639e766b9ccd1b15819dbfebfc40282010c966c1d4f2697644199e619fa4616d",
        "sha256:db7028c1eb49bdb73de1ca987f8e15013e26209ed2c07f53ed19962b10b41bb3",
        "sha256:575a509238aabac2b54ce90d5e8fcc07eafa65648bb6af79b5af4ec33474543a",
        "sha256:5e4be1a36360b5ff43ddc198ae87cf5fbe333f502c1d04ff87b5489369ca7b87",
    ),
    "scratch-default-history": (
        "sha256:c57dd9919adda23cb8bea2a107bb422aae858f6f8b53d5936147ccd3c3ff5c9a",
        "sha256:ab3f2a1e171da8caa90478fd307a8d4653a9a54ea64c7e7daea9a64936177a22",
        "sha256:57e97ac81533c789c633a4e9ff125586d8deaaba844d30de93fdb324d2eb571f",
        "sha256:95f8b701bc9cfefad602cf8e1f9a9d966b81a055a6ff60767b91599407addeb6",
    ),
    # Pinned from the typed assemble; rebuilt by hand in test_no_history_bytes_by_hand.
    "scratch-no-history": (
        "sha256:fcf1afc13cecc3c632298cb5dcabdf94aa76adc4fb9c1f8def7628e596012cc9",
        "sha256:bb8355570134a5dcd81f4a1790ba8b27f9cde8d41b9e9fedaf6ced6be37e6712",
        "sha256:05a1ae38a1d4422b78b8da8b8ac587ce43c56be9b409d43c8412d7d1330bd76e",
        "sha256:58e18a733fdd3cc649b9846c7247f938a17947360fe0afc25d462bc9d8ec3647",
    ),
    "scratch-empty": (
        "sha256:a64bba914792ce6db2b3e44d811f91bc729e70e564385031ab932ed927db1a0b",
        "sha256:d5c7debd284f6285098ce51a5cd1448ce0a278f61aeb41f54f3b18460650cc4c",
        "sha256:597d92da69f80812ba4a3f28ef8e5e941bd3b8162cb1e9c47fe898dd11af42ca",
        "sha256:8610056e94e264d222ffa5412e740b91319f91614a2739207558fa2208061141",
    ),
}


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_assemble_writes_the_pinned_bytes(tmp_path: Path, monkeypatch, name: str) -> None:
    _inputs(tmp_path)
    monkeypatch.chdir(tmp_path)  # relative base layout paths
    meta = assemble_json(dict(SPECS[name]), "out")
    assert (meta.pop("version"), meta.pop("kind")) == (1, "assemble-result")
    out = tmp_path / "out"
    blobs = sorted(os.listdir(out / "blobs/sha256"))
    assert blobs == sorted([meta["manifest_digest"][7:], meta["config_digest"][7:]])
    for hex_ in blobs:  # every blob is named by its own sha256
        assert _sha256(out / "blobs/sha256" / hex_) == f"sha256:{hex_}"
    index = json.loads((out / "index.json").read_text())
    assert {m["digest"] for m in index["manifests"]} == {meta["manifest_digest"]}
    manifest = json.loads((out / "blobs/sha256" / meta["manifest_digest"][7:]).read_text())
    assert manifest["config"]["digest"] == meta["config_digest"]
    metadata = "sha256:" + hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()
    got = (meta["manifest_digest"], meta["config_digest"], _sha256(out / "index.json"), metadata)
    assert got == PINNED[name]


def _hashed(value: object) -> tuple:
    """Canonical JSON spelled out with the standard library alone, and its sha256."""
    data = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def _by_hand(history: list) -> tuple:
    """The pinned tuple of a linux/arm64 scratch image of layers A and B, from literals."""
    config, config_digest = _hashed({
        "architecture": "arm64", "os": "linux", "config": {}, "created": "1970-01-01T00:00:00Z",
        "rootfs": {"type": "layers", "diff_ids": [A["diffID"], B["diffID"]]},
        "history": [{"created": "1970-01-01T00:00:00Z", **created_by} for created_by in history],
    })
    manifest, manifest_digest = _hashed({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": [{k: d[k] for k in ("mediaType", "digest", "size")} for d in (A, B)],
    })
    _, index_digest = _hashed({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest_digest,
                       "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
    })
    metadata = json.dumps({
        "manifest_digest": manifest_digest, "config_digest": config_digest,
        "platform": "linux/arm64", "ref_name": "latest", "ref_names": ["latest"],
        "repository": None, "base_blobs": [],
        "layers": [{"digest": d["digest"], "size": d["size"], "media_type": d["mediaType"],
                    "diff_id": d["diffID"], "from_base": False} for d in (A, B)],
    }, sort_keys=True).encode()
    return (manifest_digest, config_digest, index_digest,
            "sha256:" + hashlib.sha256(metadata).hexdigest())


def test_no_history_bytes_by_hand() -> None:
    """The literal reproduces 0b98f5a's bytes with its default history, so without created_by
    it is the image the typed assemble must write: the new pins are checked independently."""
    old = [{"created_by": by} for by in OLD_DEFAULT_HISTORY]
    assert _by_hand(old) == PINNED["scratch-default-history"]
    assert _by_hand([{}, {}]) == PINNED["scratch-no-history"]
