"""A collection's min_quality: checked in one place, never silently off, and not bypassed by
enrolling embeddings (no database: a fake store)."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any, cast

import numpy as np
import pytest

from gateway.errors import InvalidParameter
from gateway.gallery_ports import Collection
from gateway.ops.gallery_io import check_file
from gateway.service.gallery import Gallery, collection_min_quality

SHA = "ab" * 32


@pytest.mark.parametrize("value", ["best", "", 3, None, ["high"]])
def test_an_invalid_stored_min_quality_is_a_422_not_a_gate_switched_off(value: object) -> None:
    with pytest.raises(InvalidParameter) as caught:
        collection_min_quality({"min_quality": value})
    assert "min_quality must be one of low, medium, high" in caught.value.message


def test_valid_and_absent_min_quality() -> None:
    assert collection_min_quality({"min_quality": "medium"}) == "medium"
    assert collection_min_quality({"other": 1}) is None


def test_import_refuses_an_invalid_min_quality() -> None:
    header = {
        "format": "facegate-gallery/1",
        "collection": "c",
        "recognizer_sha256": SHA,
        "metadata": {"min_quality": "best"},
    }
    check = check_file(io.StringIO(json.dumps(header) + "\n"), None)
    assert any("line 1: metadata: min_quality must be" in p for p in check.problems), check


def test_import_takes_a_subject_whose_free_form_metadata_has_a_min_quality_key() -> None:
    # Only a collection's min_quality is a gate; a subject's metadata is the caller's own.
    header = {"format": "facegate-gallery/1", "collection": "c", "recognizer_sha256": SHA}
    face = {
        "subject": "ann",
        "embedding": [1.0] + [0.0] * 511,
        "subject_metadata": {"min_quality": 3},
    }
    check = check_file(io.StringIO(json.dumps(header) + "\n" + json.dumps(face) + "\n"), None)
    assert not check.problems, check.problems
    assert check.subjects == {"ann": {"min_quality": 3}}


class _Store:
    def __init__(self, metadata: dict[str, object]) -> None:
        self.metadata = metadata
        self.added = 0

    async def collection_recognizer(self, collection: str) -> str:
        return SHA

    async def get_collection(self, name: str) -> Collection:
        return Collection(name, self.metadata, SHA, "now")

    async def add_faces(self, collection: str, grouped: Any) -> list[list[str]]:
        self.added += 1
        return [[f"f{i}" for i in range(len(faces))] for _, faces in grouped]


def _enrol_embedding(store: _Store) -> Any:
    async def sha() -> str:
        return SHA

    gallery = Gallery(cast(Any, store), cast(Any, object()), sha)
    embedding = np.ones((1, 512), np.float32) / np.sqrt(512)
    return asyncio.run(gallery.enroll_embeddings("lobby", "p1", embedding))


def test_a_gated_collection_refuses_embeddings_and_says_why() -> None:
    store = _Store({"min_quality": "medium"})
    with pytest.raises(InvalidParameter) as caught:
        _enrol_embedding(store)
    assert store.added == 0
    message = caught.value.message
    assert "min_quality=medium" in message and "embeddings carry no quality" in message
    open_store = _Store({})
    assert len(_enrol_embedding(open_store)) == 1 and open_store.added == 1
