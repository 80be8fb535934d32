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


class StoredFaceOut(BaseModel):
    id: str
    subject: str | None = Field(description="null: unassigned")
    created: str = Field(description="when it was enrolled (ISO 8601)")


class FacePageOut(BaseModel):
    faces: list[StoredFaceOut] = Field(description="in enrolment order")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class FaceSubjectIn(BaseModel):
    subject: str | None = Field(
        min_length=1,
        max_length=256,
        description="assign to this subject (created if absent); null unassigns",
    )


class ClusterResponse(BaseModel):
    subjects_created: list[str] = Field(description="new subjects, unknown-0001 ...")
    assigned: int = Field(description="faces this run assigned (to new or existing subjects)")
    unassigned: int = Field(description="faces without a subject after the run")
    pending: int = Field(
        description="new faces this run did not reach in its time: call again while > 0"
    )
