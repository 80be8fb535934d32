"""Pydantic request/response models of /v1/group and the collection cluster routes."""

from __future__ import annotations

from pydantic import BaseModel, Field

from gateway.defaults import MAX_GROUP_EMBEDDINGS


class GroupIn(BaseModel):
    """JSON /v1/group: the embeddings to group (multipart sends `images` instead)."""

    embeddings: list[list[float]] = Field(
        min_length=2,
        max_length=MAX_GROUP_EMBEDDINGS,
        description="2 to 1000 embeddings of 512 floats (normalised here)",
    )


class FaceRef(BaseModel):
    """A face of an uploaded image: its image, its index there (by score) and box."""

    image: int = Field(description="the image's index in the request")
    face: int = Field(description="the face's index in that image, highest score first")
    bbox: list[float] = Field(description="x1, y1, x2, y2 in original-image pixels")


class GroupResponse(BaseModel):
    groups: list[list[int | FaceRef]] = Field(
        description="each group's faces (an embedding's index, or a FaceRef for images), "
        "largest group first"
    )
    ungrouped: list[int | FaceRef] = Field(description="faces in no group")

    model_config = {
        "json_schema_extra": {"examples": [{"groups": [[0, 2, 5], [1, 4]], "ungrouped": [3]}]}
    }
