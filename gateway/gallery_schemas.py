"""Pydantic request/response models of the gallery routes (the API boundary only)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from gateway.schemas import FaceOut, QualityOut

COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_METADATA_KEYS = 64
Metadata = dict[str, Any]


def _small(metadata: Metadata | None) -> Metadata | None:
    if metadata is not None and len(metadata) > MAX_METADATA_KEYS:
        raise ValueError(f"metadata takes at most {MAX_METADATA_KEYS} keys")
    return metadata


class CollectionIn(BaseModel):
    name: str = Field(pattern=COLLECTION_NAME_PATTERN, description="letters, digits, _ . -")
    metadata: Metadata = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> CollectionIn:
        _small(self.metadata)
        return self


class CollectionOut(BaseModel):
    name: str
    metadata: Metadata
    recognizer_sha256: str = Field(
        description="sha256 of the prepared recognizer it was built with"
    )
    created_at: str
    subjects: int
    faces: int


class CollectionList(BaseModel):
    collections: list[CollectionOut]


class SubjectIn(BaseModel):
    metadata: Metadata | None = Field(
        None, description="replaces the subject's metadata when given"
    )
    merge_from: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="move every face of this subject here and erase it: names a group "
        "clustering made (unknown-0001 -> a name), or merges two subjects",
    )

    @model_validator(mode="after")
    def _check(self) -> SubjectIn:
        _small(self.metadata)
        return self


class SubjectOut(BaseModel):
    subject: str
    metadata: Metadata
    faces: int
    face_ids: list[str] | None = None


class SubjectPageOut(BaseModel):
    subjects: list[SubjectOut]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page")


class FacesIn(BaseModel):
    """JSON enrolment: base64 image(s), or embedding(s) computed with this gateway's recognizer."""

    image: str | None = None
    images: list[str] | None = None
    embedding: list[float] | None = None
    embeddings: list[list[float]] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> FacesIn:
        given = [f for f in ("image", "images", "embedding", "embeddings") if getattr(self, f)]
        if len(given) != 1:
            raise ValueError("send exactly one of image, images, embedding, embeddings")
        return self


class EnrolledFaceOut(BaseModel):
    id: str
    bbox: list[float] | None = None
    score: float | None = None


class EnrolResponse(BaseModel):
    faces: list[EnrolledFaceOut]


class IdentifyIn(BaseModel):
    """JSON identify: a base64 image, or embeddings."""

    image: str | None = None
    embeddings: list[list[float]] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> IdentifyIn:
        if (self.image is None) == (self.embeddings is None):
            raise ValueError("send exactly one of image, embeddings")
        return self


class MatchOut(BaseModel):
    subject: str
    similarity: float
    face_id: str


class IdentifiedFaceOut(BaseModel):
    bbox: list[float] | None = None
    score: float | None = None
    landmarks: list[list[float]] | None = None
    quality: QualityOut | None = Field(
        None, description="the probe face's quality (image queries), to ignore poor probes"
    )
    matches: list[MatchOut]


class IdentifyResponse(BaseModel):
    faces: list[IdentifiedFaceOut]


class GalleryVerifyIn(BaseModel):
    image: str


class GalleryVerifyResponse(BaseModel):
    similarity: float
    match: bool
    threshold: float
    face: FaceOut


class ErasureJobOut(BaseModel):
    """An erasure that goes on after its DELETE answered 202 (GET /v1/gallery/jobs/{id})."""

    id: str
    kind: str = Field(description="collection or subject")
    collection: str
    subject: str | None = Field(None, description="while running only (a name is personal data)")
    state: str = Field(description="running or done")
    subjects_removed: int
    faces_removed: int | None = Field(None, description="faces so far (subject erasure only)")
    created_at: str
    finished_at: str | None = None
