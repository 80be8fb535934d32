"""Liveness, readiness and model states."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.api.deps import ModelStatusDep, SettingsDep, require_user
from gateway.schemas import Health, ModelsResponse, ModelState, SwapperStatusOut
from gateway.supervision import POSTGRES, TRITON

router = APIRouter()


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

    A restarting gallery database leaves the gateway ready (detection works without it):
    status "degraded" says so, and gallery routes answer 503 meanwhile.
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
