"""A cluster step's plan (service/clustering.py), without a store: grouping with labels,
the neighbours kept, and the write split into parts within the per-call bound."""

from __future__ import annotations

from collections import Counter

import numpy as np

from gateway.gallery_ports import ClusterOutcome, Neighbour, StoredFace
from gateway.ops.bench.people_data import modelled_people
from gateway.service.clustering import (
    LABELLED_PER_SUBJECT,
    WritePart,
    kept_neighbours,
    plan_step,
    split_outcome,
)
from gateway.service.grouping import GroupParams


def _neighbours(faces: list[StoredFace], queries: list[StoredFace]) -> list[list[Neighbour]]:
    matrix = np.stack([f.embedding for f in faces])
    out = []
    for query in queries:
        distances = 1.0 - matrix @ query.embedding
        order = np.argsort(distances)[:33]
        out.append([Neighbour(faces[i].id, faces[i].subject, float(distances[i])) for i in order])
    return out


def test_new_faces_join_their_subject_or_become_new_groups() -> None:
    data = modelled_people(seed=3, people=3, singletons=2, faces_per_person=(6, 6))
    faces = []
    for i, (vector, person) in enumerate(zip(data.embeddings, data.people, strict=True)):
        # Person 0's first two faces are assigned to "Ann"; the rest are new.
        named = person == 0 and sum(f.subject == "Ann" for f in faces) < 2
        faces.append(StoredFace(f"f{i}", "Ann" if named else None, vector))
    new = [f for f in faces if f.subject is None]
    found = _neighbours(faces, new)
    kept = kept_neighbours(new, found, 0.5)
    embeddings = {f.id: f.embedding for f in faces if f.id in kept}
    outcome = plan_step(new, found, embeddings, GroupParams(0.5, 3))
    person = {f.id: int(p) for f, p in zip(faces, data.people, strict=True)}
    assert sorted(person[i] for i in outcome.joins["Ann"]) == [0] * 4
    assert sorted(sorted({person[i] for i in g}) for g in outcome.new_groups) == [[1], [2]]
    assert sorted(outcome.seen) == sorted(f.id for f in new)


def test_a_subject_keeps_its_nearest_faces_only() -> None:
    query = StoredFace("q", None, np.zeros(512, np.float32))
    rows = [[Neighbour(f"a{i}", "A", 0.01 * i / 100) for i in range(100)]]
    kept = kept_neighbours([query], rows, 0.5)
    assert kept == {f"a{i}" for i in range(LABELLED_PER_SUBJECT)}


def test_writes_are_split_into_bounded_calls_and_seen_marked_last() -> None:
    outcome = ClusterOutcome(
        {"A": ["a"] * 600, "B": ["b"] * 2500},
        [["x"] * 300, ["y"] * 3500, ["z"] * 10],
        [f"n{i}" for i in range(1500)],
        3,
    )
    parts = split_outcome(outcome, 1000)
    calls = [p.outcome for p in parts] + [
        ClusterOutcome({"y-name": rest}, [], []) for p in parts for rest in p.rest
    ]
    for call in calls:  # no call writes more than its bound, seen marks included
        rows = sum(map(len, call.joins.values())) + sum(map(len, call.new_groups))
        assert rows + len(call.seen) <= 1000
    written = Counter(f for c in calls for ids in (*c.joins.values(), *c.new_groups) for f in ids)
    assert written == Counter(a=600, b=2500, x=300, y=3500, z=10)
    # The large group is created from its first 1000 faces; the rest join it afterwards.
    big = next(p for p in parts if p.rest)
    assert [len(g) for g in big.outcome.new_groups] == [1000]
    assert [len(r) for r in big.rest] == [1000, 1000, 500]
    assert all(p.outcome.min_faces == 3 for p in parts if p.outcome.new_groups)
    # Seen marks come last, after every assignment.
    seen = [p.outcome for p in parts if p.outcome.seen]
    assert parts[-len(seen) :] == [WritePart(s) for s in seen]
    assert [f for s in seen for f in s.seen] == list(outcome.seen)
    only_seen = split_outcome(ClusterOutcome({}, [], ["n"]), 1000)
    assert only_seen == [WritePart(ClusterOutcome({}, [], ["n"]))]
