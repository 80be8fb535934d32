"""Grouping faces into people (processing/grouping.py) on modelled embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.ops.bench.people_data import (
    SAME_COSINE,
    adjusted_rand_index,
    modelled_people,
    score_grouping,
)
from gateway.processing.grouping import (
    UNLABELLED,
    find_candidates,
    group_faces,
    neighbour_pairs,
)


def _group(embeddings: np.ndarray, min_faces: int = 2, labels: np.ndarray | None = None):
    return group_faces(embeddings, neighbour_pairs(embeddings, 0.5), 0.5, min_faces, labels)


def test_the_model_holds_what_it_says() -> None:
    data = modelled_people(seed=7, people=30, singletons=10)
    cos = data.embeddings @ data.embeddings.T
    same = data.people[:, None] == data.people[None, :]
    off_diagonal = ~np.eye(len(cos), dtype=bool)
    # Half-precision storage moves a cosine by ~1e-3 at most.
    assert cos[same & off_diagonal].min() >= SAME_COSINE[0] - 2e-3
    assert cos[same & off_diagonal].max() <= SAME_COSINE[1] + 2e-3
    assert cos[~same].max() < 0.2
    assert data.singleton.sum() == 10


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_modelled_people_are_grouped_and_singletons_left_alone(seed: int) -> None:
    data = modelled_people(seed=seed, people=80, singletons=40)
    score = score_grouping(data, _group(data.embeddings).groups)
    assert score.ari >= 0.95
    assert score.singletons_ungrouped >= 0.9


def test_look_alikes_stay_apart_where_single_linkage_chains_them() -> None:
    data = modelled_people(seed=3, people=40, singletons=10, lookalike_pairs=20)
    grouping = _group(data.embeddings)
    assert score_grouping(data, grouping.groups).merged_groups <= 2
    # The candidates alone (DBSCAN) chain most of the look-alike pairs: the refinement matters.
    size = len(data.embeddings)
    roots = find_candidates(
        size, neighbour_pairs(data.embeddings, 0.5), 2, np.full(size, UNLABELLED)
    )
    chained = sum(len(np.unique(data.people[roots == r])) > 1 for r in np.unique(roots))
    assert chained >= 10


def test_groups_are_ordered_largest_first_and_cover_every_face_once() -> None:
    data = modelled_people(seed=4, people=20, singletons=5)
    grouping = _group(data.embeddings)
    members = grouping.members()
    sizes = [len(m) for m in members]
    assert sizes == sorted(sizes, reverse=True) and min(sizes) >= 2
    every = np.concatenate([*members, grouping.ungrouped()])
    assert sorted(every.tolist()) == list(range(len(data.embeddings)))


def test_min_faces_leaves_smaller_groups_ungrouped() -> None:
    data = modelled_people(seed=5, people=30, singletons=0)
    grouping = _group(data.embeddings, min_faces=6)
    counts = np.bincount(data.people)
    for members in grouping.members():
        assert len(members) >= 6
    small = np.isin(data.people, np.flatnonzero(counts < 6))
    assert (grouping.groups[small] < 0).all()


def test_labelled_faces_never_merge_and_unlabelled_join_their_person() -> None:
    data = modelled_people(seed=6, people=10, singletons=5, lookalike_pairs=5)
    labels = np.full(len(data.people), UNLABELLED)
    # Two faces of each person carry the person as a label: even look-alikes stay apart.
    for person in range(10):
        labels[np.flatnonzero(data.people == person)[:2]] = person
    grouping = _group(data.embeddings, min_faces=3, labels=labels)
    for members in grouping.members():
        assert len(np.unique(labels[members][labels[members] >= 0])) <= 1
    people = ~data.singleton
    assert (grouping.labels[people] == data.people[people]).mean() >= 0.95


def test_nothing_and_strangers_group_to_nothing() -> None:
    empty = np.zeros((0, 512), np.float32)
    assert _group(empty).members() == [] and _group(empty).ungrouped().size == 0
    rng = np.random.default_rng(0)
    strangers = rng.standard_normal((50, 512)).astype(np.float32)
    strangers /= np.linalg.norm(strangers, axis=1, keepdims=True)
    grouping = _group(strangers)
    assert grouping.members() == [] and grouping.ungrouped().tolist() == list(range(50))


def test_adjusted_rand_index_matches_known_values() -> None:
    truth = np.array([0, 0, 1, 1])
    assert adjusted_rand_index(truth, np.array([5, 5, 7, 7])) == pytest.approx(1.0)
    # Hubert and Arabie's ARI of this pair: -0.5 (scikit-learn agrees).
    assert adjusted_rand_index(truth, np.array([0, 1, 0, 1])) == pytest.approx(-0.5)


def test_an_unrefined_candidate_with_two_labels_assigns_nobody(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = modelled_people(seed=9, people=2, singletons=0, faces_per_person=(5, 5))
    labels = np.full(10, UNLABELLED)
    labels[np.flatnonzero(data.people == 0)[0]] = 0
    labels[np.flatnonzero(data.people == 1)[0]] = 1
    # One bridging pair makes a single candidate of both people.
    pairs = neighbour_pairs(data.embeddings, 0.5)
    a, b = np.flatnonzero(data.people == 0)[1], np.flatnonzero(data.people == 1)[1]
    bridged = type(pairs)(
        np.append(pairs.first, min(a, b)),
        np.append(pairs.second, max(a, b)),
        np.append(pairs.distances, 0.4),
    )
    refined = group_faces(data.embeddings, bridged, 0.5, 2, labels)
    assert (refined.labels[labels == UNLABELLED] == data.people[labels == UNLABELLED]).all()
    monkeypatch.setattr("gateway.processing.grouping.MAX_REFINED_FACES", 5)
    unrefined = group_faces(data.embeddings, bridged, 0.5, 2, labels)
    assert (unrefined.groups[labels == UNLABELLED] < 0).all()


def test_an_unrefined_candidate_without_labels_groups_nobody(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = modelled_people(seed=9, people=1, singletons=0, faces_per_person=(6, 6))
    pairs = neighbour_pairs(data.embeddings, 0.5)
    assert (group_faces(data.embeddings, pairs, 0.5, 2).groups == 0).all()
    # Too large to refine: no new group from a candidate single linkage may have chained.
    monkeypatch.setattr("gateway.processing.grouping.MAX_REFINED_FACES", 5)
    assert (group_faces(data.embeddings, pairs, 0.5, 2).groups < 0).all()
