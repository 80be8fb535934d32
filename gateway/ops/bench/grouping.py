"""`facegate bench-group`: /v1/group's algorithm on modelled people, against DBSCAN alone.

For each seed and look-alike setting: the same modelled faces (people_data) grouped by the
two stages of processing/grouping.py and by its first stage alone (DBSCAN-like candidates,
what Immich runs), scored against the truth (ARI, groups merging people, people split,
singletons left alone), with the grouping's time for the request's faces (all pairs + both
stages, one thread).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.ops.bench.people_data import GroupingScore, modelled_people, score_grouping
from gateway.processing.grouping import (
    UNLABELLED,
    find_candidates,
    group_faces,
    neighbour_pairs,
)


@dataclass(frozen=True)
class GroupingRun:
    seed: int
    lookalike_pairs: int
    faces: int
    two_stage: GroupingScore
    dbscan: GroupingScore
    seconds: float


def _dbscan_groups(roots: npt.NDArray[np.intp], min_faces: int) -> npt.NDArray[np.intp]:
    _, inverse, counts = np.unique(roots, return_inverse=True, return_counts=True)
    return np.where(counts[inverse] >= min_faces, inverse, -1)


def bench_grouping(
    seeds: int,
    people: int,
    singletons: int,
    lookalike_pairs: tuple[int, ...],
    lookalike_cosine: float,
    max_distance: float = 0.5,
    min_faces: int = 2,
) -> list[GroupingRun]:
    runs = []
    for seed in range(seeds):
        for pairs_count in lookalike_pairs:
            data = modelled_people(
                seed,
                people,
                singletons,
                lookalike_pairs=pairs_count,
                lookalike_cosine=lookalike_cosine,
            )
            started = time.perf_counter()
            pairs = neighbour_pairs(data.embeddings, max_distance)
            grouping = group_faces(data.embeddings, pairs, max_distance, min_faces)
            seconds = time.perf_counter() - started
            size = len(data.embeddings)
            roots = find_candidates(size, pairs, min_faces, np.full(size, UNLABELLED))
            runs.append(
                GroupingRun(
                    seed,
                    pairs_count,
                    size,
                    score_grouping(data, grouping.groups),
                    score_grouping(data, _dbscan_groups(roots, min_faces)),
                    seconds,
                )
            )
    return runs


def report_lines(runs: list[GroupingRun]) -> list[str]:
    lines = [
        "seed  look-alike pairs  faces  | two stages: ARI  merged  split  singletons alone  ms "
        "| DBSCAN alone: ARI  merged  split",
    ]
    for r in runs:
        t, d = r.two_stage, r.dbscan
        lines.append(
            f"{r.seed:4d}  {r.lookalike_pairs:16d}  {r.faces:5d}  | {t.ari:15.4f}  "
            f"{t.merged_groups:6d}  {t.split_people:5d}  {t.singletons_ungrouped:16.3f}  "
            f"{r.seconds * 1000:4.0f} | {d.ari:17.4f}  {d.merged_groups:6d}  {d.split_people:5d}"
        )
    return lines
