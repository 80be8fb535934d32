"""run_bench: models, images, Triton and the gateway, the scenarios, the floor, the tables."""

from __future__ import annotations

import contextlib
import datetime
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt

from gateway.ops.bench.floor import (
    FLOOR_BATCH,
    FLOOR_TUNED,
    FloorSide,
    OnnxRuntimeRecognizer,
    TritonRecognizer,
    measure_floor,
)
from gateway.ops.bench.images import BenchImage, bench_images
from gateway.ops.bench.measure import measure
from gateway.ops.bench.models import (
    BenchModels,
    embedded_settings,
    prepare_models,
    set_instance_kind,
)
from gateway.ops.bench.openvino_side import InsightFaceOpenVino
from gateway.ops.bench.options import BenchError, BenchOptions
from gateway.ops.bench.report import format_text
from gateway.ops.bench.scenarios import (
    BASELINE,
    OPENVINO_BASELINE,
    TUNED,
    FacesModelDetect,
    GrpcDetect,
    InsightFaceInProcess,
    RestDetect,
    Scenario,
)
from gateway.ops.bench.summary import BenchReport
from gateway.ops.bench.swap import prepare_swapper_models
from gateway.ops.bench.swapcall import (
    InsightFaceSwap,
    RestSwap,
    SwapResult,
    SwapSide,
    measure_swap,
)
from gateway.ops.bench.tuning import (
    ORT_DEFAULTS,
    OrtSettings,
    ThreadSearch,
    search_threads,
    thread_candidates,
)
from gateway.ops.machine import describe_machine, git_commit, physical_cores
from gateway.ops.servers.stack import RunningGateway, running_gateway
from gateway.triton import spec

# Timed calls per candidate and round of the thread search (a detect+embed call is ~0.5 s,
# a floor batch ~2 s on 2 cores with the realistic models).
SEARCH_CALLS_PER_ROUND = 2


def _scenarios(
    baseline: InsightFaceInProcess,
    tuned: InsightFaceInProcess,
    openvino: InsightFaceOpenVino | None,
    gateway: RunningGateway,
    shm_regions: int,
    stack: contextlib.ExitStack,
) -> tuple[Scenario, ...]:
    rest = RestDetect(gateway.url, gateway.api_key)
    stack.callback(rest.close)
    wire = GrpcDetect(gateway.triton_grpc_url, shared_memory=False, shm_regions=shm_regions)
    stack.callback(wire.close)
    shm = GrpcDetect(gateway.triton_grpc_url, shared_memory=True, shm_regions=shm_regions)
    stack.callback(shm.close)
    served = FacesModelDetect(gateway.triton_grpc_url)
    stack.callback(served.close)
    in_process = (
        "cv2.imdecode, SCRFD.detect, then ArcFaceONNX.get (norm_crop + get_feat) per face; "
        "concurrency = threads sharing the sessions"
    )
    given_openvino = (
        Scenario(
            OPENVINO_BASELINE,
            "InsightFace given onnxruntime's OpenVINO provider (FP32, the tuned thread count, "
            "spin-wait off; prepare(ctx_id=0) so insightface keeps it), in a worker process "
            "that imports OpenVINO's onnxruntime build, one socket connection per calling "
            f"thread (timed from here, the JPEG and answer passing included): {in_process}. "
            f"Sessions really ran on: {openvino.describe_providers()}",
            openvino,
        )
        if openvino is not None
        else None
    )
    return (
        Scenario(
            BASELINE, f"InsightFace in process, onnxruntime's defaults: {in_process}", baseline
        ),
        Scenario(
            TUNED,
            "InsightFace in process with its best settings here (spin-wait off, the fastest "
            f"intra-op thread count found by the search): {in_process}",
            tuned,
        ),
        *((given_openvino,) if given_openvino is not None else ()),
        Scenario(
            "rest",
            "POST /v1/detect?embed=true (multipart JPEG) to `facegate gateway` in a child "
            "process, in front of the embedded Triton; concurrency = client threads",
            rest,
        ),
        Scenario(
            "grpc",
            "FaceClient.detect([jpeg], embed=True) straight to Triton over gRPC, the gateway's "
            "pipeline in this process; concurrency = threads sharing one client",
            wire,
        ),
        Scenario(
            "grpc+shm",
            "the same with use_shared_memory=True: detector and recognizer tensors through "
            "Triton's system shared memory",
            shm,
        ),
        Scenario(
            "faces-model",
            "FaceClient.detect_in_server([jpeg]): the JPEG to Triton's in-server `faces` model "
            "(Python backend, BLS to detector and recognizer); concurrency = threads sharing "
            "one client",
            served,
        ),
    )


