"""FaceRestClient against the real gateway: answers as dataclasses, errors as the error tree."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.client import FaceRestClient
from gateway.errors import Unauthenticated, UndecodableImage

from ..images import encode, square_image

pytestmark = pytest.mark.integration
SQUARES = [(240, 128, 64), (96, 400, 32), (480, 320, 128)]


def test_detect_returns_exact_squares_in_descending_score(rest: FaceRestClient) -> None:
    faces = rest.detect(encode(square_image(640, 480, SQUARES[:2])), embed=True)
    assert (faces.width, faces.height) == (640, 480)
    expected = sorted([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2] for cx, cy, s in SQUARES[:2])
    assert sorted(faces.detections.boxes.tolist()) == expected
    assert list(faces.detections.scores) == sorted(faces.detections.scores, reverse=True)
    assert faces.detections.kps.shape == (2, 5, 2)
    assert faces.embeddings is not None
    np.testing.assert_allclose(np.linalg.norm(faces.embeddings, axis=1), 1.0, atol=1e-5)


def test_errors_come_back_as_the_error_tree(rest: FaceRestClient, keyed_gateway_url: str) -> None:
    with pytest.raises(UndecodableImage):
        rest.detect(encode(square_image(64, 64, []))[:60])
    with FaceRestClient(keyed_gateway_url) as anonymous, pytest.raises(Unauthenticated) as caught:
        anonymous.detect(encode(square_image(64, 64, [])))
    assert (caught.value.status_code, caught.value.code) == (401, "unauthenticated")
