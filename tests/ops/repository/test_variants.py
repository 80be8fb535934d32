"""Valid upstream files of many shapes install, and the gateway's answers on them equal
insightface's on the same file (the fidelity tests' tolerances).

The gateway side is its pipeline over the prepared model.onnx run by onnxruntime
(onnx_models.py explains why that is what Triton runs); test_variants_triton.py takes a
representative subset through the real embedded Triton.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from insightface.model_zoo.inswapper import INSwapper
from insightface.utils import face_align

from gateway.ops.repository.install import install_models, load_upstream, read_manifest
from gateway.ops.repository.prepare import PrepareError
from gateway.ops.repository.synthetic import SyntheticModels

from ...fidelity.oracle import InsightFaceOracle
from ...fidelity.scenes import square_scene
from ...fidelity.test_insightface_fidelity import assert_same_faces, spread_squares
from .onnx_models import OnnxFaceModels, gateway_faces
from .variants import (
    DETECTOR_VARIANTS,
    RECOGNIZER_VARIANTS,
    SWAPPER_VARIANTS,
    Transform,
    Variant,
    drop_landmarks,
    emap_not_last,
    input_dims,
    versions,
)

pytestmark = [
    pytest.mark.slow,  # ~2-3 s per variant: builds, installs and runs each file
    pytest.mark.filterwarnings("ignore:`estimate` is deprecated:FutureWarning"),
]
# (width, height, detection threshold): two letterbox scales, the default and a low threshold.
SCENES = [(640, 480, 0.5), (777, 333, 0.05)]


def save_upstream(folder: Path, models: dict[str, onnx.ModelProto]) -> dict[str, Path]:
    """Write upstream files as insightface would load them; return role -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for role, model in models.items():
        paths[role] = folder / f"{role}.onnx"
        onnx.save(model, str(paths[role]))
    return paths


