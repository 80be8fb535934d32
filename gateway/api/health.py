"""Liveness, readiness and model states."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.api.deps import ModelsDep, SettingsDep, SwapManagerDep, require_user
from gateway.errors import FacegateError
from gateway.schemas import Health, ModelsResponse, ModelState, SwapperStatusOut
from gateway.supervision import TRITON

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
async def ready(
    request: Request, models: ModelsDep, settings: SettingsDep
) -> Health | JSONResponse:
    """Ready only while Triton is reachable and the detector and recognizer are READY."""
    if request.app.state.admission.draining:
        return JSONResponse(Health(status="draining").model_dump(), 503)
    down = request.app.state.servers.down(TRITON)
    if down is not None:
        detail = f"Triton is restarting: {down.reason}"
        return JSONResponse(Health(status="unavailable", detail=detail).model_dump(), 503)
    try:
        states = await models.model_states()
    except FacegateError as exc:
        return JSONResponse(Health(status="unavailable", detail=exc.message).model_dump(), 503)
    needed = (settings.detector_model, settings.recognizer_model)
    missing = [name for name in needed if states.get(name) != "READY"]
    if missing:
        detail = ", ".join(f"{name} is {states.get(name)}" for name in missing)
        return JSONResponse(Health(status="unavailable", detail=detail).model_dump(), 503)
    return Health(status="ready")


@router.get(
    "/v1/models",
    response_model=ModelsResponse,
    tags=["models"],
    dependencies=[Depends(require_user)],
)
async def list_models(
    models: ModelsDep, settings: SettingsDep, manager: SwapManagerDep
) -> ModelsResponse:
    """Each model's state as Triton reports it; the swapper shows LOADING while it loads."""
    states = await models.model_states()
    swapper = manager.status
    if swapper.state in ("LOADING", "UNLOADING"):
        states[settings.swapper_model] = swapper.state
    return ModelsResponse(
        models=[ModelState(name=name, state=state) for name, state in states.items()],
        swapper=SwapperStatusOut.from_status(swapper),
        label=settings.models_label,
    )
