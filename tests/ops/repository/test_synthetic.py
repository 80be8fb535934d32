"""The synthetic models keep the upstream contracts, and InsightFace's own classes accept them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from insightface.model_zoo import SCRFD, ArcFaceONNX

from gateway.ops.repository.synthetic import (
    NOT_A_FACE_MODEL,
    TINY_KPS_UNITS,
    SyntheticModels,
    build_synthetic_models,
)


def _square_image(size: int, squares: list[tuple[int, int, int]]) -> np.ndarray:
    img = np.zeros((size, size, 3), np.uint8)
    for cx, cy, side in squares:
        img[cy - side // 2 : cy + side // 2, cx - side // 2 : cx + side // 2] = 255
    return img


def test_insightface_scrfd_accepts_and_finds_exact_squares(tiny_upstream_dir: Path) -> None:
    detector = SCRFD(str(tiny_upstream_dir / "detector.onnx"))
    detector.prepare(-1, input_size=(640, 640), det_thresh=0.5)
    # One square per stride: side 4*stride, centred on that stride's grid.
    squares = [(240, 128, 64), (96, 400, 32), (480, 448, 128)]
    boxes, kps = detector.detect(_square_image(640, squares), input_size=(640, 640))
    assert detector.use_kps and detector._num_anchors == 2
    found = sorted(tuple(np.round(b[:4]).astype(int)) for b in boxes)
    expected = sorted((cx - s // 2, cy - s // 2, cx + s // 2, cy + s // 2) for cx, cy, s in squares)
    assert found == expected
    for box, points in zip(boxes, kps, strict=True):
        centre = (box[:2] + box[2:4]) / 2
        unit = (box[2] - box[0]) / 4
        np.testing.assert_allclose(points, centre + TINY_KPS_UNITS * unit, atol=1e-3)


def test_tiny_detector_is_selective(tiny_upstream_dir: Path) -> None:
    detector = SCRFD(str(tiny_upstream_dir / "detector.onnx"))
    detector.prepare(-1, input_size=(640, 640), det_thresh=0.5)
    blank, _ = detector.detect(np.zeros((640, 640, 3), np.uint8), input_size=(640, 640))
    # A 96 px square matches no stride's 4*stride side: nothing fires at 0.5.
    odd, _ = detector.detect(_square_image(640, [(320, 320, 96)]), input_size=(640, 640))
    assert len(blank) == 0 and len(odd) == 0


def test_insightface_arcface_accepts_recognizer(tiny_upstream_dir: Path) -> None:
    recognizer = ArcFaceONNX(str(tiny_upstream_dir / "recognizer.onnx"))
    # No Sub/Mul nodes up front: InsightFace applies (x-127.5)/127.5 itself, as for w600k_r50.
    assert (recognizer.input_mean, recognizer.input_std) == (127.5, 127.5)
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(3)]
    feats = recognizer.get_feat(crops)
    assert feats.shape == (3, 512)
    assert np.linalg.matrix_rank(feats) == 3


def test_swapper_contract(tiny_models: SyntheticModels) -> None:
    graph = tiny_models.swapper.graph
    assert [i.name for i in graph.input] == ["target", "source"]
    assert graph.initializer[-1].name == "emap"
    assert tuple(graph.initializer[-1].dims) == (512, 512)


def test_labelled_not_a_face_model(tiny_models: SyntheticModels) -> None:
    for model in (tiny_models.detector, tiny_models.recognizer, tiny_models.swapper):
        assert {p.key: p.value for p in model.metadata_props}[
            "facegate.synthetic"
        ] == NOT_A_FACE_MODEL


def _with_input_shapes(model: onnx.ModelProto, feeds: dict[str, list[int]]) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for graph_input in copy.graph.input:
        if graph_input.name in feeds:
            for dim, value in zip(
                graph_input.type.tensor_type.shape.dim, feeds[graph_input.name], strict=True
            ):
                dim.Clear()
                dim.dim_value = value
    return onnx.shape_inference.infer_shapes(copy)


def macs_and_params(model: onnx.ModelProto, feeds: dict[str, list[int]]) -> tuple[float, int]:
    """Multiply-adds of Conv and Gemm nodes at the given input shapes, and the parameter count."""
    inferred = _with_input_shapes(model, feeds)
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in inferred.graph.value_info
    }
    shapes.update(
        {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.output}
    )
    weights = {t.name: list(t.dims) for t in inferred.graph.initializer}
    macs = 0.0
    for node in inferred.graph.node:
        if node.op_type == "Conv":
            out = shapes[node.output[0]]
            _, c_in, kh, kw = weights[node.input[1]]
            macs += float(np.prod(out)) * c_in * kh * kw
        elif node.op_type == "Gemm":
            k, n = weights[node.input[1]]
            macs += float(shapes[node.output[0]][0]) * k * n
    params = sum(int(np.prod(d)) for d in weights.values())
    return macs, params


@pytest.fixture(scope="module")
def realistic() -> SyntheticModels:
    return build_synthetic_models("realistic")


# Builds the ~600 MB realistic models: tens of seconds, so not in the unit run.
@pytest.mark.slow
@pytest.mark.parametrize(
    ("role", "feeds", "published_macs", "published_params"),
    [
        # SCRFD-10GF: ~13 G multiply-adds at 640x640 (10 G at 640x480), det_10g ~4.2 M parameters.
        ("detector", {"input.1": [1, 3, 640, 640]}, 13e9, 4.2e6),
        # ArcFace-R50 (w600k_r50): ~6.3 G per 112x112 face, ~44 M parameters.
        ("recognizer", {"input.1": [1, 3, 112, 112]}, 6.3e9, 44e6),
        # inswapper_128: ~175 G per call, ~138 M parameters (the emap excluded).
        ("swapper", {"target": [1, 3, 128, 128], "source": [1, 512]}, 175e9, 138e6),
    ],
)
def test_realistic_profile_matches_published_compute(
    realistic: SyntheticModels,
    role: str,
    feeds: dict[str, list[int]],
    published_macs: float,
    published_params: float,
) -> None:
    macs, params = macs_and_params(getattr(realistic, role), feeds)
    assert 0.7 * published_macs <= macs <= 1.3 * published_macs, (
        f"{role}: {macs / 1e9:.1f} G multiply-adds"
    )
    assert 0.7 * published_params <= params <= 1.3 * published_params, (
        f"{role}: {params / 1e6:.1f} M parameters"
    )


# The landmark stand-ins are sized by the upstream files (float32 weights): 2d106det.onnx is
# 5,030,888 bytes (~1.26 M parameters), 1k3d68.onnx 143,607,619 (~35.9 M); no published
# multiply-add counts were at hand to check those too.
@pytest.mark.slow
@pytest.mark.parametrize(
    ("role", "file_bytes"), [("landmark_2d_106", 5_030_888), ("landmark_3d_68", 143_607_619)]
)
def test_realistic_landmark_stand_ins_are_the_upstream_files_size(
    realistic: SyntheticModels, role: str, file_bytes: int
) -> None:
    _, params = macs_and_params(getattr(realistic, role), {"data": [1, 3, 192, 192]})
    assert 0.7 * file_bytes / 4 <= params <= 1.3 * file_bytes / 4, f"{role}: {params} parameters"