def install_files(repository: Path, paths: dict[str, Path]) -> None:
    """What `facegate models import` does with the files (load, prepare, check, write)."""
    upstream = {role: load_upstream(path, role) for role, path in paths.items()}
    provenance = {
        role: {
            "source": "test",
            "file": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
        for role, path in paths.items()
    }
    install_models(repository, upstream, provenance)


def _models_with(tiny_models: SyntheticModels, variant: Variant) -> dict[str, onnx.ModelProto]:
    models = {"detector": tiny_models.detector, "recognizer": tiny_models.recognizer}
    models[variant.role] = variant.transform(getattr(tiny_models, variant.role))
    return models


def _check_manifest(repository: Path, variant: Variant) -> None:
    entry = read_manifest(repository)[variant.role]
    assert entry["batched"] is variant.batched, entry["notes"]
    assert entry["max_batch_size"] == (0 if not variant.batched else entry["max_batch_size"])
    assert entry["batch_reason"] and entry["sha256"] and entry["source"] == "test"
    assert float(entry["self_check_max_abs_diff"]) <= float(entry["self_check_tolerance"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "variant", DETECTOR_VARIANTS + RECOGNIZER_VARIANTS, ids=lambda v: f"{v.role}-{v.id}"
)
def test_variant_installs_and_answers_as_insightface(
    variant: Variant, tiny_models: SyntheticModels, tmp_path: Path
) -> None:
    paths = save_upstream(tmp_path / "upstream", _models_with(tiny_models, variant))
    repository = tmp_path / "repository"
    install_files(repository, paths)
    _check_manifest(repository, variant)
    oracle = InsightFaceOracle(tmp_path / "upstream")
    for width, height, threshold in SCENES:
        squares = spread_squares(width, height)
        img = square_scene(width, height, squares)
        want = oracle.faces(img, threshold)
        assert len(want) == len(squares)  # the scene has faces to compare
        assert_same_faces(gateway_faces(repository, img, threshold), want)


@pytest.mark.parametrize("variant", SWAPPER_VARIANTS, ids=lambda v: f"{v.role}-{v.id}")
def test_swapper_variant_installs_and_swaps_as_insightface(
    variant: Variant, tiny_models: SyntheticModels, tmp_path: Path
) -> None:
    upstream = variant.transform(tiny_models.swapper)
    paths = save_upstream(tmp_path / "upstream", {"swapper": upstream})
    repository = tmp_path / "repository"
    install_files(repository, paths)
    assert read_manifest(repository)["swapper"]["max_batch_size"] == 0
    _assert_swaps_as_insightface(paths["swapper"], repository)


def _assert_swaps_as_insightface(upstream_file: Path, repository: Path) -> None:
    """INSwapper.get(paste_back=False) and the prepared swapper on the same aligned crops."""
    import asyncio

    from insightface.app.common import Face

    reference = INSwapper(str(upstream_file))
    models = OnnxFaceModels(repository)
    rng = np.random.default_rng(7)
    for _ in range(3):
        img = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
        kps = np.array([[70, 80], [130, 80], [100, 110], [75, 140], [125, 140]], np.float32)
        kps += rng.uniform(-5, 5, kps.shape).astype(np.float32)
        embedding = rng.standard_normal(512).astype(np.float32)
        source = Face(embedding=embedding)
        want, _ = reference.get(img, Face(kps=kps), source, paste_back=False)
        crop, _ = face_align.norm_crop2(img, kps, 128)
        got = asyncio.run(models.swap(crop, source.normed_embedding.astype(np.float32)))
        diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
        assert diff.max() <= 1, f"max pixel diff {diff.max()}"


def test_swapper_with_external_data_installs(tiny_models: SyntheticModels, tmp_path: Path) -> None:
    # The real inswapper_128 is 530 MB; exports past protobuf's 2 GB cap keep weights apart.
    folder = tmp_path / "upstream"
    folder.mkdir()
    path = folder / "inswapper_128.onnx"
    swapper = onnx.ModelProto()
    swapper.CopyFrom(tiny_models.swapper)  # saving with external data changes the model
    onnx.save(
        swapper,
        str(path),
        save_as_external_data=True,
        location="inswapper_128.onnx.data",
        size_threshold=1024,
    )
    repository = tmp_path / "repository"
    install_files(repository, {"swapper": path})
    _assert_swaps_as_insightface(path, repository)
    (folder / "inswapper_128.onnx.data").unlink()
    with pytest.raises(PrepareError, match=r"inswapper_128\.onnx.*does not exist.*external data"):
        load_upstream(path, "swapper")


@pytest.mark.parametrize(
    ("role", "transform", "words"),
    [
        ("detector", drop_landmarks, "found 6 outputs"),
        ("detector", input_dims([1, 3, 320, 320]), r"\[1, 3, 320, 320\]"),
        ("detector", versions(18, 9), "opset 18"),
        ("recognizer", input_dims(["n", 3, "h", "w"]), "H and W fixed"),
        ("recognizer", input_dims([1, 3, 128, 128]), r"found 1 input\(s\) of shape \[1, 3, 128, 128\]"),
        ("swapper", emap_not_last, "emap"),
    ],
    ids=["detector-no-landmarks", "detector-320", "detector-opset18", "recognizer-symbolic-hw",
         "recognizer-128", "swapper-emap-not-last"],
)  # fmt: skip
def test_contract_breakers_are_refused_with_one_paragraph(
    role: str, transform: Transform, words: str, tiny_models: SyntheticModels, tmp_path: Path
) -> None:
    paths = save_upstream(tmp_path / "upstream", {role: transform(getattr(tiny_models, role))})
    with pytest.raises(PrepareError, match=words) as refused:
        install_files(tmp_path / "repository", paths)
    message = str(refused.value)
    assert f"Cannot serve the {role} ({role}.onnx)" in message and "\n" not in message
    assert not (tmp_path / "repository").exists()
