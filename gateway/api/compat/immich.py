"""Immich machine learning drop-in, faces only: POST /predict and GET /ping.

The Immich server posts multipart with an `entries` text field (JSON: task -> model type
-> {modelName, options}) and the image as a file part named `image` (a Blob, so its
filename is "blob"). Only the `facial-recognition` task with `detection` and
`recognition` is served; CLIP, OCR and text inputs are refused with 422 so Immich logs a
reason instead of storing nothing. The answer is Immich's FacialRecognitionResponse:
boxes rounded to whole pixels, the detector score, and the raw (not normalised) 512-d
embedding as a JSON string, which is what Immich stores.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from gateway.api.compat.access import require_compat_client
from gateway.api.deps import PipelineDep, SettingsDep
from gateway.api.uploads import parse_form, read_body
from gateway.config import Settings
from gateway.errors import InvalidInput, InvalidParameter, PayloadTooLarge, UnsupportedMediaType
from gateway.service.pipeline import DetectOptions, ImageFaces, Timings

router = APIRouter(tags=["compat: Immich"], dependencies=[Depends(require_compat_client)])

TASK = "facial-recognition"
# Immich's FaceDetector default (min_score=0.7) when options.minScore is absent.
IMMICH_DEFAULT_MIN_SCORE = 0.7
# Room for the entries field and multipart framing around one image.
FORM_OVERHEAD_BYTES = 1024 * 1024


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")

    modelName: str = Field(min_length=1)  # Immich's wire name
    options: dict[str, Any] = Field(default_factory=dict)


class FacialRecognitionEntries(BaseModel):
    model_config = ConfigDict(extra="forbid")

    detection: ModelEntry
    recognition: ModelEntry


def normalise_prefix(prefix: str) -> str:
    """'immich/' -> '/immich'; '' and '/' -> ''."""
    stripped = prefix.strip().strip("/")
    return f"/{stripped}" if stripped else ""


def _served_names(settings: Settings) -> set[str]:
    return {name.strip() for name in settings.compat_immich_models.split(",") if name.strip()}


def parse_entries(text: str, settings: Settings) -> tuple[FacialRecognitionEntries, float]:
    """The facial-recognition entries and the detection threshold; 422 for anything else."""
    try:
        request = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidParameter("'entries' is not valid JSON") from exc
    if not isinstance(request, dict):
        raise InvalidParameter("'entries' must be a JSON object of task -> model type -> entry")
    others = sorted(str(task) for task in request if task != TASK)
    if others:
        raise InvalidParameter(
            f"task(s) {others} are not served here: facegate answers only '{TASK}'; "
            "point Immich's other machine-learning jobs at an Immich ML service"
        )
    if TASK not in request:
        raise InvalidParameter(f"'entries' names no task; facegate answers '{TASK}'")
    try:
        entries = FacialRecognitionEntries.model_validate(request[TASK])
    except ValidationError as exc:
        raise InvalidParameter(
            f"'{TASK}' needs exactly 'detection' and 'recognition' entries with a modelName: "
            f"{str(exc)[:300]}"
        ) from exc
    served = _served_names(settings)
    for entry in (entries.detection, entries.recognition):
        # Immich names models with or without their organisation ("immich-app/buffalo_l").
        if entry.modelName.rsplit("/", 1)[-1] not in served:
            raise InvalidParameter(
                f"model '{entry.modelName}' is not served here; this facegate serves "
                f"{sorted(served)} (FACEGATE_COMPAT_IMMICH_MODELS): choose it in Immich's "
                "facial recognition settings"
            )
    min_score = entries.detection.options.get("minScore", IMMICH_DEFAULT_MIN_SCORE)
    if isinstance(min_score, bool) or not isinstance(min_score, int | float):
        raise InvalidParameter("detection options.minScore must be a number")
    if not 0.0 <= float(min_score) <= 1.0:
        raise InvalidParameter("detection options.minScore must be between 0 and 1")
    return entries, float(min_score)


def _faces_out(faces: ImageFaces) -> list[dict[str, Any]]:
    assert faces.embeddings is not None and faces.embedding_norms is not None
    dets = faces.detections
    # Immich rounds boxes with numpy (half to even) and stores the raw recognizer output.
    boxes = np.round(dets.boxes).astype(np.int64)
    raw = faces.embeddings * faces.embedding_norms[:, None]
    return [
        {
            "boundingBox": dict(zip(("x1", "y1", "x2", "y2"), boxes[i].tolist(), strict=True)),
            "embedding": json.dumps(raw[i].tolist()),
            "score": float(dets.scores[i]),
        }
        for i in range(len(dets))
    ]


async def _read_form(request: Request, settings: Settings) -> tuple[str, bytes]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        raise UnsupportedMediaType("send /predict as multipart/form-data (entries + image)")
    body = await read_body(request, settings.max_image_bytes + FORM_OVERHEAD_BYTES)
    form = await parse_form(request, body)
    try:
        if form.get("text") is not None:
            raise InvalidParameter(
                "text inputs (CLIP search) are not served here: facegate answers faces only"
            )
        if form.get("assetId") is not None and form.get("image") is None:
            raise InvalidParameter("asset-id-only models are not served: send the image bytes")
        entries, image = form.get("entries"), form.get("image")
        if not isinstance(entries, str):
            raise InvalidParameter("missing 'entries' text field (JSON)")
        if not isinstance(image, UploadFile):
            raise InvalidParameter("missing 'image' file part")
        data = await image.read()
    finally:
        await form.close()
    if not data:
        raise InvalidInput("'image' is empty: send the image file's bytes")
    if len(data) > settings.max_image_bytes:
        raise PayloadTooLarge(f"'image' is over the {settings.max_image_bytes} byte limit")
    return entries, data


@router.post("/predict", summary="Immich machine learning /predict (facial-recognition only)")
async def predict(request: Request, settings: SettingsDep, pipeline: PipelineDep) -> JSONResponse:
    """Faces of one image with boxes, scores and raw embeddings, in Immich's layout."""
    entries_text, data = await _read_form(request, settings)
    _, min_score = parse_entries(entries_text, settings)
    timings = Timings()
    (faces,) = await pipeline.detect([data], DetectOptions(min_score, embed=True), timings)
    content = {TASK: _faces_out(faces), "imageHeight": faces.height, "imageWidth": faces.width}
    return JSONResponse(content)


@router.get("/ping", summary="Immich machine learning /ping")
async def ping() -> PlainTextResponse:
    """'pong': Immich's availability check."""
    return PlainTextResponse("pong")
