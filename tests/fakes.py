"""A fake inference backend (ports.InferenceBackend) for unit tests of the gateway's own logic.

Detector: one face per frame at stride 32, cell (5, 5), anchor 0 - box (128, 128, 192, 192)
in letterbox pixels (frames of 192 px and more) - when the frame is not black (or as `faces_per_frame` says).
Recognizer: embeddings from the crops' pixels, so different crops differ. Swapper: the
inverted crop. Model control keeps the swapper's state in memory and records every call.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.errors import UpstreamUnavailable
from gateway.ports import DetectorOutputs
from gateway.triton import spec

# Per-anchor landmark offsets in stride units: a plausible face layout inside the box.
_KPS_UNITS = np.array([-0.5, -0.2, 0.5, -0.2, 0, 0.3, -0.4, 0.7, 0.4, 0.7], np.float32)


class FakeBackend:
    """In-memory stand-in for TritonFaceModels; `fail_with` makes every inference raise."""

    def __init__(self, faces_per_frame: list[bool] | None = None) -> None:
        self.faces_per_frame = faces_per_frame
        self.detect_calls: list[int] = []
        self.embed_calls: list[int] = []
        self.swap_calls = 0
        self.control_calls: list[str] = []
        self.states = {
            spec.DETECTOR: "READY",
            spec.RECOGNIZER: "READY",
            spec.SWAPPER: "UNAVAILABLE",
        }
        self.fail_with: BaseException | None = None
        self.closed = False

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    async def detect(self, frames_bgr: npt.NDArray[np.uint8]) -> list[DetectorOutputs]:
        self._check()
        self.detect_calls.append(len(frames_bgr))
        outputs = []
        # Any frame side, as the variable-size detector: anchor counts follow it.
        size_px = frames_bgr.shape[1]
        cells = size_px // spec.DETECTOR_STRIDES[2]
        for index, frame in enumerate(frames_bgr):
            scores, boxes, kps = [], [], []
            for tensor in spec.detector_outputs(size_px)[: len(spec.DETECTOR_STRIDES)]:
                count = tensor.shape[0]
                scores.append(np.zeros((count, 1), np.float32))
                boxes.append(np.full((count, 4), 1.0, np.float32))
                kps.append(np.tile(_KPS_UNITS, (count, 1)))
            has_face = (
                self.faces_per_frame[index] if self.faces_per_frame is not None else frame.any()
            )
            # stride 32: a cells x cells grid, 2 anchors per cell; frames too small to hold
            # cell (5, 5) (the 128 px pass) see no face, so the merge keeps the 640 one.
            if has_face and cells > 5:
                scores[2][(5 * cells + 5) * 2] = 0.9
            outputs.append(DetectorOutputs(tuple(scores), tuple(boxes), tuple(kps)))
        return outputs

    async def embed(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        self._check()
        self.embed_calls.append(len(crops_bgr))
        base = crops_bgr.reshape(len(crops_bgr), -1)[:, :512].astype(np.float32) + 1.0
        return base * 3.0

    async def swap(
        self, target_bgr: npt.NDArray[np.uint8], source_embedding: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.uint8]:
        self._check()
        if self.states[spec.SWAPPER] != "READY":
            # What Triton answers for a model that is not loaded (NOT_FOUND, translated).
            raise UpstreamUnavailable("Triton model 'swapper' is unavailable: not found")
        self.swap_calls += 1
        return np.ascontiguousarray(255 - target_bgr)

    async def load_model(self, model: str, timeout_s: float) -> None:
        self.control_calls.append(f"load {model}")
        self.states[model] = "READY"

    async def unload_model(self, model: str) -> None:
        self.control_calls.append(f"unload {model}")
        self.states[model] = "UNAVAILABLE"

    async def is_model_ready(self, model: str) -> bool:
        return self.states.get(model) == "READY"

    async def model_states(self) -> dict[str, str]:
        self._check()
        return dict(self.states)

    async def close(self) -> None:
        self.closed = True
