"""/v1/embed against insightface 2.1's ArcFaceONNX.get_feat on the same aligned crops.

The crops are what insightface's own norm_crop makes from the oracle's landmarks on scenes
and photos, so they are real aligned faces for the tiny models; the gateway must give the
same unit vectors (cosine >= 0.9999), without running its detector.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from insightface.utils import face_align

from .oracle import InsightFaceOracle
from .scenes import square_scene
from .test_insightface_fidelity import photo_case, png, spread_squares

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:`estimate` is deprecated:FutureWarning"),
]

MIN_COSINE = 0.9999


def test_embed_equals_arcface_get_feat_on_norm_crops(
    client: httpx.Client, oracle: InsightFaceOracle
) -> None:
    images = [
        square_scene(1280, 960, spread_squares(1280, 960)),
        photo_case("astronaut", "framed")[0],
    ]
    crops = []
    for img in images:
        for kps in oracle.faces(img).kps:
            crops.append(face_align.norm_crop(img, kps, image_size=112))
    assert len(crops) >= 6
    want = oracle.embed_crops(crops)

    response = client.post(
        "/v1/embed",
        files=[("images", (f"{i}.png", png(c), "image/png")) for i, c in enumerate(crops)],
    )

    assert response.status_code == 200, response.text
    got = np.array(response.json()["embeddings"], np.float64)
    cosine = (got * want).sum(axis=1) / np.linalg.norm(got, axis=1)
    assert cosine.min() >= MIN_COSINE, cosine
