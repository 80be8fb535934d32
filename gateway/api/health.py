"""Liveness, readiness and model states."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from gateway.api.deps import ModelStatusDep, SettingsDep, require_user
from gateway.errors import FacegateError, NotFound
from gateway.schemas import Health, ModelsResponse, ModelState, SwapperStatusOut
from gateway.supervision import POSTGRES, TRITON

log = logging.getLogger(__name__)
router = APIRouter()
# Readiness asks the gallery database at most this often (one cheap query per interval,
# however many probes arrive), and waits this long for the answer: a hung database must not
# make the probe itself time out (the chart's readiness probe allows 5 s).
GALLERY_CHECK_S = 10.0
GALLERY_CHECK_WAIT_S = 2.0
# Not a valid collection name (a space), so never found: the lookup touches one index.
GALLERY_PROBE_NAME = "facegate readiness probe"


class GalleryHealth:
    """The gallery database as readiness reports it, with the gauge facegate_gallery_up.

    A broken gallery (unreachable, wrong password, tables missing) leaves the gateway ready:
    detection does not need it. Readiness says "degraded" with the database's error instead,
    so a reinstall that lost the password or a database nobody migrated shows up there and in
    the metric rather than only as 503s on gallery routes.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._up = Gauge(
            "facegate_gallery_up",
            "1 while the gallery database answers readiness's check, 0 while it does not",
            registry=registry,
        )
        self._problem: str | None = "the gallery database has not been checked yet"
        self._checked_at = -math.inf
        self._check: asyncio.Task[str | None] | None = None
        self._up.set(0)

    async def problem(self, state: Any) -> str | None:
        """What is wrong with the gallery now (None: it answers); bounded by GALLERY_CHECK_WAIT_S."""
        gallery = getattr(state, "gallery", None)
        if gallery is None:
            # Still connecting (run_gallery retries): its last error, if any.
            reason = getattr(state, "gallery_reason", "") or "connecting to the gallery database"
            self._record(reason)
            return reason
        due = time.monotonic() - self._checked_at >= GALLERY_CHECK_S
        if due and self._check is None:
            self._check = asyncio.create_task(self._probe(gallery), name="gallery-readiness")
        # Overlapping probes share one check; each keeps its own reference, since the first to
        # resume clears self._check.
        check = self._check
        if check is not None:
            try:
                await asyncio.wait_for(asyncio.shield(check), GALLERY_CHECK_WAIT_S)
            except TimeoutError:
                self._record(f"the gallery database has not answered in {GALLERY_CHECK_WAIT_S:g} s")
                return self._problem
            if self._check is check:
                self._record(check.result())
                self._check = None
                self._checked_at = time.monotonic()
        return self._problem

    @staticmethod
    async def _probe(gallery: Any) -> str | None:
        try:
            await gallery.get_collection(GALLERY_PROBE_NAME)
        except NotFound:
            return None
        except FacegateError as exc:
            return exc.message
        except Exception as exc:
            # A defect in the check must not take the pod out of service: report it instead.
            log.exception("the gallery readiness check failed")
            return f"the gallery check failed ({type(exc).__name__}): see the gateway's log"
        return None

    def _record(self, problem: str | None) -> None:
        if problem != self._problem:
            if problem is None:
                log.info("the gallery database answers again")
            else:
                log.warning("gallery degraded: %s", problem)
        self._problem = problem
        self._up.set(0 if problem else 1)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this gateway process."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/health/live", response_model=Health, tags=["health"], responses={503: {"model": Health}}
)
async def live(request: Request) -> Health | JSONResponse:
    """The gateway process answers; 503 once a supervised server cannot be brought back."""
    fatal = request.app.state.servers.fatal
    if fatal:
        return JSONResponse(Health(status="failed", detail=fatal).model_dump(), 503)
    return Health(status="ok")


@router.get(
    "/health/ready", response_model=Health, tags=["health"], responses={503: {"model": Health}}
)
async def ready(request: Request, status: ModelStatusDep) -> Health | JSONResponse:
    """Ready only while Triton is reachable and the detector and recognizer are READY.

    A restarting or broken gallery database leaves the gateway ready (detection works without
    it): status "degraded" says so with the database's error (and facegate_gallery_up is 0),
    and gallery routes answer 503 meanwhile.
    """
    if request.app.state.admission.draining:
        return JSONResponse(Health(status="draining").model_dump(), 503)
    down = request.app.state.servers.down(TRITON)
    if down is not None:
        detail = f"Triton is restarting: {down.reason}"
        return JSONResponse(Health(status="unavailable", detail=detail).model_dump(), 503)
    readiness = await status.readiness()
    if not readiness.ready:
        return JSONResponse(Health(status="unavailable", detail=readiness.detail).model_dump(), 503)
    gallery_down = request.app.state.servers.down(POSTGRES)
    if gallery_down is not None:
        detail = f"the gallery database is restarting: {gallery_down.reason}"
        return Health(status="degraded", detail=detail)
    gallery_health: GalleryHealth | None = getattr(request.app.state, "gallery_health", None)
    if gallery_health is not None:
        problem = await gallery_health.problem(request.app.state)
        if problem is not None:
            return Health(status="degraded", detail=f"gallery unavailable: {problem}")
    return Health(status="ready")


@router.get(
    "/v1/models",
    response_model=ModelsResponse,
    tags=["models"],
    dependencies=[Depends(require_user)],
)
async def list_models(status: ModelStatusDep, settings: SettingsDep) -> ModelsResponse:
    """Each model's state as Triton reports it; the swapper shows LOADING while it loads."""
    states = await status.states()
    return ModelsResponse(
        models=[ModelState(name=name, state=state) for name, state in states.items()],
        swapper=SwapperStatusOut.model_validate(status.swapper, from_attributes=True),
        label=settings.models_label,
    )