def _floor_sides(
    models: BenchModels,
    gateway: RunningGateway,
    tuned: OrtSettings,
    options: BenchOptions,
    stack: contextlib.ExitStack,
) -> tuple[FloorSide, ...]:
    wire = TritonRecognizer(gateway.triton_grpc_url, gateway.repository_key, shared_memory=False)
    stack.callback(wire.close)
    shm = TritonRecognizer(gateway.triton_grpc_url, gateway.repository_key, shared_memory=True)
    stack.callback(shm.close)
    plain = (
        f"the upstream recognizer in a plain onnxruntime {options.device.upper()} session in "
        "this process, fed cv2.dnn.blobFromImages with InsightFace's mean/std (as "
        "ArcFaceONNX.get_feat)"
    )
    providers = options.providers()
    return (
        FloorSide(
            FLOOR_TUNED,
            f"{plain}; {tuned.describe()}",
            OnnxRuntimeRecognizer(models.recognizer_onnx, tuned, providers),
        ),
        FloorSide(
            "onnxruntime",
            f"{plain}; onnxruntime's defaults",
            OnnxRuntimeRecognizer(models.recognizer_onnx, ORT_DEFAULTS, providers),
        ),
        FloorSide(
            "triton grpc",
            "TritonFaceModels.embed: one uint8 BGR batch per request over gRPC",
            wire,
        ),
        FloorSide(
            "triton grpc+shm",
            "SharedMemoryFaceModels.embed: the same through system shared memory",
            shm,
        ),
    )


def _swap_sides(
    analysis: tuple[InsightFaceInProcess, InsightFaceInProcess],
    swapper_onnx: Path,
    gateway: RunningGateway,
    tuned: OrtSettings,
    options: BenchOptions,
    stack: contextlib.ExitStack,
) -> tuple[SwapSide, ...]:
    rest = RestSwap(gateway.url, gateway.api_key)
    stack.callback(rest.close)
    providers = options.providers()
    in_process = "detect + ArcFaceONNX.get + INSwapper.get(paste_back=True) + PNG, in process"
    return (
        SwapSide(
            BASELINE,
            f"{in_process}, onnxruntime's defaults",
            InsightFaceSwap(analysis[0], swapper_onnx, ORT_DEFAULTS, providers),
        ),
        SwapSide(
            TUNED,
            f"{in_process}, {tuned.describe()}",
            InsightFaceSwap(analysis[1], swapper_onnx, tuned, providers),
        ),
        SwapSide("rest", "POST /v1/swap (source = target, PNG out) to the gateway", rest),
    )


def _search(
    models: BenchModels,
    jpeg: bytes,
    crops_bgr: npt.NDArray[np.uint8],
    options: BenchOptions,
    out: TextIO,
) -> tuple[ThreadSearch, ThreadSearch]:
    """The fastest intra-op thread count (spin-wait off) for detect+embed and for the floor."""
    candidates = thread_candidates(physical_cores() or os.cpu_count() or 1)
    rounds, calls = (1, 1) if options.rounds < 2 else (options.rounds, SEARCH_CALLS_PER_ROUND)
    out.write(f"searching intra-op threads {candidates} for the tuned in-process sides ...\n")
    out.flush()
    providers = options.providers()

    def pipeline(threads: int) -> Callable[[], object]:
        side = InsightFaceInProcess(models, OrtSettings(threads, spinning=False), providers)
        return lambda: side(jpeg)

    def floor(threads: int) -> Callable[[], object]:
        side = OnnxRuntimeRecognizer(
            models.recognizer_onnx, OrtSettings(threads, spinning=False), providers
        )
        return lambda: side(crops_bgr)

    found = (
        search_threads("detect+embed call", pipeline, candidates, rounds, calls),
        search_threads(f"batch of {len(crops_bgr)}", floor, candidates, rounds, calls),
    )
    for search in found:
        out.write(f"  best for a {search.what}: {search.describe()}\n")
    return found


