"""Pure rules of the gallery: subject ranking, embedding checks, face choice, scopes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.auth import Forbidden, load_api_keys
from gateway.errors import InvalidParameter, NoFaceFound
from gateway.gallery_ports import Match
from gateway.processing import Detections
from gateway.service.gallery import best_per_subject, normalize_embeddings, pick_face

KEYS = {scope: f"{scope}-key-0123456789abcdef" for scope in ("user", "enroll", "admin")}


@given(
    st.lists(st.tuples(st.sampled_from("abcdef"), st.floats(-1, 1, allow_nan=False)), max_size=40),
    st.integers(1, 6),
    st.floats(-1, 1, allow_nan=False),
)
def test_best_per_subject(raw: list[tuple[str, float]], top_k: int, threshold: float) -> None:
    matches = [Match(s, sim, str(i)) for i, (s, sim) in enumerate(sorted(raw, key=lambda r: -r[1]))]
    ranked = best_per_subject(matches, top_k, threshold)
    subjects = [m.subject for m in ranked]
    assert len(subjects) == len(set(subjects)) <= top_k
    assert all(m.similarity >= threshold for m in ranked)
    sims = [m.similarity for m in ranked]
    assert sims == sorted(sims, reverse=True)
    for m in ranked:  # each subject's score is its best face's
        assert m.similarity == max(x.similarity for x in matches if x.subject == m.subject)
    eligible = {m.subject for m in matches if m.similarity >= threshold}
    assert len(ranked) == min(top_k, len(eligible))


def test_normalize_embeddings() -> None:
    out = normalize_embeddings([[3.0] + [0.0] * 511, [1.0] * 512])
    assert out.dtype == np.float32 and np.allclose(np.linalg.norm(out, axis=1), 1.0)
    for bad in ([[1.0] * 511], [[0.0] * 512], [[float("nan")] + [1.0] * 511], [], [["x"] * 512]):
        with pytest.raises(InvalidParameter):
            normalize_embeddings(bad)  # type: ignore[arg-type]


def test_normalize_embeddings_of_very_large_values() -> None:
    # Near float32's limit: the float32 norm overflowed to inf and the face became zeros.
    out = normalize_embeddings([[1e37] * 512, [3e38] + [0.0] * 511])
    assert np.allclose(out[0], 1 / np.sqrt(512)) and out[1][0] == 1.0
    with pytest.raises(InvalidParameter):  # beyond float32: not finite once converted
        normalize_embeddings([[1e39] + [1.0] * 511])


def test_pick_face() -> None:
    two = Detections(
        boxes=np.zeros((2, 4), np.float32),
        scores=np.array([0.9, 0.8], np.float32),
        kps=np.zeros((2, 5, 2), np.float32),
    )
    assert pick_face(two, "prominent", "image") == 0 and pick_face(two, 1, "image") == 1
    with pytest.raises(InvalidParameter):
        pick_face(two, 2, "image")
    with pytest.raises(NoFaceFound):
        pick_face(Detections.empty(), "prominent", "image 3")


def test_scopes_nest_user_enroll_admin() -> None:
    keys = load_api_keys(",".join(f"{s}:{k}" for s, k in KEYS.items()), None, False)
    allowed = {
        ("user", "user"),
        ("enroll", "user"),
        ("enroll", "enroll"),
        ("admin", "user"),
        ("admin", "enroll"),
        ("admin", "admin"),
    }
    for held, key in KEYS.items():
        for needed in ("user", "enroll", "admin"):
            if (held, needed) in allowed:
                keys.authorize(key, needed)  # type: ignore[arg-type]
            else:
                with pytest.raises(Forbidden, match=needed):
                    keys.authorize(key, needed)  # type: ignore[arg-type]
