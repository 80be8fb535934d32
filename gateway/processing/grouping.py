"""Grouping face embeddings into people: DBSCAN-style candidates, average-linkage refinement.

Two stages, because each alone fails a known way on real libraries:

1. Candidates (DBSCAN over a neighbour graph, as Immich does): a face with at least
   `min_faces - 1` neighbours within `max_distance` is a core face; core faces within
   `max_distance` of each other share a candidate, and a border face (a neighbour of a core
   face but not core itself) joins the candidate of its nearest core neighbour. Faces with no
   core neighbour stay alone. This needs only neighbour lists, so a gallery's index can supply
   them; but it is single linkage: one close pair of look-alikes chains two people into one.
2. Refinement (average linkage inside each candidate): clusters merge, closest first, while
   the mean cosine distance over all their cross pairs is within `max_distance`. One
   look-alike pair no longer merges two people; a person's faces, all within `max_distance`
   of each other, still end as one group.

Faces may carry a fixed label (a subject they are assigned to): faces of one label start as
one cluster and are core, and two clusters of different labels never merge; so unlabelled
faces join at most one subject, and labelled ones never move.

Cosine distance is 1 - cosine similarity of L2-normalised embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.processing._types import Float32Array, Float64Array, IndexArray

# Candidates larger than this are not refined (a dense m x m matrix): they stay whole, or,
# holding faces of two labels, leave their unlabelled faces ungrouped.
MAX_REFINED_FACES = 2000
UNLABELLED = -1


@dataclass(frozen=True)
class NeighbourPairs:
    """Undirected pairs of faces within the grouping distance: `first`, `second` int (E,)
    indices into the faces, `distances` float (E,) cosine distances; each pair once."""

    first: IndexArray
    second: IndexArray
    distances: Float64Array


@dataclass(frozen=True)
class Grouping:
    """Group per face: `groups` int (N,), -1 for a face left ungrouped, groups numbered
    0.. from the largest (ties: the one with the lowest face index first); `labels` int (N,)
    the fixed label each group carries (-1 for none), per face."""

    groups: IndexArray
    labels: IndexArray

    def members(self) -> list[IndexArray]:
        """Face indices of each group, largest group first, indices ascending."""
        count = int(self.groups.max()) + 1 if self.groups.size else 0
        order = np.argsort(self.groups, kind="stable")
        bounds = np.searchsorted(self.groups[order], np.arange(count + 1)).tolist()
        return [order[bounds[g] : bounds[g + 1]] for g in range(count)]

    def ungrouped(self) -> IndexArray:
        """Indices of the faces in no group, ascending."""
        return np.flatnonzero(self.groups < 0)


def neighbour_pairs(embeddings: Float32Array, max_distance: float) -> NeighbourPairs:
    """Every pair of rows of `embeddings` (N, D), L2-normalised, within `max_distance`.

    All pairs: O(N^2) memory, meant for a request's faces (N <= a few thousand); a gallery
    supplies pairs from its index instead.
    """
    vectors = np.asarray(embeddings, dtype=np.float32)
    distances = 1.0 - (vectors @ vectors.T).astype(np.float64)
    first, second = np.nonzero(np.triu(distances <= max_distance, k=1))
    return NeighbourPairs(first, second, distances[first, second])


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = np.arange(size)

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = int(self.parent[root])
        while self.parent[item] != root:
            self.parent[item], item = root, int(self.parent[item])
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def roots(self) -> IndexArray:
        return np.array([self.find(i) for i in range(len(self.parent))], dtype=np.intp)


def find_candidates(
    size: int, pairs: NeighbourPairs, min_faces: int, labels: IndexArray
) -> IndexArray:
    """Stage 1: a candidate root per face (int (N,)); a face alone is its own root."""
    degree = np.bincount(pairs.first, minlength=size) + np.bincount(pairs.second, minlength=size)
    core = (degree + 1 >= min_faces) | (labels != UNLABELLED)
    sets = _UnionFind(size)
    for a, b in zip(pairs.first.tolist(), pairs.second.tolist(), strict=True):
        if core[a] and core[b]:
            sets.union(a, b)
    # A border face joins the candidate of its nearest core neighbour.
    nearest = np.full(size, np.inf)
    nearest_core = np.full(size, -1)
    for a, b, d in zip(
        pairs.first.tolist(), pairs.second.tolist(), pairs.distances.tolist(), strict=True
    ):
        for face, other in ((a, b), (b, a)):
            if not core[face] and core[other] and d < nearest[face]:
                nearest[face], nearest_core[face] = d, other
    for face in np.flatnonzero(nearest_core >= 0).tolist():
        sets.union(int(nearest_core[face]), face)
    return sets.roots()


def _average_linkage(
    distances: Float64Array, labels: IndexArray, max_distance: float
) -> IndexArray:
    """Stage 2 on one candidate: a cluster id per face (int (m,)).

    `distances` (m, m) cosine distances; faces of one label start merged, clusters of two
    labels never merge. Keeps, per row, its nearest cluster so a merge costs O(m) mostly.
    """
    m = len(labels)
    # Initial clusters: one per label, one per unlabelled face.
    start = np.arange(m)
    for label in np.unique(labels[labels != UNLABELLED]).tolist():
        same = np.flatnonzero(labels == label)
        start[same] = same[0]
    seeds, cluster_of = np.unique(start, return_inverse=True)
    k = len(seeds)
    membership = np.zeros((k, m))
    membership[cluster_of, np.arange(m)] = 1.0
    sizes = membership.sum(axis=1)
    pairwise = distances.copy()
    np.fill_diagonal(pairwise, 0.0)
    dist = membership @ pairwise @ membership.T / np.outer(sizes, sizes)
    cluster_label = labels[seeds].copy()
    labelled = cluster_label != UNLABELLED
    dist[np.ix_(labelled, labelled)] = np.inf
    np.fill_diagonal(dist, np.inf)

    alive = np.ones(k, dtype=bool)
    nearest = dist.argmin(axis=1)
    nearest_d = dist[np.arange(k), nearest]
    merged_into = np.arange(k)
    while k > 1:
        i = int(nearest_d.argmin())
        if not nearest_d[i] <= max_distance:
            break
        j = int(nearest[i])
        # Lance-Williams for average linkage; inf (cannot-link) stays inf.
        with np.errstate(invalid="ignore"):
            row = (sizes[i] * dist[i] + sizes[j] * dist[j]) / (sizes[i] + sizes[j])
        row[~alive] = np.inf
        row[i] = row[j] = np.inf
        if cluster_label[j] != UNLABELLED:
            cluster_label[i] = cluster_label[j]
        sizes[i] += sizes[j]
        dist[i, :] = dist[:, i] = row
        dist[j, :] = dist[:, j] = np.inf
        alive[j] = False
        merged_into[merged_into == j] = i
        nearest_d[j] = np.inf
        nearest[i] = int(row.argmin())
        nearest_d[i] = row[nearest[i]]
        stale = np.flatnonzero(alive & ((nearest == i) | (nearest == j)))
        for r in stale.tolist():
            if r != i:
                nearest[r] = int(dist[r].argmin())
                nearest_d[r] = dist[r, nearest[r]]
        closer = alive & (row < nearest_d)
        nearest[closer] = i
        nearest_d[closer] = row[closer]
    return merged_into[cluster_of]


def group_faces(
    embeddings: Float32Array,
    pairs: NeighbourPairs,
    max_distance: float,
    min_faces: int,
    labels: IndexArray | None = None,
) -> Grouping:
    """Group faces: `embeddings` (N, D) L2-normalised, `pairs` their neighbours within
    `max_distance` (from neighbour_pairs or an index), `labels` int (N,) a fixed label per
    face or -1 (default: none).

    An unlabelled group needs at least `min_faces` faces; a group holding labelled faces
    keeps any number of unlabelled ones. Faces left over are ungrouped (-1).
    """
    size = len(embeddings)
    fixed = (
        np.full(size, UNLABELLED, dtype=np.intp)
        if labels is None
        else np.asarray(labels, dtype=np.intp)
    )
    vectors = np.asarray(embeddings, dtype=np.float32)
    roots = find_candidates(size, pairs, min_faces, fixed)
    final = np.arange(size)
    for root in np.unique(roots).tolist():
        members = np.flatnonzero(roots == root)
        if len(members) == 1:
            continue
        if len(members) > MAX_REFINED_FACES:
            # Unrefined: its faces join its label if it holds exactly one; with none or two
            # and more they stay ungrouped (single linkage may have chained several people:
            # a wrong group or join is worse than none).
            one = len(np.unique(fixed[members][fixed[members] != UNLABELLED])) == 1
            final[members] = members[0] if one else members
            continue
        sub = vectors[members]
        distances = 1.0 - (sub @ sub.T).astype(np.float64)
        local = _average_linkage(distances, fixed[members], max_distance)
        final[members] = members[local]
    return _number_groups(final, fixed, min_faces)


def _number_groups(clusters: IndexArray, labels: IndexArray, min_faces: int) -> Grouping:
    ids, inverse, counts = np.unique(clusters, return_inverse=True, return_counts=True)
    group_label = np.full(len(ids), UNLABELLED, dtype=np.intp)
    np.maximum.at(group_label, inverse, labels)
    first_face = np.full(len(ids), len(clusters))
    np.minimum.at(first_face, inverse, np.arange(len(clusters)))
    kept = (counts >= min_faces) | (group_label != UNLABELLED)
    kept &= counts > 1
    order = np.lexsort((first_face, -counts))
    order = order[kept[order]]
    number = np.full(len(ids), -1, dtype=np.intp)
    number[order] = np.arange(len(order))
    groups = number[inverse]
    return Grouping(groups, np.where(groups >= 0, group_label[inverse], UNLABELLED))
