"""run_bench: models, images, Triton and the gateway, the scenarios, the floor, the tables."""

from __future__ import annotations

import contextlib
import datetime
import time
from typing import TextIO

from gateway.ops.bench.floor import (
    FLOOR_BATCH,
    FloorSide,
    OnnxRuntimeRecognizer,
    TritonRecognizer,
    measure_floor,
)
from gateway.ops.bench.images import BenchImage, bench_images
from gateway.ops.bench.measure import measure
from gateway.ops.bench.models import (
    BenchModels,
    configured_intra_op_threads,
    prepare_models,
    set_instance_kind,
)
from gateway.ops.bench.options import BenchError, BenchOptions
from gateway.ops.bench.report import format_text
from gateway.ops.bench.scenarios import GrpcDetect, InsightFaceInProcess, RestDetect, Scenario
from gateway.ops.bench.summary import BenchReport
from gateway.ops.machine import describe_machine, git_commit
from gateway.ops.servers.stack import RunningGateway, running_gateway
from gateway.triton import spec


def _scenarios(
    baseline: InsightFaceInProcess,
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
    return (
        Scenario(
            "insightface",
            "InsightFace in process: cv2.imdecode, SCRFD.detect, then ArcFaceONNX.get "
            "(norm_crop + get_feat) per face; concurrency = threads sharing the sessions",
            baseline,
        ),
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
    )


def _floor_sides(
    models: BenchModels,
    gateway: RunningGateway,
    threads: int,
    options: BenchOptions,
    stack: contextlib.ExitStack,
) -> tuple[FloorSide, ...]:
    wire = TritonRecognizer(gateway.triton_grpc_url, gateway.repository_key, shared_memory=False)
    stack.callback(wire.close)
    shm = TritonRecognizer(gateway.triton_grpc_url, gateway.repository_key, shared_memory=True)
    stack.callback(shm.close)
    return (
        FloorSide(
            "onnxruntime",
            f"the upstream recognizer in a plain onnxruntime {options.device.upper()} session in "
            "this process, fed cv2.dnn.blobFromImages with InsightFace's mean/std (as "
            "ArcFaceONNX.get_feat)",
            OnnxRuntimeRecognizer(models.recognizer_onnx, threads, options.providers()),
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


def _settings(
    options: BenchOptions,
    models: BenchModels,
    images: tuple[BenchImage, ...],
    threads: dict[str, int],
    gateway: RunningGateway,
    shm_regions: int,
) -> dict[str, str]:
    return {
        "models": f"{options.profile} synthetic ({models.label}), from {models.repository.parent}",
        "images": ", ".join(
            f"{image.name} ({len(image.jpeg) / 1024:.0f} KiB JPEG, {image.planted} planted faces)"
            for image in images
        ),
        "onnxruntime threads": (
            f"intra_op_num_threads detector={threads[spec.DETECTOR]}, "
            f"recognizer={threads[spec.RECOGNIZER]} on every side, read from the embedded "
            "configs (0 = onnxruntime's default: one per physical core); inter-op and "
            "execution mode at their defaults"
        ),
        "onnxruntime CPU memory arena": "on everywhere (onnxruntime's default; model.py keeps it)",
        "Triton": f"{gateway.triton_version}, embedded (nvidia-pytriton), Python backend "
        f"running onnxruntime on {'GPU (CUDA, KIND_GPU)' if options.device == 'gpu' else 'CPU'}; "
        "embedded configs as generated",
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
    for name in (spec.DETECTOR, spec.RECOGNIZER):
        set_instance_kind(models.repository, name, gpu=options.device == "gpu")
    threads = {
        name: configured_intra_op_threads(models.repository, name)
        for name in (spec.DETECTOR, spec.RECOGNIZER)
    }
    images = bench_images()
    baseline = InsightFaceInProcess(
        models, threads[spec.DETECTOR], threads[spec.RECOGNIZER], options.providers()
    )
    crops_bgr = baseline.aligned_faces(images[0].jpeg, FLOOR_BATCH)
    shm_regions = max(options.concurrency)
    with running_gateway(models.repository, models.label) as gateway:
        settings = _settings(options, models, images, threads, gateway, shm_regions)
        for key, value in settings.items():
            out.write(f"{key}: {value}\n")
        out.flush()
        with contextlib.ExitStack() as stack:
            scenarios = _scenarios(baseline, gateway, shm_regions, stack)
            results = measure(scenarios, images, options)
        with contextlib.ExitStack() as stack:
            sides = _floor_sides(models, gateway, threads[spec.RECOGNIZER], options, stack)
            floor = measure_floor(sides, crops_bgr, options)
    report = BenchReport(
        options=options,
        scenarios=scenarios,
        images=images,
        results=results,
        floor=tuple(floor),
        machine=machine,
        settings=settings,
        date=date,
        commit=git_commit(),
        duration_s=time.monotonic() - started,
    )
    out.write(format_text(report))
    return report
