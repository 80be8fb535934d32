"""Annotated dependencies: the settings, the pipeline and the Triton backend from app state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..config import Settings
from ..pipeline import Pipeline
from ..swapper import SwapperManager
from ..swapping import SwapPipeline
from ..triton.client import TritonFaceModels


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


SettingsDep = Annotated[Settings, Depends(get_settings)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
ModelsDep = Annotated[TritonFaceModels, Depends(get_models)]
SwapPipelineDep = Annotated[SwapPipeline, Depends(get_swap_pipeline)]
SwapManagerDep = Annotated[SwapperManager, Depends(get_swap_manager)]
