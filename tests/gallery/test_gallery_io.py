"""`facegate gallery export|import|bench` as an operator runs them, against the real
PostgreSQL: one snapshot with every subject, a 0600 file never overwritten, no embeddings on
a terminal, an import that checks the whole file first and says what it refused, and a bench
that refuses a database holding other collections."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest

from gateway.gallery_ports import EMBEDDING_DIM, NewFace
from gateway.storage.postgres import open_store

pytestmark = [pytest.mark.gallery, pytest.mark.integration]
SHA = "ab" * 32


def _facegate(*args: str, stdout: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.ops.cli", "gallery", *args],
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        check=False,
    )


def _gallery(url: str) -> None:
    """'people': two subjects with faces and metadata, one without faces."""

    async def fill() -> None:
        store = await open_store(url, pool_size=1, timeout_s=30, migrate=True)
        try:
            await store.create_collection("people", {"site": "lobby"}, SHA)
            rng = np.random.default_rng(3)
            faces = rng.standard_normal((3, EMBEDDING_DIM)).astype(np.float32)
            faces /= np.linalg.norm(faces, axis=1, keepdims=True)
            await store.put_subject("people", "ann", {"team": "a"})
            await store.put_subject("people", "lonely", {"note": "no photo yet"})
            await store.add_faces(
                "people",
                [("ann", [NewFace(faces[0], (1, 2, 3, 4), 0.9)]), ("bob", [NewFace(faces[1])])],
            )
            await store.add_faces("people", [("ann", [NewFace(faces[2])])])
        finally:
            await store.close()

    asyncio.run(fill())


def _stored(url: str, collection: str) -> tuple[dict[str, object], list[tuple[str, str]]]:
    with psycopg.connect(url) as conn:
        subjects = conn.execute(
            "SELECT s.name, s.metadata FROM gallery_subjects s JOIN gallery_collections c"
            " ON c.id = s.collection_id WHERE c.name = %s",
            (collection,),
        ).fetchall()
        faces = conn.execute(
            "SELECT f.subject, f.embedding::text FROM gallery_faces f JOIN gallery_collections c"
            " ON c.id = f.collection_id WHERE c.name = %s ORDER BY 1, 2",
            (collection,),
        ).fetchall()
    return {str(n): m for n, m in subjects}, [(str(s), str(e)) for s, e in faces]


def test_export_is_whole_and_safe_and_import_round_trips(
    fresh_database: str, tmp_path: Path
) -> None:
    _gallery(fresh_database)
    dump = tmp_path / "people.jsonl"
    exported = _facegate("export", "people", "-o", str(dump), "--url", fresh_database)
    assert exported.returncode == 0, exported.stderr
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    # Never over an existing file (the old export truncated it).
    again = _facegate("export", "people", "-o", str(dump), "--url", fresh_database)
    assert again.returncode == 2 and "exists" in again.stderr
    imported = _facegate("import", str(dump), "--collection", "copy", "--url", fresh_database)
    assert imported.returncode == 0, imported.stderr
    # Every subject, the faceless one too, with its metadata; the same vectors.
    assert _stored(fresh_database, "copy") == _stored(fresh_database, "people")
    assert _stored(fresh_database, "copy")[0]["lonely"] == {"note": "no photo yet"}


def test_export_refuses_a_terminal(fresh_database: str) -> None:
    _gallery(fresh_database)
    leader, follower = pty.openpty()
    try:
        result = _facegate("export", "people", "--url", fresh_database, stdout=follower)
    finally:
        os.close(follower)
        os.close(leader)
    assert result.returncode == 2 and "terminal" in result.stderr


def test_import_checks_the_whole_file_and_says_what_it_refused(
    fresh_database: str, tmp_path: Path
) -> None:
    _gallery(fresh_database)
    dump = tmp_path / "people.jsonl"
    assert _facegate("export", "people", "-o", str(dump), "--url", fresh_database).returncode == 0
    lines = dump.read_text().splitlines()
    # The header's recognizer changed after export: the checksum catches it.
    header = json.loads(lines[0])
    forged = tmp_path / "forged.jsonl"
    forged.write_text(
        "\n".join([json.dumps({**header, "recognizer_sha256": "cd" * 32}), *lines[1:]]) + "\n"
    )
    refused = _facegate("import", str(forged), "--collection", "f", "--url", fresh_database)
    assert refused.returncode == 2 and "checksum" in refused.stderr, refused.stderr
    # Names the API would refuse, and a broken embedding: every problem, by line.
    bad = tmp_path / "bad.jsonl"
    face = json.loads(next(line for line in lines if '"kind":"face"' in line))
    rows = [
        {"format": "facegate-gallery/1", "collection": "bad name!", "recognizer_sha256": SHA},
        {**face, "subject": "a/b"},
        {**face, "embedding": face["embedding"][:100]},
        {**face, "subject": "x" * 300},
    ]
    bad.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    refused = _facegate("import", str(bad), "--url", fresh_database)
    assert refused.returncode == 2, refused.stderr
    for expected in ("line 2:", "line 3:", "line 4:", "collection name", "nothing was imported"):
        assert expected in refused.stderr, refused.stderr
    with psycopg.connect(fresh_database) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM gallery_collections").fetchall()}
    assert names == {"people"}


def test_bench_refuses_a_database_with_other_collections(fresh_database: str) -> None:
    _gallery(fresh_database)
    refused = _facegate("bench", "--faces", "100", "--queries", "5", "--url", fresh_database)
    assert refused.returncode == 2 and "--i-know-this-is-live" in refused.stderr
