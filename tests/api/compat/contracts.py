"""The compatibility responses as their clients read them, stricter than the clients.

InsightFace-REST's pydantic client models (ifr_clients/schemas.py) require every key to
be present and boxes to be integers; Immich's server types its FacialRecognitionResponse
(machine-learning.repository.ts). Here: no extra or missing keys, strict types.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt, StrictStr


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class IfrFace(Strict):
    bbox: list[StrictInt]
    landmarks: list[list[StrictInt]] | None
    prob: StrictFloat
    size: StrictInt
    num_det: StrictInt
    scale: StrictFloat
    norm: StrictFloat | None
    vec: list[StrictFloat] | None
    facedata: StrictStr | None
    gender: StrictInt | None
    age: StrictInt | None
    mask: bool | None
    mask_probs: dict[str, StrictFloat] | None


class IfrImage(Strict):
    status: StrictStr
    took_ms: StrictFloat
    faces: list[IfrFace]
    traceback: StrictStr | None


class IfrTook(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # verbose_timings adds stages
    total_ms: StrictFloat


class IfrResponse(Strict):
    took: IfrTook
    data: list[IfrImage]


class ImmichBox(Strict):
    x1: StrictInt
    y1: StrictInt
    x2: StrictInt
    y2: StrictInt


class ImmichFace(Strict):
    boundingBox: ImmichBox
    embedding: StrictStr
    score: StrictFloat


class ImmichResponse(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
    faces: list[ImmichFace]
    imageHeight: StrictInt
    imageWidth: StrictInt

    @classmethod
    def parse(cls, body: dict[str, object]) -> ImmichResponse:
        body = dict(body)
        faces = body.pop("facial-recognition")
        return cls.model_validate({"faces": faces, **body})
