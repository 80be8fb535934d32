"""Embedding arithmetic invariants."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.processing import average_identity, cosine_similarity, l2_normalize


def test_l2_normalize_gives_unit_rows_and_keeps_direction():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(6, 512)).astype(np.float32) * rng.uniform(0.1, 50, (6, 1))

    unit = l2_normalize(raw)

    assert unit.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(unit * np.linalg.norm(raw, axis=1, keepdims=True), raw, rtol=1e-5)


def test_l2_normalize_zero_row_stays_zero():
    raw = np.zeros((2, 512), np.float32)
    raw[1, 0] = 3.0

    unit = l2_normalize(raw)

    assert (unit[0] == 0).all()
    assert unit[1, 0] == 1.0


def test_cosine_similarity():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 512))

    assert cosine_similarity(a, 3 * a) == pytest.approx(1.0)
    assert cosine_similarity(a, -a) == pytest.approx(-1.0)
    assert cosine_similarity(a, b) == pytest.approx(
        float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    )
    assert cosine_similarity(a, np.zeros(512)) == 0.0
    assert isinstance(cosine_similarity(a, b), float)


def test_average_identity_is_unit_and_closer_to_members_than_they_are_apart():
    rng = np.random.default_rng(2)
    centre = rng.normal(size=512)
    members = l2_normalize(centre + 0.8 * rng.normal(size=(5, 512)))

    identity = average_identity(members)

    assert identity.shape == (512,)
    assert np.linalg.norm(identity) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(identity, l2_normalize(members.mean(axis=0)[None])[0], rtol=1e-6)
    assert cosine_similarity(identity, centre) > max(cosine_similarity(m, centre) for m in members)


def test_average_identity_needs_one_embedding():
    with pytest.raises(ValueError):
        average_identity(np.zeros((0, 512), np.float32))
