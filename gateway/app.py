"""create_app(settings, models=None) -> FastAPI; the lifespan opens and closes the backend."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from gateway import __version__, background
from gateway.admission import Admission, parse_rate_limits
from gateway.api import clusters, console, embed, faces, gallery, group, health, render, swap
from gateway.api.compat import install_compat
from gateway.auth import load_api_keys
from gateway.config import Settings
from gateway.errors import FacegateError, install_error_handlers
from gateway.gallery_app import run_gallery
from gateway.metrics import Metrics
from gateway.middleware import GatewayMiddleware
from gateway.ports import InferenceBackend, ModelControl
from gateway.service.services import build_services
from gateway.service.swapper_lifecycle import SwapperManager
from gateway.supervision import TRITON, ServerStates
from gateway.triton.client import TritonFaceModels, TritonTarget
from gateway.triton.replicas import ReplicatedControl, swapper_control

log = logging.getLogger(__name__)
# Response headers a browser app on an allowed origin may read: beyond the CORS-safelisted
# ones, every header a route or the error tree sets (Location: a 202 erasure's job URL).
EXPOSED_HEADERS = [
    "X-Request-ID",
    "X-Faces",
    "X-Faces-Swapped",
    "Server-Timing",
    "Retry-After",
    "Location",
    "WWW-Authenticate",
]
# How long a 429 waits before it is sent (admission.py says why).
REFUSAL_PAUSE_S = 0.1


async def _preload(swapper: SwapperManager) -> None:
    try:
        await swapper.ensure_loaded()
    except FacegateError as exc:
        log.warning("swapper preload failed (it loads on first use instead): %s", exc.message)


def _triton_backend(
    settings: Settings, metrics: Metrics, servers: ServerStates
) -> tuple[TritonFaceModels, TritonFaceModels | ReplicatedControl]:
    """The Triton backend, and what loads the swapper (every replica of a multi-address target)."""
    target = TritonTarget(
        url=settings.triton_url,
        timeout_s=settings.triton_timeout_s,
        unavailable_retries=settings.triton_unavailable_retries,
        repository_key=settings.triton_repository_key.get_secret_value(),
        detector=settings.detector_model,
        recognizer=settings.recognizer_model,
        swapper=settings.swapper_model,
        genderage=settings.genderage_model,
        liveness=settings.liveness_model,
        landmark_2d_106=settings.landmark_2d_106_model,
        landmark_3d_68=settings.landmark_3d_68_model,
    )
    models = TritonFaceModels(target, metrics, servers=servers)
    # Several Triton replicas behind one target: the swapper loads on each (replicas.py).
    return models, swapper_control(target, models, metrics)


def create_app(
    settings: Settings | None = None,
    models: InferenceBackend | None = None,
    *,
    servers: ServerStates | None = None,
) -> FastAPI:
    """The gateway application; settings default to the FACEGATE_* environment.

    models: the inference backend; by default the lifespan connects to Triton (and closes
    the channel at the end). A backend passed in (a fake in tests) is left open.
    servers: the states of the servers `facegate serve` supervises (none: all count as up).
    """
    settings = settings or Settings()
    servers = servers or ServerStates()
    api_keys = load_api_keys(
        settings.api_keys.get_secret_value(), settings.api_keys_file, settings.auth_disabled
    )
    metrics = Metrics()
    admission = Admission(
        settings.max_in_flight,
        settings.request_timeout_s,
        per_key_in_flight=settings.max_in_flight_per_key or None,
        body_timeout_s=settings.body_timeout_s,
        rate_limits=parse_rate_limits(settings.key_rate_limits),
        refusal_pause_s=REFUSAL_PAUSE_S,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned: list[InferenceBackend | ReplicatedControl] = []
        if models is not None:
            backend: InferenceBackend = models
            control: ModelControl = models
        else:
            triton, replicated = _triton_backend(settings, metrics, servers)
            backend, control = triton, replicated
            owned = [triton] if replicated is triton else [replicated, triton]
        executor = ThreadPoolExecutor(settings.cpu_threads, thread_name_prefix="facegate-cpu")
        services = build_services(
            backend,
            settings,
            executor,
            metrics,
            control=control,
            server_epoch=lambda: servers.epoch(TRITON),
        )
        app.state.services = services
        swapper = services.swapper
        tasks = [
            background.start(
                background.keep_running("swapper-reaper", swapper.run_reaper), "swapper-reaper"
            )
        ]
        if settings.gallery_url.get_secret_value():
            tasks.append(
                background.start(
                    background.keep_running(
                        "gallery",
                        lambda: run_gallery(app, settings, services.pipeline, backend),
                    ),
                    "gallery",
                )
            )
        if settings.swapper_preload:
            tasks.append(background.start(_preload(swapper), "swapper-preload"))
        if settings.models_label:
            log.warning("serving %s", settings.models_label)
        log.info("gateway up: Triton at %s", settings.triton_url)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for resource in owned:
                await resource.close()
            if getattr(app.state, "gallery_store", None) is not None:
                await app.state.gallery_store.close()
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="facegate",
        version=__version__,
        description="Face detection, recognition and swapping with InsightFace's models on "
        "NVIDIA Triton. Models are licensed for non-commercial research only.",
        lifespan=lifespan,
        # /docs and /redoc come from gateway.api.console, with packaged (offline) assets.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.api_keys = api_keys
    app.state.metrics = metrics
    app.state.admission = admission
    app.state.servers = servers
    metrics.triton_restarts.set_function(lambda: float(servers.epoch(TRITON)))
    metrics.triton_down.set_function(lambda: float(servers.down(TRITON) is not None))
    if settings.gallery_url.get_secret_value():
        app.state.gallery_health = health.GalleryHealth(metrics.registry)
    for warning in api_keys.warnings:
        log.warning(warning)
    if api_keys.disabled:
        log.warning(
            "API keys are DISABLED (FACEGATE_AUTH_DISABLED=true): anyone who can reach this port can use it"
        )
    install_error_handlers(app)
    routers = [
        health.router,
        faces.router,
        embed.router,
        group.router,
        render.router,
        swap.router,
        swap.admin,
    ]
    for router in routers:
        app.include_router(router)
    install_compat(app, settings)
    for router in (gallery.router, clusters.router, console.router):
        app.include_router(router)
    routers += [gallery.router, clusters.router, console.router]
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            # Every method a route answers, so a browser app can also PUT and DELETE.
            allow_methods=_route_methods(routers),
            allow_headers=["X-API-Key", "Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=EXPOSED_HEADERS,
        )
    app.add_middleware(
        GatewayMiddleware,
        metrics=metrics,
        admission=admission,
        keys=None if api_keys.disabled else api_keys,
    )
    return app


def _route_methods(routers: list[APIRouter]) -> list[str]:
    return sorted({m for r in routers for route in r.routes for m in getattr(route, "methods", ())})
