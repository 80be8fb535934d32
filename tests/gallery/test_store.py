"""The PostgreSQL store and its tooling against the real embedded PostgreSQL: migrations under
concurrency, search recall on random faces (the CI version of the benchmark), export/import."""

from __future__ import annotations

import itertools
import json
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from gateway.ops.bench.gallery import BenchOptions, bench_gallery, report_lines
from gateway.storage.migrations import MIGRATIONS, apply_migrations, schema_version

pytestmark = [pytest.mark.gallery, pytest.mark.integration]


def test_migrations_apply_once_even_when_gateways_start_together(fresh_database: str) -> None:
    assert schema_version(fresh_database) == 0
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(apply_migrations, [fresh_database] * 4))
    applied = [version for result in results for version in result]
    assert sorted(applied) == [m.version for m in MIGRATIONS]  # each exactly once
    assert apply_migrations(fresh_database) == []
    assert schema_version(fresh_database) == MIGRATIONS[-1].version


def test_search_recall_on_random_faces(fresh_database: str) -> None:
    options = BenchOptions(faces=3000, queries=100, seed=1, exact=True)
    result = bench_gallery(fresh_database, options)
    *searches, exact = result.searches
    # The exact scan reads every face: it finds the true top 10 (random 512-d vectors, where
    # the index misses many beyond the first), in the lines the report prints.
    assert exact.ef_search == 0 and exact.recall_at_1 == 1.0 and exact.recall_at_10 >= 0.99
    assert any(line.startswith("  exact scan ") for line in report_lines(result))
    for figures in searches:
        # Each query is a stored face plus noise (cosine ~0.7): the index finds that face.
        assert figures.recall_at_1 >= 0.95, figures
        # Random 512-d vectors are the hard case for HNSW beyond the first hit; this is a
        # floor against a broken index (a wrong order gives ~0), not a target.
        assert figures.recall_at_10 >= 0.4, figures
    # A broader search finds at least as many true neighbours (same index, same queries).
    recalls = [f.recall_at_10 for f in searches]
    assert all(b >= a - 0.02 for a, b in itertools.pairwise(recalls)), recalls
    assert result.sizes_mib["hnsw_index"] > 0
    # The bench timed the collection's erasure until its job was done: row and partition gone.
    assert result.erase_call_s is not None and result.erase_done_s is not None
    assert 0 < result.erase_call_s <= result.erase_done_s
    with psycopg.connect(fresh_database) as conn:  # the bench collection is gone again
        assert conn.execute("SELECT count(*) FROM gallery_faces").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM gallery_collections").fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM gallery_jobs WHERE state <> 'done'"
        ).fetchone() == (0,)


def test_search_recall_on_clustered_faces(fresh_database: str) -> None:
    options = BenchOptions(
        faces=3000, queries=100, seed=4, distribution="clustered", ef_searches=(40, 200)
    )
    result = bench_gallery(fresh_database, options)
    for figures in result.searches:
        # Subjects with five faces each, queries new photos of them: the index finds the
        # right person and nearly all of the exact top 10 (a broken or unused index, or a
        # wrong distance, falls far below these floors).
        assert figures.identification_rate >= 0.97, figures
        assert figures.recall_at_1 >= 0.95, figures
        assert figures.recall_at_10 >= 0.9, figures


def _facegate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.ops.cli", "gallery", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_export_import_round_trip(fresh_database: str, tmp_path: Path) -> None:
    result = bench_gallery(fresh_database, BenchOptions(faces=200, queries=10, seed=2, keep=True))
    assert result.faces == 200
    collection = "bench-uniform-2-200"
    dump = tmp_path / "gallery.jsonl"
    exported = _facegate("export", collection, "-o", str(dump), "--url", fresh_database)
    assert exported.returncode == 0, exported.stderr
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600  # biometric data
    lines = dump.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["collection"] == collection
    assert sum('"kind":"face"' in line for line in lines) == 200
    imported = _facegate("import", str(dump), "--collection", "copy", "--url", fresh_database)
    assert imported.returncode == 0, imported.stderr
    with psycopg.connect(fresh_database) as conn:
        rows = conn.execute(
            "SELECT c.name, f.subject, f.embedding::text FROM gallery_faces f"
            " JOIN gallery_collections c ON c.id = f.collection_id ORDER BY f.subject, c.name"
        ).fetchall()
        shas = conn.execute("SELECT DISTINCT recognizer_sha256 FROM gallery_collections").fetchall()
    by_collection: dict[str, dict[str, str]] = {}
    for name, subject, vector in rows:
        by_collection.setdefault(name, {})[subject] = vector
    # Same subjects, same (half-precision) vectors, same recognizer binding.
    assert by_collection["copy"] == by_collection[collection]
    assert len(shas) == 1
    again = _facegate("import", str(dump), "--collection", "copy", "--url", fresh_database)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_status_lists_sizes(fresh_database: str) -> None:
    bench_gallery(fresh_database, BenchOptions(faces=50, queries=5, seed=3, keep=True))
    status = _facegate("status", "--url", fresh_database)
    assert status.returncode == 0, status.stderr
    assert "bench-uniform-3-50: 50 subjects, 50 faces" in status.stdout


def test_status_names_a_migration_pending_below_the_newest(fresh_database: str) -> None:
    """Migrations are numbered by area: 3 can be missing while 10 and 20 are applied."""
    apply_migrations(fresh_database)
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("DELETE FROM facegate_schema_migrations WHERE version = 3")
    assert schema_version(fresh_database) == 2
    status = _facegate("status", "--url", fresh_database)
    assert status.returncode == 0, status.stderr
    assert "schema version 2" in status.stdout
    assert "pending migrations: 3 " in status.stdout
