"""`facegate bench --gateway-cpu`: the gateway's own CPU per image, with a null backend.

On a GPU the models are cheap and the gateway's CPU work (multipart parsing, JPEG decode,
letterbox, SCRFD decoding and NMS, alignment, the JSON answer) decides how many gateway
cores one GPU needs. Here the real app (create_app) runs in this process in front of a
backend whose models answer at no cost: the detector's outputs for each frame shape are
recorded once (the prepared detector on onnxruntime, untimed), the recognizer returns
fixed unit vectors. Each timed POST /v1/detect?embed=true is measured as this process's
CPU time (all threads: the app, its thread pool and the in-process client, which only
builds the multipart body and reads the JSON) and wall time, with the app's own stage
timings beside.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from gateway.ops.bench.images import FACE_LAYOUT, JPEG_QUALITY, BenchImage, crop_to_cover
from gateway.ops.bench.options import BenchError
from gateway.ports import DetectorOutputs
from gateway.triton import spec

GATEWAY_CPU_SIZES = ((640, 480), (1920, 1080))
API_KEY = "bench-gateway-cpu-key"
EMBEDDINGS_MAX = 1024


class NullBackend:
    """An inference backend whose answers cost nothing once recorded (ports.InferenceBackend)."""

    def __init__(self, detector_onnx: Path) -> None:
        import onnxruntime as ort

        self._session = ort.InferenceSession(str(detector_onnx), providers=["CPUExecutionProvider"])
        self._detections: dict[tuple[int, ...], list[DetectorOutputs]] = {}
        vectors = np.random.default_rng(0).standard_normal((EMBEDDINGS_MAX, 512))
        self._embeddings = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(
            np.float32
        )

    def record(self, frames_bgr: npt.NDArray[np.uint8]) -> None:
        """Run the real detector once on frames of this shape (before timing)."""
        names = [t.name for t in spec.DETECTOR_OUTPUTS]
        outputs = self._session.run(names, {spec.DETECTOR_INPUT.name: frames_bgr})
        count = len(spec.DETECTOR_STRIDES)
        self._detections[frames_bgr.shape] = [
            DetectorOutputs(
                tuple(o[i] for o in outputs[:count]),
                tuple(o[i] for o in outputs[count : 2 * count]),
                tuple(o[i] for o in outputs[2 * count :]),
            )
            for i in range(frames_bgr.shape[0])
        ]

    async def detect(self, frames_bgr: npt.NDArray[np.uint8]) -> list[DetectorOutputs]:
        if frames_bgr.shape not in self._detections:
            self.record(frames_bgr)
        return self._detections[frames_bgr.shape]

    async def embed(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        embeddings: npt.NDArray[np.float32] = self._embeddings[: len(crops_bgr)]
        return embeddings

    async def swap(
        self, target_bgr: npt.NDArray[np.uint8], source_embedding: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.uint8]:
        raise BenchError("the gateway CPU benchmark does not swap")

    async def load_model(self, model: str, timeout_s: float) -> None:
        return None

    async def unload_model(self, model: str) -> None:
        return None

    async def is_model_ready(self, model: str) -> bool:
        return model in (spec.DETECTOR, spec.RECOGNIZER)

    async def model_states(self) -> dict[str, str]:
        return {spec.DETECTOR: "READY", spec.RECOGNIZER: "READY"}

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class GatewayCpu:
    """Medians over the timed calls on one image."""

    image: BenchImage
    faces: int
    calls: int
    cpu_ms: float
    wall_ms: float
    stages_ms: dict[str, float]


def gateway_images(photo_bgr: npt.NDArray[np.uint8]) -> list[BenchImage]:
    """640x480 and 1920x1080 JPEGs of the photo with FACE_LAYOUT's squares planted."""
    images = []
    for width, height in GATEWAY_CPU_SIZES:
        img = crop_to_cover(photo_bgr, width, height)
        # Both letterbox by their width (the long side): the layout scales by width / 640.
        scale = width / spec.DETECTOR_INPUT_SIZE_PX
        for cx, cy, stride in FACE_LAYOUT:
            x, y = round(cx * scale), round(cy * scale)
            dark, half = round(4 * stride * scale), round(2 * stride * scale)
            img[max(0, y - dark) : y + dark, max(0, x - dark) : x + dark] = 0
            img[y - half : y + half, x - half : x + half] = 255
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise BenchError("could not encode a gateway CPU image")
        images.append(
            BenchImage(f"{width}x{height}", buf.tobytes(), width, height, len(FACE_LAYOUT))
        )
    return images


def measure_gateway_cpu(
    detector_onnx: Path, images: list[BenchImage], calls: int, warmup: int = 2
) -> list[GatewayCpu]:
    """Time POST /v1/detect?embed=true on each image against the null backend."""
    from fastapi.testclient import TestClient

    from gateway.app import create_app
    from gateway.config import Settings

    # httpx and the access log say INFO per request; the table says enough.
    for name in ("httpx", "httpx2", "facegate.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    backend = NullBackend(detector_onnx)
    settings = Settings(api_keys=f"user:{API_KEY}", models_label="synthetic: not a face model")
    results = []
    with TestClient(create_app(settings, models=backend)) as client:

        def call(jpeg: bytes) -> dict[str, Any]:
            response = client.post(
                "/v1/detect",
                params={"embed": "true", "det_sizes": str(spec.DETECTOR_INPUT_SIZE_PX)},
                files={"image": ("image.jpg", jpeg, "image/jpeg")},
                headers={"X-API-Key": API_KEY},
            )
            if response.status_code != 200:
                raise BenchError(
                    f"the gateway answered {response.status_code}: {response.text[:300]}"
                )
            body: dict[str, Any] = response.json()
            return body

        for image in images:
            for _ in range(warmup):
                call(image.jpeg)
            cpu: list[float] = []
            wall: list[float] = []
            stages: dict[str, list[float]] = {}
            faces = 0
            for _ in range(calls):
                cpu_start, wall_start = time.process_time(), time.perf_counter()
                body = call(image.jpeg)
                cpu.append((time.process_time() - cpu_start) * 1000)
                wall.append((time.perf_counter() - wall_start) * 1000)
                faces = len(body["faces"])
                for stage, ms in body["timings_ms"].items():
                    stages.setdefault(stage, []).append(float(ms))
            results.append(
                GatewayCpu(
                    image,
                    faces,
                    calls,
                    float(np.median(cpu)),
                    float(np.median(wall)),
                    {k: float(np.median(v)) for k, v in stages.items()},
                )
            )
    return results


def format_gateway_cpu(results: list[GatewayCpu]) -> tuple[list[str], list[list[str]]]:
    """One row per image: CPU and wall ms per call, and the app's stage medians."""
    rows = [
        [
            r.image.name,
            f"{len(r.image.jpeg) / 1024:.0f} KiB",
            str(r.faces),
            str(r.calls),
            "-" if math.isnan(r.cpu_ms) else f"{r.cpu_ms:.1f}",
            f"{r.wall_ms:.1f}",
            ", ".join(f"{k} {v:.1f}" for k, v in r.stages_ms.items()),
        ]
        for r in results
    ]
    header = ["image", "JPEG", "faces", "calls", "CPU ms per image", "wall ms", "app's stages (ms)"]
    return header, rows