def _settings(
    options: BenchOptions,
    models: BenchModels,
    images: tuple[BenchImage, ...],
    searches: tuple[ThreadSearch, ThreadSearch],
    gateway: RunningGateway,
    shm_regions: int,
) -> dict[str, str]:
    pipeline, floor = searches
    triton = {
        name: embedded_settings(models.repository, name)
        for name in (spec.DETECTOR, spec.RECOGNIZER, spec.SWAPPER)
        if (models.repository / name).is_dir()
    }
    return {
        "models": f"{options.profile} synthetic ({models.label}), from {models.repository.parent}",
        "images": ", ".join(
            f"{image.name} ({len(image.jpeg) / 1024:.0f} KiB JPEG, {image.planted} planted faces)"
            for image in images
        ),
        f"{BASELINE} (and the defaults floor and swap sides)": (
            f"onnxruntime's defaults: {ORT_DEFAULTS.describe()}"
        ),
        f"{TUNED} (and its swap side)": (
            f"{OrtSettings(pipeline.best, spinning=False).describe()}; the thread count is the "
            "fastest detect+embed call at concurrency 1 on "
            f"{images[0].name}, searched in this run and used at every concurrency level: "
            f"{pipeline.describe()}"
        ),
        f"{FLOOR_TUNED} (the floor)": (
            f"{OrtSettings(floor.best, spinning=False).describe()}; searched in this run: "
            f"{floor.describe()}"
        ),
        "onnxruntime in process, both": "execution mode, inter-op threads, graph optimisation "
        "level and CPU memory arena at onnxruntime's defaults",
        "Triton": f"{gateway.triton_version}, embedded (nvidia-pytriton), Python backend "
        f"running onnxruntime on {'GPU (CUDA, KIND_GPU)' if options.device == 'gpu' else 'CPU'}; "
        "embedded configs as generated",
        **{f"Triton {name}": text for name, text in triton.items()},
        "gateway": "`facegate gateway` (one uvicorn process) with Settings defaults "
        "(cpu_threads 4, API key required, JSON logs at WARNING)",
        "gRPC client": "FaceClient in this process, one per scenario, shared by all threads; "
        f"ClientOptions defaults (cpu_threads 4) but shm_regions_per_model={shm_regions} "
        "(the highest concurrency, so no request waits for a region)",
    }


def run_bench(options: BenchOptions, out: TextIO) -> BenchReport:
    """Prepare models and images, start Triton and the gateway, measure, write the tables to `out`."""
    started = time.monotonic()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = describe_machine()
    if options.device == "gpu":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise BenchError(
                "--device gpu needs onnxruntime-gpu in this environment (it serves Triton's "
                "Python backend too): pip uninstall -y onnxruntime && pip install onnxruntime-gpu"
            )
    models = prepare_models(options.cache_dir, options.profile, fresh=options.fresh_models)
    swapper_onnx = prepare_swapper_models(options)[1] if options.swap_calls else None
    for name in (spec.DETECTOR, spec.RECOGNIZER):
        set_instance_kind(models.repository, name, gpu=options.device == "gpu")
    images = bench_images()
    baseline = InsightFaceInProcess(models, ORT_DEFAULTS, options.providers())
    crops_bgr = baseline.aligned_faces(images[0].jpeg, FLOOR_BATCH)
    searches = _search(models, images[0].jpeg, crops_bgr, options, out)
    tuned_settings = OrtSettings(searches[0].best, spinning=False)
    floor_settings = OrtSettings(searches[1].best, spinning=False)
    tuned = InsightFaceInProcess(models, tuned_settings, options.providers())
    shm_regions = max(options.concurrency)
    swap: list[SwapResult] = []
    with (
        contextlib.ExitStack() as workers,
        running_gateway(models.repository, models.label) as gateway,
    ):
        openvino = None
        if options.openvino and options.device == "cpu":
            out.write("starting InsightFace given OpenVINO in a worker process ...\n")
            out.flush()
            openvino = InsightFaceOpenVino(models, searches[0].best, images[0].jpeg)
            workers.callback(openvino.close)
        settings = _settings(options, models, images, searches, gateway, shm_regions)
        settings[f"{BASELINE}, {TUNED}: sessions ran on"] = "; ".join(
            f"{k}: {', '.join(v)}" for k, v in tuned.session_providers().items()
        )
        if openvino is not None:
            settings[f"{OPENVINO_BASELINE}: sessions ran on"] = openvino.describe_providers()
        for key, value in settings.items():
            out.write(f"{key}: {value}\n")
        out.flush()
        with contextlib.ExitStack() as stack:
            scenarios = _scenarios(baseline, tuned, openvino, gateway, shm_regions, stack)
            results = measure(scenarios, images, options)
        with contextlib.ExitStack() as stack:
            sides = _floor_sides(models, gateway, floor_settings, options, stack)
            floor = measure_floor(sides, crops_bgr, options)
        if swapper_onnx is not None:
            with contextlib.ExitStack() as stack:
                swap_sides = _swap_sides(
                    (baseline, tuned), swapper_onnx, gateway, tuned_settings, options, stack
                )
                swap = measure_swap(swap_sides, images[0].jpeg, options)
    report = BenchReport(
        options=options,
        scenarios=scenarios,
        images=images,
        results=results,
        floor=tuple(floor),
        swap=tuple(swap),
        machine=machine,
        settings=settings,
        date=date,
        commit=git_commit(),
        duration_s=time.monotonic() - started,
    )
    out.write(format_text(report))
    return report
