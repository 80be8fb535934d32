"""Face embedding arithmetic: normalisation, similarity, identity averaging."""

from __future__ import annotations

import numpy as np

from gateway.processing._types import AnyFloatArray, Float32Array


def l2_normalize(embeddings: AnyFloatArray) -> Float32Array:
    """Scale each row of `embeddings` (N, D) to unit length: float32 (N, D).

    An all-zero row stays zero instead of becoming NaN.
    """
    vectors = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0).astype(np.float32)


def cosine_similarity(a: AnyFloatArray, b: AnyFloatArray) -> float:
    """Cosine of the angle between embeddings `a` and `b`, both (D,): a float in [-1, 1].

    0.0 when either is all zeros.
    """
    vec_a = np.asarray(a, dtype=np.float64).ravel()
    vec_b = np.asarray(b, dtype=np.float64).ravel()
    norms = float(np.linalg.norm(vec_a) * np.linalg.norm(vec_b))
    if norms == 0.0:
        return 0.0
    # Rounding can push the cosine of parallel vectors a hair past 1.
    return float(np.clip(np.dot(vec_a, vec_b) / norms, -1.0, 1.0))


def average_identity(normed_embeddings: AnyFloatArray) -> Float32Array:
    """One identity from several normalised embeddings (K, D) of the same person: (D,).

    The mean direction, renormalised to unit length (zero if they cancel out).
    Raises ValueError when K is 0.
    """
    if len(normed_embeddings) == 0:
        raise ValueError("average_identity needs at least one embedding")
    mean = np.asarray(normed_embeddings, dtype=np.float32).mean(axis=0)
    unit: Float32Array = l2_normalize(mean[None, :])[0]
    return unit
