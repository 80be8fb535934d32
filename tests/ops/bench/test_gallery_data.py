"""The bench's synthetic galleries have the statistics they claim, and exact_top is exact."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.ops.bench.gallery_data import (
    FACE_NOISE,
    exact_top,
    make_gallery,
)


def test_uniform_faces_are_near_orthogonal_and_queries_near_their_face() -> None:
    g = make_gallery("uniform", 2000, 50, 1, seed=0)
    assert g.faces.shape == (2000, 512) and g.faces.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(g.faces, axis=1), 1.0, atol=2e-3)
    sims = g.faces[:200] @ g.faces[200:400].T
    assert abs(float(sims.std()) - 1 / np.sqrt(512)) < 0.005  # the concentration at 0
    own = np.einsum("ij,ij->i", g.queries, g.faces[g.query_subjects])
    assert 0.6 < float(own.mean()) < 0.8


def test_clustered_faces_group_by_subject() -> None:
    g = make_gallery("clustered", 5000, 100, 5, seed=1)
    assert np.array_equal(g.face_subjects[:10], [0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    same = np.einsum("ij,ij->i", g.faces[0:5000:5], g.faces[1:5000:5])
    assert abs(float(same.mean()) - 1 / (1 + FACE_NOISE**2)) < 0.05  # two photos, one person
    impostor = g.faces[0:2500:5] @ g.faces[2500:5000:5].T
    # Wider than uniform vectors (lower effective dimension), still centred at 0.
    assert abs(float(impostor.mean())) < 0.01
    assert 0.05 < float(impostor.std()) < 0.08
    # A query's best face belongs to its subject (the identification the bench reports).
    best = exact_top(g.faces, g.queries, 1)[:, 0]
    assert float(np.mean(g.face_subjects[best] == g.query_subjects)) > 0.98


def test_exact_top_is_the_sorted_brute_force() -> None:
    rng = np.random.default_rng(2)
    stored = rng.standard_normal((300, 16)).astype(np.float32)
    queries = rng.standard_normal((70, 16)).astype(np.float32)
    expected = np.argsort(-(queries @ stored.T), axis=1)[:, :5]
    assert np.array_equal(exact_top(stored, queries, 5), expected)


def test_unknown_distribution_is_refused() -> None:
    with pytest.raises(ValueError, match="uniform"):
        make_gallery("gaussian", 10, 1, 1, seed=0)
