"""The gateway's services, built once per process over one inference backend."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from gateway.config import Settings
from gateway.metrics import Metrics
from gateway.ports import InferenceBackend, ModelControl
from gateway.service.pipeline import Pipeline
from gateway.service.status import ModelStatus
from gateway.service.swap import SwapPipeline
from gateway.service.swapper_lifecycle import SwapperManager, SwapperPolicy


@dataclass(frozen=True)
class Services:
    """What the routes use: they never see the backend itself."""

    pipeline: Pipeline
    swapper: SwapperManager
    swap: SwapPipeline
    status: ModelStatus


def build_services(
    backend: InferenceBackend,
    settings: Settings,
    executor: ThreadPoolExecutor,
    metrics: Metrics | None = None,
    *,
    control: ModelControl | None = None,
    server_epoch: Callable[[], int] = lambda: 0,
) -> Services:
    """Wire the pipeline, the swapper's lifecycle, the swap pipeline and the status view.

    control: what loads and unloads the swapper, when not the backend itself (every Triton
    replica behind one target: triton/replicas.py).
    server_epoch: grows when a supervisor restarts Triton (the swapper is then unloaded).
    """
    pipeline = Pipeline(
        backend,
        executor,
        max_pixels=settings.max_image_pixels,
        nms_iou=settings.nms_iou,
        reduced_decode=settings.reduced_decode,
        allowed_det_sizes_px=settings.det_sizes_allowed_px,
    )
    policy = SwapperPolicy(settings.swapper_idle_ttl_s, settings.swapper_load_timeout_s)
    swapper = SwapperManager(
        control or backend,
        settings.swapper_model,
        policy,
        metrics=metrics,
        server_epoch=server_epoch,
    )
    return Services(
        pipeline=pipeline,
        swapper=swapper,
        swap=SwapPipeline(pipeline, backend, swapper, load_wait_s=settings.swapper_wait_s),
        status=ModelStatus(
            backend,
            swapper,
            (settings.detector_model, settings.recognizer_model),
            settings.swapper_model,
        ),
    )
