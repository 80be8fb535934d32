"""attributes=true against insightface 2.1's Attribute.get on the same genderage file.

Scenes of coloured squares (the tiny genderage reads the crop's mean colour) and framed
photos: the gateway's gender must equal insightface's, its age be within a year.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from .oracle import InsightFaceOracle
from .scenes import Square, square_scene
from .test_insightface_fidelity import BgrImage, match_faces, photo_case, png, spread_squares

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:`estimate` is deprecated:FutureWarning"),
]

MAX_AGE_DIFF = 1


def tinted(img: BgrImage, seed: int) -> BgrImage:
    """The scene tinted (bright enough for the tiny detector), so that genders and ages vary."""
    rng = np.random.default_rng(seed)
    out = img.astype(np.float32) * rng.uniform(0.8, 1.0, 3)
    return np.clip(out, 0, 255).astype(np.uint8)


def cases() -> list[BgrImage]:
    scenes = [
        tinted(square_scene(w, h, spread_squares(w, h)), seed)
        for seed, (w, h) in enumerate([(640, 640), (1280, 960), (500, 900), (777, 333)])
    ]
    pair = square_scene(640, 640, [Square(160, 320, 32, seed=5), Square(480, 320, 32, seed=6)])
    # Left face bluish (female for the tiny model), right face reddish (male).
    pair[:, :320] = (pair[:, :320] * np.array([1.0, 0.9, 0.8])).astype(np.uint8)
    pair[:, 320:] = (pair[:, 320:] * np.array([0.8, 0.9, 1.0])).astype(np.uint8)
    return [*scenes, pair, photo_case("astronaut", "framed")[0], photo_case("coffee", "framed")[0]]


def test_gender_and_age_match_insightface(client: httpx.Client, oracle: InsightFaceOracle) -> None:
    genders_seen: set[str] = set()
    compared = 0
    for img in cases():
        faces = oracle.faces(img)
        want_sex, want_age = oracle.gender_age(img, faces)

        response = client.post(
            "/v1/detect", params={"attributes": "true"}, files={"image": ("i.png", png(img))}
        )

        assert response.status_code == 200, response.text
        got = response.json()["faces"]
        assert len(got) == len(faces)
        for r, c in match_faces(got, faces.boxes):
            assert got[r]["gender"] == want_sex[c]
            assert abs(got[r]["age"] - want_age[c]) <= MAX_AGE_DIFF, (got[r], want_age[c])
            genders_seen.add(want_sex[c])
            compared += 1
    # The comparison must not pass vacuously: many faces, both answers.
    assert compared >= 15 and genders_seen == {"F", "M"}, (compared, genders_seen)
