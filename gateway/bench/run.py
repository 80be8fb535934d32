"""run_bench: models, images, Triton and the gateway, measurement, the terminal table."""

from __future__ import annotations

import datetime
import time
from typing import TextIO

from ..triton import spec
from .images import bench_images
from .measure import measure
from .models import configured_intra_op_threads, prepare_models
from .options import BenchOptions
from .report import (
    BenchReport,
    describe_machine,
    format_text,
    git_commit,
)
from .scenarios import InsightFaceInProcess, RestDetect, Scenario, running_gateway

# Issue 3's targets for the REST gateway against InsightFace in process.
REST_P50_RATIO_MAX = 1.10
REST_THROUGHPUT_RATIO_MIN = 1.0


def run_bench(options: BenchOptions, out: TextIO) -> BenchReport:
    """Prepare models and images, start Triton and the gateway, measure, write the table to `out`."""
    started = time.monotonic()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = describe_machine()
    models = prepare_models(options.cache_dir, options.profile, fresh=options.fresh_models)
    threads = {
        name: configured_intra_op_threads(models.repository, name)
        for name in (spec.DETECTOR, spec.RECOGNIZER)
    }
    images = bench_images()
    baseline = InsightFaceInProcess(models, threads[spec.DETECTOR], threads[spec.RECOGNIZER])
    with running_gateway(models) as gateway:
        rest = RestDetect(gateway.url, gateway.api_key)
        scenarios = (
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
                p50_ratio_max=REST_P50_RATIO_MAX,
                throughput_ratio_min=REST_THROUGHPUT_RATIO_MIN,
            ),
        )
        settings = {
            "models": f"{options.profile} synthetic ({models.label}), from {models.repository.parent}",
            "images": ", ".join(
                f"{image.name} ({len(image.jpeg) / 1024:.0f} KiB JPEG, {image.planted} planted faces)"
                for image in images
            ),
            "onnxruntime threads": (
                f"intra_op_num_threads detector={threads[spec.DETECTOR]}, "
                f"recognizer={threads[spec.RECOGNIZER]} on both sides, read from the embedded "
                "configs (0 = onnxruntime's default: one per physical core); inter-op and "
                "execution mode at their defaults"
            ),
            "onnxruntime CPU memory arena": "on in process (InsightFace's session defaults), "
            "off in Triton (model.py)",
            "Triton": f"{gateway.triton_version}, embedded (nvidia-pytriton), Python backend "
            "running onnxruntime on CPU; embedded configs as generated",
            "gateway": "`facegate gateway` (one uvicorn process) with Settings defaults "
            "(cpu_threads 4, API key required, JSON logs at WARNING)",
        }
        for key, value in settings.items():
            out.write(f"{key}: {value}\n")
        out.flush()
        try:
            results = measure(scenarios, images, options)
        finally:
            rest.close()
    report = BenchReport(
        options=options,
        scenarios=scenarios,
        images=images,
        results=results,
        machine=machine,
        settings=settings,
        date=date,
        commit=git_commit(),
        duration_s=time.monotonic() - started,
    )
    out.write(format_text(report))
    return report
