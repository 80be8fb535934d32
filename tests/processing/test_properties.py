"""Property tests across the processing chain: any shape, any model output, never a crash."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.processing import letterbox_image, postprocess_detections, warp_faces
from gateway.triton import spec

SPECIALS = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e30, -1e30])


def _raw_outputs(rng: np.random.Generator, poison: list[float]) -> tuple[list[np.ndarray], ...]:
    scores, boxes, kps = [], [], []
    for tensor in spec.DETECTOR_OUTPUTS[:3]:
        count = tensor.shape[0]
        s = rng.random((count, 1), dtype=np.float32)
        b = rng.normal(2, 3, (count, 4)).astype(np.float32)
        k = rng.normal(0, 3, (count, 10)).astype(np.float32)
        for array in (s, b, k):
            flat = array.reshape(-1)
            positions = rng.integers(0, flat.size, len(poison))
            flat[positions] = poison
        scores.append(s)
        boxes.append(b)
        kps.append(k)
    return scores, boxes, kps


@pytest.mark.slow  # 30 full chains on random sizes: tens of seconds
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=st.integers(1, 2500),
    width=st.integers(1, 2500),
    poison=st.lists(SPECIALS, max_size=50),
    threshold=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_detect_chain_never_crashes(
    height: int, width: int, poison: list[float], threshold: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    letterbox = letterbox_image(img, spec.DETECTOR_INPUT_SIZE_PX)
    assert letterbox.frame_bgr.shape == (640, 640, 3) and letterbox.scale > 0
    scores, boxes, kps = _raw_outputs(rng, poison)
    dets = postprocess_detections(
        scores, boxes, kps, letterbox.scale, img.shape, threshold, 0.4, max_faces=5
    )
    assert len(dets) <= 5
    assert np.isfinite(dets.boxes).all() and np.isfinite(dets.kps).all()
    assert np.isfinite(dets.scores).all() and (dets.scores >= threshold).all()
    faces = warp_faces(img, dets.kps[:3], spec.RECOGNIZER_INPUT_SIZE_PX)
    assert faces.crops_bgr.shape == (min(len(dets), 3), 112, 112, 3)
