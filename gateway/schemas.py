"""Request and response models: the API boundary only."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ImagePayload(BaseModel):
    """JSON alternative to multipart: one base64-encoded image."""

    image: str = Field(description="base64 of the image file (JPEG, PNG, WebP or BMP)")


class BatchPayload(BaseModel):
    images: list[str] = Field(description="base64 image files, at most 16 by default")


class VerifyPayload(BaseModel):
    image_a: str = Field(description="base64 image file")
    image_b: str = Field(description="base64 image file")


class LivenessOut(BaseModel):
    score: float | None = Field(
        None, description="live probability; absent when the face was not scored (see reason)"
    )
    is_live: bool | None = Field(
        None, description="score >= liveness_threshold; absent when the face was not scored"
    )
    reason: str | None = Field(None, description="why the face was not scored")


class PoseOut(BaseModel):
    pitch: float = Field(description="degrees; insightface's Landmark (1k3d68) convention")
    yaw: float = Field(description="degrees; insightface's Landmark (1k3d68) convention")
    roll: float = Field(description="degrees; insightface's Landmark (1k3d68) convention")


class QualityOut(BaseModel):
    norm: float | None = Field(None, description="the embedding's norm before normalisation")
    size: float = Field(description="shorter box side in px")
    sharpness: float = Field(
        description="variance of the Laplacian of the smoothed grey 112x112 aligned crop, where it "
        "lies inside the image (docs/QUALITY.md)"
    )
    pose: float | None = Field(
        None, description="max(|yaw|, |pitch|) in degrees; absent when 1k3d68 is not served"
    )
    for_recognition: str = Field(description='"low", "medium" or "high" (docs/QUALITY.md)')


class FaceOut(BaseModel):
    bbox: list[float] = Field(description="x1, y1, x2, y2 in original-image pixels")
    score: float
    landmarks: list[list[float]] | None = Field(
        None, description="5 points [x, y]: left eye, right eye, nose, left and right mouth corner"
    )
    embedding: list[float] | None = Field(
        None, description="512 floats, L2-normalised (only with embed=true)"
    )
    embedding_norm: float | None = Field(
        None, description="norm of the raw embedding (a rough quality signal)"
    )
    gender: str | None = Field(None, description='"F" or "M" (only with attributes=true)')
    age: int | None = Field(None, description="estimated age in years (only with attributes=true)")
    liveness: LivenessOut | None = Field(None, description="only with liveness=true")
    landmarks_2d_106: list[list[float]] | None = Field(
        None, description="106 points [x, y] from 2d106det (only with dense_landmarks=true)"
    )
    landmarks_3d_68: list[list[float]] | None = Field(
        None,
        description="68 points [x, y, z] from 1k3d68, z at the image's pixel scale "
        "(only with dense_landmarks=true)",
    )
    pose: PoseOut | None = Field(None, description="head pose (only with pose=true)")
    quality: QualityOut | None = Field(None, description="only with quality=true")


class DetectResponse(BaseModel):
    width: int
    height: int
    faces: list[FaceOut] = Field(description="in descending score")
    timings_ms: dict[str, float] = Field(default_factory=dict)

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "width": 640,
                    "height": 480,
                    "faces": [
                        {
                            "bbox": [201.3, 88.0, 297.9, 215.4],
                            "score": 0.87,
                            "landmarks": [
                                [228.1, 139.9],
                                [271.0, 139.1],
                                [250.2, 163.5],
                                [232.4, 186.7],
                                [268.0, 186.1],
                            ],
                        }
                    ],
                    "timings_ms": {"decode": 2.1, "detector": 31.5, "postprocess": 1.2},
                }
            ]
        }
    }


class BatchResponse(BaseModel):
    results: list[DetectResponse] = Field(description="one per image, in request order")
    timings_ms: dict[str, float] = Field(default_factory=dict)


class VerifyResponse(BaseModel):
    similarity: float = Field(description="cosine similarity of the two embeddings")
    match: bool
    threshold: float
    face_a: FaceOut
    face_b: FaceOut
    timings_ms: dict[str, float] = Field(default_factory=dict)

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "similarity": 0.62,
                    "match": True,
                    "threshold": 0.3,
                    "face_a": {"bbox": [10, 10, 90, 110], "score": 0.9},
                    "face_b": {"bbox": [30, 20, 120, 140], "score": 0.8},
                }
            ]
        }
    }


class EmbedResponse(BaseModel):
    embeddings: list[list[float]] = Field(
        description="one L2-normalised 512-d vector per crop, in request order"
    )
    embedding_norms: list[float] = Field(description="norms of the raw embeddings")
    timings_ms: dict[str, float] = Field(default_factory=dict)


class ModelState(BaseModel):
    name: str
    state: str = Field(description="as Triton reports it: READY, UNAVAILABLE, LOADING, ...")


class ModelsResponse(BaseModel):
    models: list[ModelState]
    swapper: SwapperStatusOut | None = None
    label: str = Field("", description="e.g. 'synthetic: not a face model'")


class SwapperStatusOut(BaseModel):
    state: str = Field(description="UNAVAILABLE, LOADING, READY or UNLOADING")
    load_count: int = Field(description="loads this gateway has asked Triton for")
    last_load_s: float | None = Field(None, description="duration of the last load")
    last_error: str = ""


class Health(BaseModel):
    status: str
    detail: str = ""


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable: see the error tree in errors.py")
    message: str = Field(description="what went wrong and what to do next")
    request_id: str | None = Field(
        None, description="only on 500 internal_error: quote it when reporting the error"
    )


class ErrorResponse(BaseModel):
    error: ErrorDetail
