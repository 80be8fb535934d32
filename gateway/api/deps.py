"""Annotated dependencies: the settings and the services from app state, and the API keys.

Routes reach inference only through the services (gateway.service); they never see the
backend that implements the ports.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.auth import ApiKeys, Caller, Scope, presented_key
from gateway.config import Settings
from gateway.service.pipeline import Pipeline
from gateway.service.services import Services
from gateway.service.status import ModelStatus
from gateway.service.swap import SwapPipeline
from gateway.service.swapper_lifecycle import SwapperManager


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_pipeline(request: Request) -> Pipeline:
    return _services(request).pipeline


def get_model_status(request: Request) -> ModelStatus:
    return _services(request).status


def get_swap_pipeline(request: Request) -> SwapPipeline:
    return _services(request).swap


def get_swap_manager(request: Request) -> SwapperManager:
    return _services(request).swapper


def _authorize(request: Request, needed: Scope) -> None:
    keys: ApiKeys = request.app.state.api_keys
    request.state.caller = keys.authorize(
        presented_key(request.headers.get("x-api-key"), request.headers.get("authorization")),
        needed,
    )


def get_caller(request: Request) -> Caller:
    """Who calls (set by the key check of the route's dependencies)."""
    caller: Caller = request.state.caller
    return caller


def require_user(request: Request) -> None:
    """Any valid API key (user or admin scope)."""
    _authorize(request, "user")


def require_enroll(request: Request) -> None:
    """An API key with the enroll scope (or admin): changes to the gallery."""
    _authorize(request, "enroll")


def require_admin(request: Request) -> None:
    """An API key with the admin scope."""
    _authorize(request, "admin")


SettingsDep = Annotated[Settings, Depends(get_settings)]
CallerDep = Annotated[Caller, Depends(get_caller)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
ModelStatusDep = Annotated[ModelStatus, Depends(get_model_status)]
SwapPipelineDep = Annotated[SwapPipeline, Depends(get_swap_pipeline)]
SwapManagerDep = Annotated[SwapperManager, Depends(get_swap_manager)]
