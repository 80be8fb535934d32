"""liveness=true against insightface 2.1's liveness addon (Liveness.predict) on the same file.

Faces well inside the image get a score within 0.01 of the addon's and the same decision at
the threshold; a face cut by the image border is rejected by both, with the addon's reason.
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

MAX_SCORE_DIFF = 0.01


def cases() -> list[BgrImage]:
    dimmed = square_scene(640, 640, spread_squares(640, 640))
    # Squares touching the border: their liveness crops reach outside the image.
    edge = square_scene(640, 480, [Square(64, 64, 32, seed=3), Square(320, 256, 32, seed=4)])
    return [
        dimmed,
        (dimmed * 0.93).astype(np.uint8),
        square_scene(1280, 960, spread_squares(1280, 960)),
        edge,
        photo_case("astronaut", "framed")[0],
    ]


@pytest.mark.parametrize("threshold", [None, 0.9])
def test_liveness_matches_the_addon(
    client: httpx.Client, oracle: InsightFaceOracle, threshold: float | None
) -> None:
    live_at = 0.8 if threshold is None else threshold
    statuses: set[str] = set()
    decisions: set[bool] = set()
    compared = 0
    for img in cases():
        faces = oracle.faces(img)
        want = oracle.liveness(img, faces)
        params: dict[str, object] = {"liveness": "true"}
        if threshold is not None:
            params["liveness_threshold"] = threshold

        response = client.post("/v1/detect", params=params, files={"image": ("i.png", png(img))})

        assert response.status_code == 200, response.text
        got = response.json()["faces"]
        assert len(got) == len(faces)
        for r, c in match_faces(got, faces.boxes):
            mine, theirs = got[r]["liveness"], want[c]
            statuses.add(str(theirs["status"]))
            compared += 1
            if theirs["status"] != "ok":
                # Unscored: no score and no decision (omitted from the JSON, like other nulls).
                assert mine.get("score") is None and mine.get("is_live") is None
                assert mine["reason"] == theirs["reason"]
                continue
            assert abs(mine["score"] - float(theirs["live_score"])) <= MAX_SCORE_DIFF
            # The addon decides at 0.8; at another threshold the decision follows the score.
            expected_live = float(theirs["live_score"]) >= live_at
            if abs(float(theirs["live_score"]) - live_at) > MAX_SCORE_DIFF:
                assert mine["is_live"] is expected_live, (mine, theirs)
            decisions.add(bool(mine["is_live"]))
    assert compared >= 10
    assert statuses == {"ok", "input_rejected"}, statuses
    assert decisions == {True, False}, decisions
