"""Shared fixtures: real photos, and InsightFace's SCRFD driven by a stand-in session."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import insightface
import numpy as np
import pytest
from insightface.model_zoo.scrfd import SCRFD
from skimage import data as skimage_data

INSIGHTFACE_IMAGES = Path(insightface.__file__).parent / "data" / "images"


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    """skimage's 512x512 astronaut portrait, BGR."""
    return np.ascontiguousarray(skimage_data.astronaut()[:, :, ::-1])


@pytest.fixture(scope="session")
def group_bgr() -> np.ndarray:
    """InsightFace's t1.jpg group photo, BGR."""
    img = cv2.imread(str(INSIGHTFACE_IMAGES / "t1.jpg"))
    assert img is not None
    return img


@dataclass
class _Tensor:
    name: str
    shape: list[Any]


@dataclass
class StubSession:
    """Enough of onnxruntime.InferenceSession for SCRFD: fixed outputs, inputs recorded."""

    outputs: Sequence[np.ndarray]
    input_size_px: int = 640
    fed: list[np.ndarray] = field(default_factory=list)

    def get_inputs(self) -> list[_Tensor]:
        return [_Tensor("input.1", [1, 3, self.input_size_px, self.input_size_px])]

    def get_outputs(self) -> list[_Tensor]:
        # 2-D outputs: SCRFD treats them as unbatched; nine of them: 3 strides with kps.
        return [_Tensor(f"out{i}", list(out.shape)) for i, out in enumerate(self.outputs)]

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.fed.append(next(iter(feed.values())))
        return list(self.outputs)


@dataclass(frozen=True)
class ScrfdRun:
    det: np.ndarray  # (N, 5) x1, y1, x2, y2, score
    kpss: np.ndarray  # (N, 5, 2)
    frame_bgr: np.ndarray  # the letterboxed uint8 frame SCRFD fed its session


def _frame_from_blob(blob: np.ndarray) -> np.ndarray:
    # Undo blobFromImage(1/128, mean 127.5, swapRB) to recover the uint8 BGR frame.
    rgb = blob[0].transpose(1, 2, 0) * 128.0 + 127.5
    return np.round(rgb[:, :, ::-1]).astype(np.uint8)


@pytest.fixture(scope="session")
def run_insightface_scrfd() -> Callable[..., ScrfdRun]:
    """Run InsightFace's SCRFD.detect on `img_bgr` with canned raw outputs (the oracle)."""

    def run(
        img_bgr: np.ndarray,
        scores: Sequence[np.ndarray],
        bbox_dists: Sequence[np.ndarray],
        kps_dists: Sequence[np.ndarray],
        threshold: float = 0.5,
        nms_iou: float = 0.4,
        max_num: int = 0,
    ) -> ScrfdRun:
        session = StubSession([*scores, *bbox_dists, *kps_dists])
        model = SCRFD(session=session)
        model.det_thresh = threshold
        model.nms_thresh = nms_iou
        det, kpss = model.detect(img_bgr, max_num=max_num)
        return ScrfdRun(det=det, kpss=kpss, frame_bgr=_frame_from_blob(session.fed[0]))

    return run


def random_scrfd_outputs(
    rng: np.random.Generator, input_size_px: int = 640, strides: Sequence[int] = (8, 16, 32)
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Raw head outputs with many overlapping candidates, shaped as the detector's."""
    scores, boxes, kps = [], [], []
    for stride in strides:
        count = (input_size_px // stride) ** 2 * 2
        # A steep power keeps a few percent of anchors above typical thresholds.
        scores.append((rng.random((count, 1)) ** 12).astype(np.float32))
        boxes.append(rng.uniform(0.5, 4.0, (count, 4)).astype(np.float32))
        kps.append(rng.uniform(-2.0, 2.0, (count, 10)).astype(np.float32))
    return scores, boxes, kps


ScrfdOutputs = Callable[..., tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]]


@pytest.fixture(scope="session")
def make_scrfd_outputs() -> ScrfdOutputs:
    return random_scrfd_outputs
