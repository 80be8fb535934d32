"""The swap benchmark: load-on-demand cost, swap latency, paste-back, Triton's memory.

- Triton's resident memory (tritonserver and its Python-backend stub processes) with the
  swapper unloaded, loaded, and unloaded again.
- POST /v1/swap: the cold request (it triggers the load) and warm p50/p95, beside
  InsightFace's INSwapper.get in process (model construction, then warm calls).
- Paste-back on a 4000x3000 photo: facegate's region-limited paste_face against InsightFace's
  full-frame procedure (INSwapper.get with paste_back=True minus paste_back=False, on a
  stand-in session so only paste-back is timed).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np
import numpy.typing as npt

from gateway.ops.bench.images import bench_images
from gateway.ops.bench.models import BenchModels, prepare_models
from gateway.ops.bench.options import BenchError, BenchOptions
from gateway.ops.bench.scenarios import InsightFaceInProcess
from gateway.ops.bench.swapcall import InsightFaceSwap
from gateway.ops.procfs import tree_rss_mib
from gateway.ops.reports import md_table, replace_block
from gateway.ops.servers.stack import running_gateway
from gateway.triton import spec

BEGIN = "<!-- facegate bench --swap: generated block begin -->"
END = "<!-- facegate bench --swap: generated block end -->"
PASTE_ROUNDS = 5


@dataclass(frozen=True)
class SwapFigures:
    rss_mib: dict[str, float]
    rest_cold_ms: float
    rest_warm_ms: list[float]
    insightface_load_ms: float
    insightface_warm_ms: list[float]
    paste_reference_ms: float
    paste_facegate_ms: float
    load_s: float


def prepare_swapper_models(options: BenchOptions) -> tuple[BenchModels, Path]:
    """The bench models plus the swapper, installed in the same repository."""
    import onnx

    from gateway.ops.repository.install import install_models, read_manifest
    from gateway.ops.repository.synthetic import NOT_A_FACE_MODEL, build_swapper

    models = prepare_models(options.cache_dir, options.profile, fresh=options.fresh_models)
    upstream_path = models.detector_onnx.parent / "swapper.onnx"
    source = f"synthetic-{options.profile}"
    if (
        not upstream_path.exists()
        or read_manifest(models.repository).get(spec.SWAPPER, {}).get("source") != source
    ):
        swapper = build_swapper(options.profile, np.random.default_rng(20261126))
        label = {"source": source, "synthetic": NOT_A_FACE_MODEL}
        install_models(models.repository, {spec.SWAPPER: swapper}, {spec.SWAPPER: label})
        onnx.save(swapper, str(upstream_path))
    return models, upstream_path


def _measure_paste(swapper_onnx: Path, rng: np.random.Generator) -> tuple[float, float]:
    """Median ms of InsightFace's full-frame paste-back and of facegate's paste_face."""
    from insightface.app.common import Face
    from insightface.model_zoo.inswapper import INSwapper

    from gateway.processing import paste_face, warp_faces

    big = next(image for image in bench_images() if image.width == 4000)
    photo: npt.NDArray[np.uint8] = np.asarray(
        cv2.imdecode(np.frombuffer(big.jpeg, np.uint8), cv2.IMREAD_COLOR), dtype=np.uint8
    )
    kps = np.array(
        [[1850, 1400], [2150, 1400], [2000, 1560], [1880, 1700], [2120, 1700]], np.float32
    )
    pred = rng.random((1, 3, 128, 128), dtype=np.float32)

    class StandIn:
        """Enough of an onnxruntime session for INSwapper: a fixed prediction."""

        def get_inputs(self) -> list[Any]:
            shape = [1, 3, 128, 128]
            return [
                type("I", (), {"name": "target", "shape": shape})(),
                type("I", (), {"name": "source", "shape": [1, 512]})(),
            ]

        def get_outputs(self) -> list[Any]:
            return [type("O", (), {"name": "output", "shape": [1, 3, 128, 128]})()]

        def run(self, names: Any, feeds: Any) -> list[npt.NDArray[np.float32]]:
            return [pred]

    reference = INSwapper(str(swapper_onnx), session=StandIn())
    target = Face(kps=kps, bbox=np.array([1800, 1300, 2200, 1800], np.float32))
    source = Face(embedding=rng.standard_normal(512).astype(np.float32))
    swapped = np.clip(255 * pred.transpose(0, 2, 3, 1)[0], 0, 255).astype(np.uint8)[:, :, ::-1]
    affine = warp_faces(photo, kps[None], spec.SWAPPER_INPUT_SIZE_PX).affines[0]

    def timed(fn: Any) -> float:
        samples = []
        for _ in range(PASTE_ROUNDS):
            started = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    full = timed(lambda: reference.get(photo, target, source, paste_back=True))
    crop_only = timed(lambda: reference.get(photo, target, source, paste_back=False))
    ours = timed(lambda: paste_face(photo, swapped, affine))
    return full - crop_only, ours


def run_swap_bench(options: BenchOptions, out: TextIO) -> SwapFigures:
    """Measure and print the swap figures (realistic models unless told otherwise)."""
    import httpx

    rng = np.random.default_rng(7)
    out.write("preparing models (the realistic swapper is ~590 MB) ...\n")
    out.flush()
    models, swapper_onnx = prepare_swapper_models(options)
    image = bench_images()[0]
    warm_n = max(options.latency_requests // 4, 3)
    with running_gateway(models.repository, models.label) as gateway:
        triton_pid = gateway.triton_pid
        rss = {"unloaded": tree_rss_mib(triton_pid)}
        out.write(f"Triton RSS, swapper unloaded: {rss['unloaded']:.0f} MiB\n")
        with httpx.Client(
            base_url=gateway.url, timeout=600, headers={"X-API-Key": gateway.api_key}
        ) as http:
            files = [("source", image.jpeg), ("target", image.jpeg)]
            started = time.perf_counter()
            cold = http.post("/v1/swap", files=files)
            cold_ms = (time.perf_counter() - started) * 1000
            if cold.status_code != 200:
                raise BenchError(f"swap failed: {cold.status_code} {cold.text[:300]}")
            load_s = float(http.get("/v1/models").json()["swapper"]["last_load_s"] or 0)
            rss["loaded"] = tree_rss_mib(triton_pid)
            warm = []
            for _ in range(warm_n):
                started = time.perf_counter()
                http.post("/v1/swap", files=files).raise_for_status()
                warm.append((time.perf_counter() - started) * 1000)
            rss["after swaps"] = tree_rss_mib(triton_pid)
            # Returns once Triton reports the swapper gone; then give its memory time to go.
            http.post("/v1/models/swapper/unload").raise_for_status()
        time.sleep(2)
        rss["unloaded again"] = tree_rss_mib(triton_pid)
    insightface_load_ms, insightface_warm = _insightface_swap(
        models, swapper_onnx, image.jpeg, warm_n
    )
    paste_reference, paste_ours = _measure_paste(swapper_onnx, rng)
    figures = SwapFigures(
        rss,
        cold_ms,
        warm,
        insightface_load_ms,
        insightface_warm,
        paste_reference,
        paste_ours,
        load_s,
    )
    out.write(format_swap_text(figures))
    return figures


def _insightface_swap(
    models: BenchModels, swapper_onnx: Path, jpeg: bytes, count: int
) -> tuple[float, list[float]]:
    swap = InsightFaceSwap(InsightFaceInProcess(models), swapper_onnx)
    swap(jpeg)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        swap(jpeg)
        samples.append((time.perf_counter() - started) * 1000)
    return swap.swapper_load_ms, samples


def _pct(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q))


def format_swap_text(f: SwapFigures) -> str:
    rows = [
        *([f"Triton RSS, swapper {k}", f"{v:.0f} MiB"] for k, v in f.rss_mib.items()),
        ["swapper load (Triton, as the gateway measured it)", f"{f.load_s:.2f} s"],
        ["REST /v1/swap cold (first request, triggers the load)", f"{f.rest_cold_ms:.0f} ms"],
        [
            "REST /v1/swap warm p50 / p95",
            f"{_pct(f.rest_warm_ms, 50):.0f} / {_pct(f.rest_warm_ms, 95):.0f} ms",
        ],
        ["InsightFace in process: INSwapper construction", f"{f.insightface_load_ms:.0f} ms"],
        [
            "InsightFace in process: detect + embed + swap + PNG, warm p50 / p95",
            f"{_pct(f.insightface_warm_ms, 50):.0f} / {_pct(f.insightface_warm_ms, 95):.0f} ms",
        ],
        ["paste-back on 4000x3000, InsightFace (full frame)", f"{f.paste_reference_ms:.0f} ms"],
        ["paste-back on 4000x3000, facegate (face region)", f"{f.paste_facegate_ms:.1f} ms"],
        [
            "paste-back ratio (target >= 3x)",
            f"{f.paste_reference_ms / f.paste_facegate_ms:.1f}x",
        ],
    ]
    return "\n" + md_table(["measurement", "value"], rows) + "\n"


def write_swap_report(path: Path, figures: SwapFigures, machine: str) -> None:
    """Replace the swap block of the report (between its markers) with these figures."""
    block = f"{BEGIN}\n\n{machine}\n{format_swap_text(figures)}\n{END}"
    replace_block(path, block, "## Swap (issue 4)")
