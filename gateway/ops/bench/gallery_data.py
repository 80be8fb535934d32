"""Synthetic galleries for `facegate gallery bench`: what is stored, what is asked, the truth.

Two distributions, because an ANN index's recall depends on the data far more than on its
settings:

- uniform: one face per subject, every face a uniform random unit vector. The worst case for
  any graph index: all pairwise cosines concentrate at 0 +- 1/sqrt(512) = 0.044, so the true
  neighbours 2..10 of a query are barely closer than the rest. The issue's measurement.
- clustered: several faces per subject, the way a real gallery is enrolled. Subject centres
  are drawn with a decaying variance spectrum (variance of dimension i ~ 1/(i + 10): an
  effective dimension of ~160 instead of 512, so impostor cosines spread to ~0.06 instead of
  0.044); each face is its centre plus isotropic noise such that two faces of one subject
  have cosine ~0.65 (the range of two photos of one person under ArcFace). These are model
  assumptions, not measured statistics of real embeddings: no real weights are reachable here.

In both, a query is "another photo of an enrolled subject": for uniform, a stored face plus
noise (cosine ~0.7 to it); for clustered, a new sample of the subject (cosine ~0.65 to each
of its faces). Every vector is rounded to half precision, as stored, so an exact search in
numpy of the same values is the ground truth of the index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.gallery_ports import EMBEDDING_DIM

DISTRIBUTIONS = ("uniform", "clustered")
# Variance of centre dimension i is 1/(i + SPECTRUM_OFFSET): a power-law spectrum.
SPECTRUM_OFFSET = 10.0
# |noise| / |centre| of one face: two faces of a subject then have cosine 1/(1 + 0.73^2) ~ 0.65.
FACE_NOISE = 0.73
# A uniform query is its stored face plus a unit noise vector: cosine ~0.7 to that face.
QUERY_NOISE = 1.0


@dataclass(frozen=True)
class SyntheticGallery:
    """Faces to store and queries to ask, with the subject each query truly shows.

    faces: float32 (N, 512) unit rows (half-precision values); face_subjects: (N,) int64
    subject number of each face; queries: float32 (Q, 512) unit rows; query_subjects: (Q,).
    """

    faces: npt.NDArray[np.float32]
    face_subjects: npt.NDArray[np.int64]
    queries: npt.NDArray[np.float32]
    query_subjects: npt.NDArray[np.int64]


def _unit_rows(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _half(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return x.astype(np.float16).astype(np.float32)


def _random_units(n: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    return _unit_rows(rng.standard_normal((n, EMBEDDING_DIM), dtype=np.float32))


def uniform_gallery(faces: int, queries: int, rng: np.random.Generator) -> SyntheticGallery:
    """One uniform random face per subject; queries are stored faces plus noise."""
    stored = _half(_random_units(faces, rng))
    picks = rng.choice(faces, size=min(queries, faces), replace=False).astype(np.int64)
    asked = _unit_rows(stored[picks] + QUERY_NOISE * _random_units(len(picks), rng))
    return SyntheticGallery(stored, np.arange(faces, dtype=np.int64), asked, picks)


def _face_samples(
    centres: npt.NDArray[np.float32], rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    return _unit_rows(centres + FACE_NOISE * _random_units(len(centres), rng))


def clustered_gallery(
    faces: int, queries: int, faces_per_subject: int, rng: np.random.Generator
) -> SyntheticGallery:
    """Subjects with faces_per_subject faces each (the last may have fewer); queries are new
    samples of enrolled subjects."""
    subjects = -(-faces // faces_per_subject)
    scale = (1.0 / np.sqrt(np.arange(EMBEDDING_DIM) + SPECTRUM_OFFSET)).astype(np.float32)
    centres = np.empty((subjects, EMBEDDING_DIM), dtype=np.float32)
    # In chunks: at 1M faces the float32 temporaries of one draw would double the memory.
    chunk = 50_000
    for lo in range(0, subjects, chunk):
        n = min(chunk, subjects - lo)
        centres[lo : lo + n] = _unit_rows(
            rng.standard_normal((n, EMBEDDING_DIM), dtype=np.float32) * scale
        )
    face_subjects = np.arange(faces, dtype=np.int64) // faces_per_subject
    stored = np.empty((faces, EMBEDDING_DIM), dtype=np.float32)
    for lo in range(0, faces, chunk):
        stored[lo : lo + chunk] = _half(_face_samples(centres[face_subjects[lo : lo + chunk]], rng))
    picks = rng.choice(subjects, size=min(queries, subjects), replace=False).astype(np.int64)
    return SyntheticGallery(stored, face_subjects, _face_samples(centres[picks], rng), picks)


def make_gallery(
    distribution: str, faces: int, queries: int, faces_per_subject: int, seed: int
) -> SyntheticGallery:
    """The named distribution (DISTRIBUTIONS), reproducible from seed."""
    rng = np.random.default_rng(seed)
    if distribution == "uniform":
        return uniform_gallery(faces, queries, rng)
    if distribution == "clustered":
        return clustered_gallery(faces, queries, faces_per_subject, rng)
    raise ValueError(f"distribution is one of {DISTRIBUTIONS}, not {distribution!r}")


def exact_top(
    stored: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], k: int
) -> npt.NDArray[np.int64]:
    """Row indexes of the k most similar stored vectors per query, best first (exact).

    stored (N, D) and queries (Q, D) float32 unit rows; returns int64 (Q, k).
    """
    out = np.empty((len(queries), k), dtype=np.int64)
    for lo in range(0, len(queries), 64):
        sims = queries[lo : lo + 64] @ stored.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        out[lo : lo + 64] = np.take_along_axis(top, order, axis=1)
    return out
