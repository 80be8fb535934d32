"""FaceGalleryClient against the real gateway: every method, errors as the gateway's tree."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from gateway import errors
from gateway.client.gallery import FaceGalleryClient

from .conftest import ENROLL_KEY, USER_KEY
from .people import SAME_PERSON, person_image

pytestmark = [pytest.mark.gallery, pytest.mark.integration]


def test_gallery_client_round_trip(gallery_gateway: str) -> None:
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    with (
        FaceGalleryClient(gallery_gateway, api_key=ENROLL_KEY) as admin,
        FaceGalleryClient(gallery_gateway, api_key=USER_KEY) as user,
    ):
        admin.create_collection(name, {"k": "v"})
        with pytest.raises(errors.Conflict):
            admin.create_collection(name)
        assert admin.put_subject(name, "judy", {"team": 1}) is True
        assert admin.put_subject(name, "judy") is False
        ids = admin.enrol(name, "judy", [person_image(81), person_image(81, (192, 256))])
        assert sorted(user.get_subject(name, "judy")["face_ids"]) == sorted(ids)
        (face,) = user.identify(name, person_image(81, (448, 448)), threshold=SAME_PERSON)
        assert face.matches[0].subject == "judy" and face.bbox is not None
        similarity, match = user.verify_subject(name, "judy", person_image(81))
        assert match and similarity == pytest.approx(1.0, abs=2e-3)
        vectors = np.random.default_rng(3).standard_normal((2, 512)).astype(np.float32)
        admin.enrol_embeddings(name, "ken", vectors)
        (hit,) = user.identify_embeddings(name, vectors[:1], top_k=2, threshold=-1)
        assert hit.matches[0].subject == "ken" and hit.bbox is None
        for i in range(5):
            admin.put_subject(name, f"z{i}")
        assert [s["subject"] for s in user.subjects(name, page_size=2)] == [
            "judy",
            "ken",
            *(f"z{i}" for i in range(5)),
        ]
        with pytest.raises(errors.Forbidden) as denied:
            user.delete_subject(name, "judy")
        assert denied.value.status_code == 403
        with pytest.raises(errors.NoFaceFound):
            admin.enrol(name, "judy", [np.zeros((64, 64, 3), np.uint8)])
        admin.delete_face(name, ids[0])
        admin.delete_subject(name, "judy")
        with pytest.raises(errors.NotFound):
            user.get_subject(name, "judy")
        assert any(c["name"] == name for c in user.list_collections())
        admin.delete_collection(name)
        with pytest.raises(errors.NotFound):
            user.identify(name, person_image(81))
