"""Annotated dependencies: the settings, the pipeline and the Triton backend from app state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.auth import ApiKeys, Scope, presented_key
from gateway.config import Settings
from gateway.service.pipeline import Pipeline
from gateway.service.swap import SwapPipeline
from gateway.service.swapper_lifecycle import SwapperManager
from gateway.triton.client import TritonFaceModels


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_pipeline(request: Request) -> Pipeline:
    pipeline: Pipeline = request.app.state.pipeline
    return pipeline


def get_models(request: Request) -> TritonFaceModels:
    models: TritonFaceModels = request.app.state.models
    return models


def get_swap_pipeline(request: Request) -> SwapPipeline:
    swap: SwapPipeline = request.app.state.swap_pipeline
    return swap


def get_swap_manager(request: Request) -> SwapperManager:
    manager: SwapperManager = request.app.state.swapper
    return manager


def _authorize(request: Request, needed: Scope) -> None:
    keys: ApiKeys = request.app.state.api_keys
    keys.authorize(
        presented_key(request.headers.get("x-api-key"), request.headers.get("authorization")),
        needed,
    )


def require_user(request: Request) -> None:
    """Any valid API key (user or admin scope)."""
    _authorize(request, "user")


def require_admin(request: Request) -> None:
    """An API key with the admin scope."""
    _authorize(request, "admin")


SettingsDep = Annotated[Settings, Depends(get_settings)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
ModelsDep = Annotated[TritonFaceModels, Depends(get_models)]
SwapPipelineDep = Annotated[SwapPipeline, Depends(get_swap_pipeline)]
SwapManagerDep = Annotated[SwapperManager, Depends(get_swap_manager)]
