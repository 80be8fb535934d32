"""InsightFace-REST 0.9.5's /extract request and response, as its server and clients use them.

Field names, defaults and the response layout are that project's (if_rest/schemas.py
BodyExtract; the serializer in if_rest/core/face_model.py). Every face key is always
present (null when not asked for or not available), which is what its pydantic client
models (ifr_clients/schemas.py) require; boxes and landmarks are integers there.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# InsightFace-REST's own defaults (if_rest/settings.py Defaults): det_thresh 0.6 etc.
IFR_DEFAULT_THRESHOLD = 0.6
IFR_SERVER_VERSION = "0.9.5.0"


class IfrImages(BaseModel):
    """Either `data` (base64 strings, or raw bytes in a msgpack body) or `urls`."""

    data: list[str | bytes] | None = Field(
        None, description="base64 image files (a data: URL prefix is accepted), or raw bytes"
    )
    urls: list[str] | None = Field(
        None, description="paths under FACEGATE_COMPAT_IMAGES_DIR, or allow-listed http(s) URLs"
    )


class ExtractRequest(BaseModel):
    """BodyExtract. Unknown and retired fields (use_rotation, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    images: IfrImages
    threshold: float = Field(IFR_DEFAULT_THRESHOLD, ge=0.0, le=1.0)
    embed_only: bool = Field(False, description="images are aligned 112x112 face crops")
    return_face_data: bool = Field(False, description="add the aligned crop as base64 JPEG")
    return_landmarks: bool = False
    extract_embedding: bool = True
    extract_ga: bool = Field(
        False,
        description="gender (0 female, 1 male) and age from the genderage model; null where "
        "it is not installed",
    )
    detect_masks: bool = Field(False, description="mask: always null (no mask model here)")
    limit_faces: int = Field(0, ge=0, le=1000, description="keep the N most prominent (0 = all)")
    min_face_size: int = Field(0, ge=0, le=100_000, description="px, shorter box side")
    verbose_timings: bool = False
    msgpack: bool = Field(False, description="answer in msgpack")
    img_req_headers: dict[str, Any] = Field(
        default_factory=dict, description="ignored: facegate sends no custom headers"
    )


class IfrFace(BaseModel):
    """One face as InsightFace-REST serializes it."""

    bbox: list[int] = Field(description="x1, y1, x2, y2, truncated to int as upstream does")
    landmarks: list[list[int]] | None = Field(description="5 [x, y], with return_landmarks")
    prob: float
    size: int = Field(description="box width in pixels")
    num_det: int = Field(description="index of the face in its image")
    scale: float = Field(description="detector pixels per original pixel")
    norm: float | None = Field(description="norm of the raw embedding")
    vec: list[float] | None = Field(description="512 floats, L2-normalised")
    facedata: str | None = Field(description="base64 JPEG of the aligned 112x112 crop")
    gender: int | None
    age: int | None
    mask: bool | None
    mask_probs: dict[str, float] | None


class IfrImage(BaseModel):
    """One image's result; a failed image has status 'failed' and the reason in traceback."""

    status: str
    took_ms: float
    faces: list[IfrFace]
    traceback: str | None = None


class ExtractResponse(BaseModel):
    took: dict[str, float] = Field(description="total_ms, and stage timings with verbose_timings")
    data: list[IfrImage] = Field(description="one per image, in request order")
