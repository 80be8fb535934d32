"""The warm swap call, in the main run: POST /v1/swap against INSwapper.get in process.

Each side handles the same request end to end: decode the 640x480 JPEG, detect (640),
embed the source face, swap it onto the target face, paste back and encode a PNG. The
in-process sides are InsightFace's SCRFD, ArcFaceONNX and INSwapper with onnxruntime's
defaults, and with the tuned settings of `insightface-tuned`. The swapper's load (the first
REST call, an INSwapper construction) is untimed: `facegate bench --swap` measures it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from gateway.ops.bench.measure import Progress, split_evenly, time_in_rounds
from gateway.ops.bench.options import BenchError, BenchOptions
from gateway.ops.bench.scenarios import REQUEST_TIMEOUT_S, InsightFaceInProcess
from gateway.ops.bench.tuning import ORT_DEFAULTS, OrtSettings


@dataclass(frozen=True)
class SwapSide:
    """A named way to run one swap request end to end (`run` takes the JPEG bytes)."""

    name: str
    description: str
    run: Callable[[bytes], object]


@dataclass
class SwapResult:
    """Warm call times of one side, per interleaved round."""

    side: str
    description: str
    rounds_ms: list[list[float]] = field(default_factory=list)

    @property
    def calls_ms(self) -> list[float]:
        return [ms for chunk in self.rounds_ms for ms in chunk]

    def percentile_ms(self, q: float) -> float:
        calls = self.calls_ms
        return float(np.percentile(calls, q)) if calls else float("nan")

    def round_percentiles_ms(self, q: float) -> list[float]:
        return [float(np.percentile(chunk, q)) for chunk in self.rounds_ms if chunk]


class InsightFaceSwap:
    """detect + embed + INSwapper.get(paste_back=True) + PNG, in process, as apps do it.

    Detection and recognition use `analysis`'s sessions (so a run holds one detector and
    one recognizer per setting); the swapper gets its own session with `settings`.
    swapper_load_ms: how long the swapper took to build (model construction).
    """

    def __init__(
        self,
        analysis: InsightFaceInProcess,
        swapper_onnx: Path,
        settings: OrtSettings = ORT_DEFAULTS,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        import onnxruntime as ort
        from insightface.model_zoo.inswapper import INSwapper

        self._analysis = analysis
        started = time.perf_counter()
        session = ort.InferenceSession(
            str(swapper_onnx), settings.session_options(), providers=list(providers)
        )
        self._swapper = INSwapper(str(swapper_onnx), session=session)
        self.swapper_load_ms = (time.perf_counter() - started) * 1000

    def __call__(self, jpeg: bytes) -> None:
        img = np.asarray(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), np.uint8)
        face = self._analysis.prominent_face(img)
        if face is None:
            raise BenchError("InsightFace found no face to swap in the benchmark image")
        swapped = self._swapper.get(img, face, face, paste_back=True)
        cv2.imencode(".png", swapped)


class RestSwap:
    """POST /v1/swap (source = target = the JPEG, PNG out) on one keep-alive connection."""

    def __init__(self, base_url: str, api_key: str) -> None:
        import httpx

        self._http = httpx.Client(
            base_url=base_url, headers={"X-API-Key": api_key}, timeout=REQUEST_TIMEOUT_S
        )

    def __call__(self, jpeg: bytes) -> None:
        files = [
            ("source", ("s.jpg", jpeg, "image/jpeg")),
            ("target", ("t.jpg", jpeg, "image/jpeg")),
        ]
        response = self._http.post("/v1/swap", params={"format": "png"}, files=files)
        if response.status_code != 200:
            raise BenchError(f"/v1/swap answered {response.status_code}: {response.text[:300]}")

    def close(self) -> None:
        self._http.close()


def measure_swap(sides: Sequence[SwapSide], jpeg: bytes, options: BenchOptions) -> list[SwapResult]:
    """options.swap_calls timed calls per side in interleaved rounds, after one untimed call each.

    The untimed call loads the swapper (REST) and warms the sessions (in process).
    """
    bar = Progress(len(sides) * options.swap_calls, options.progress, unit="swap")
    try:
        for side in sides:
            bar.phase(f"swap {side.name} warm-up (loads the swapper)")
            side.run(jpeg)
        calls = [(f"swap {s.name}", functools.partial(s.run, jpeg)) for s in sides]
        rounds_ms = time_in_rounds(calls, split_evenly(options.swap_calls, options.rounds), bar)
    finally:
        bar.close()
    results = [
        SwapResult(s.name, s.description, ms) for s, ms in zip(sides, rounds_ms, strict=True)
    ]
    return results
