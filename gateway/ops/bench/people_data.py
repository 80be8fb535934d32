"""Modelled faces of people for grouping (/v1/group, collection cluster): data and scores.

The model (issue 25's, not measured statistics of real embeddings: no real weights are
reachable here): each person has 2..12 faces whose pairwise cosines all lie in 0.5..0.75;
two different people's faces have cosine below 0.2; singletons are people with one face.
A person is a random unit centre c; a face is r*c + sqrt(1 - r^2)*u with u a random unit
vector orthogonal to c and r in 0.725..0.855, so two faces have cosine ~ r1*r2 (0.53..0.73)
plus a small term from u1.u2; a person whose faces leave 0.5..0.75 is drawn again.

Look-alikes (optional, to measure merges): pairs of people whose centres have cosine
`lookalike_cosine`; their cross cosines are then ~ r1*r2*lookalike_cosine, at 0.75 about
0.39..0.55: some cross pairs are closer than 0.5 (distance 0.5), the case where single
linkage chains two people into one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.gallery_ports import EMBEDDING_DIM

SAME_COSINE = (0.5, 0.75)
# Alignment of a face with its person's centre; r1*r2 then spans the middle of SAME_COSINE.
ALIGNMENT = (0.725, 0.855)


@dataclass(frozen=True)
class ModelledPeople:
    """embeddings float32 (N, 512) unit rows (half-precision values, as a gallery stores
    them), shuffled; people int64 (N,) the person of each face; singleton bool (N,)."""

    embeddings: npt.NDArray[np.float32]
    people: npt.NDArray[np.int64]
    singleton: npt.NDArray[np.bool_]


def _unit(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    unit: npt.NDArray[np.float64] = x / np.linalg.norm(x, axis=-1, keepdims=True)
    return unit


def _person_faces(
    rng: np.random.Generator, centre: npt.NDArray[np.float64], count: int
) -> npt.NDArray[np.float64]:
    while True:
        noise = rng.standard_normal((count, len(centre)))
        noise -= np.outer(noise @ centre, centre)
        r = rng.uniform(*ALIGNMENT, size=(count, 1))
        faces = _unit(r * centre + np.sqrt(1 - r * r) * _unit(noise))
        cos = (faces @ faces.T)[np.triu_indices(count, k=1)]
        if count == 1 or ((cos >= SAME_COSINE[0]) & (cos <= SAME_COSINE[1])).all():
            return faces


def modelled_people(
    seed: int,
    people: int,
    singletons: int,
    faces_per_person: tuple[int, int] = (2, 12),
    lookalike_pairs: int = 0,
    lookalike_cosine: float = 0.75,
) -> ModelledPeople:
    """`people` people with faces_per_person (inclusive) faces each, then `singletons`
    one-face people; the first 2*lookalike_pairs people come in look-alike pairs."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((people + singletons, EMBEDDING_DIM)))
    for p in range(min(lookalike_pairs, people // 2)):
        a, b = centres[2 * p], centres[2 * p + 1]
        b = b - (b @ a) * a
        centres[2 * p + 1] = lookalike_cosine * a + np.sqrt(1 - lookalike_cosine**2) * _unit(b)
    rows, owners = [], []
    for person, centre in enumerate(centres):
        count = int(rng.integers(faces_per_person[0], faces_per_person[1] + 1))
        count = count if person < people else 1
        rows.append(_person_faces(rng, centre, count))
        owners += [person] * count
    order = rng.permutation(len(owners))
    embeddings = np.concatenate(rows)[order].astype(np.float16).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    owner = np.asarray(owners, dtype=np.int64)[order]
    return ModelledPeople(embeddings, owner, owner >= people)


def adjusted_rand_index(
    truth: npt.NDArray[np.intp] | npt.NDArray[np.int64],
    found: npt.NDArray[np.intp] | npt.NDArray[np.int64],
) -> float:
    """Hubert and Arabie's adjusted Rand index of two labelings of the same items (N,)."""
    _, t = np.unique(truth, return_inverse=True)
    _, f = np.unique(found, return_inverse=True)
    table = np.zeros((t.max() + 1, f.max() + 1), dtype=np.int64)
    np.add.at(table, (t, f), 1)

    def pairs(x: npt.NDArray[np.int64]) -> float:
        return float((x * (x - 1) // 2).sum())

    index = pairs(table)
    rows, cols, total = (
        pairs(table.sum(axis=1)),
        pairs(table.sum(axis=0)),
        pairs(np.array([len(t)])),
    )
    expected = rows * cols / total if total else 0.0
    maximum = (rows + cols) / 2
    return 1.0 if maximum == expected else (index - expected) / (maximum - expected)


@dataclass(frozen=True)
class GroupingScore:
    """How a grouping compares with the people: ARI (ungrouped faces count as alone),
    merged groups (holding faces of 2+ people), split people (2+ faces spread over 2+ groups
    or partly ungrouped), and the share of singletons left ungrouped."""

    ari: float
    merged_groups: int
    split_people: int
    singletons_ungrouped: float


def score_grouping(
    data: ModelledPeople, groups: npt.NDArray[np.intp] | npt.NDArray[np.int64]
) -> GroupingScore:
    """Score `groups` (N,), a group number per face or -1 for ungrouped."""
    found = np.where(groups >= 0, groups, groups.max(initial=0) + 1 + np.arange(len(groups)))
    merged = sum(
        len(np.unique(data.people[groups == g])) > 1 for g in np.unique(groups[groups >= 0])
    )
    split = 0
    for person in np.unique(data.people[~data.singleton]):
        theirs = found[data.people == person]
        split += len(np.unique(theirs)) > 1
    alone = groups[data.singleton] < 0
    return GroupingScore(
        ari=adjusted_rand_index(data.people, found),
        merged_groups=int(merged),
        split_people=int(split),
        singletons_ungrouped=float(alone.mean()) if alone.size else 1.0,
    )
