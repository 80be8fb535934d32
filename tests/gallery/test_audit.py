"""The audit trail end to end: real gateway, Triton and PostgreSQL; records read back by the CLI."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from gateway.audit import AUDIT_LOGGER, AuditRecord, configure_audit_log
from gateway.ops.cli import main
from gateway.ops.servers.postgres import EmbeddedPostgres
from gateway.ops.servers.triton import EmbeddedTriton
from gateway.storage.postgres import open_store

from ..api.conftest import ServerThread, gateway_settings
from .conftest import client_for
from .people import person_png
from .test_gallery_api import enrol, new_collection

pytestmark = [pytest.mark.gallery, pytest.mark.integration]

ENROLLER_KEY = "audit-enroller-key-0123456789"
READER_KEY = "audit-reader-key-0123456789"


@pytest.fixture(scope="module")
def named_gateway(triton: EmbeddedTriton, postgres: EmbeddedPostgres) -> Iterator[str]:
    keys = f"enroll/hr-import:{ENROLLER_KEY},user:{READER_KEY}"
    settings = gateway_settings(triton, gallery_url=postgres.url(), api_keys=keys, audit_table=True)
    with ServerThread(settings) as server, client_for(server.url, READER_KEY) as http:
        deadline = time.monotonic() + 60
        while http.get("/v1/collections").status_code != 200:
            assert time.monotonic() < deadline, "the gallery did not come up"
            time.sleep(0.1)
        yield server.url


def test_gallery_calls_leave_records_with_the_key_name_and_no_biometrics(
    named_gateway: str,
    postgres: EmbeddedPostgres,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    audit_file = tmp_path / "audit.jsonl"
    configure_audit_log(audit_file)
    vector = np.random.default_rng(22).standard_normal(512)
    try:
        with (
            client_for(named_gateway, ENROLLER_KEY) as enroller,
            client_for(named_gateway, READER_KEY) as reader,
        ):
            collection = new_collection(enroller)
            enrolled = enroller.post(
                f"/v1/collections/{collection}/subjects/ada/faces",
                json={"embedding": vector.tolist()},
            )
            assert enrolled.status_code == 201
            (embedded_id,) = [f["id"] for f in enrolled.json()["faces"]]
            (image_id,) = enrol(enroller, collection, "ada", person_png(22))
            found = reader.post(
                f"/v1/collections/{collection}/identify",
                json={"embeddings": [vector.tolist()]},
                headers={"X-Request-ID": "audit-identify-1"},
            )
            assert found.status_code == 200
            refused = reader.post(
                f"/v1/collections/{collection}/subjects/bob/faces",
                json={"embedding": vector.tolist()},
            )
            assert refused.status_code == 403
            assert (
                enroller.delete(f"/v1/collections/{collection}/faces/{image_id}").status_code == 204
            )
            assert enroller.delete(f"/v1/collections/{collection}/subjects/ada").status_code == 204
            assert enroller.delete(f"/v1/collections/{collection}").status_code == 204
            assert reader.get(f"/v1/collections/{collection}").status_code == 404  # reads: none
    finally:
        configure_audit_log(None)

    text = audit_file.read_text()
    records = [json.loads(line) for line in text.splitlines()]
    mine = [r for r in records if r["audit"]["collection"] == collection]
    assert all(r["logger"] == AUDIT_LOGGER for r in records)
    actions = [(r["audit"]["action"], r["audit"]["key"], r["audit"]["outcome"]) for r in mine]
    reader_name = actions[3][1]
    assert reader_name.startswith("key-") and READER_KEY not in text
    assert actions == [
        ("collection.create", "hr-import", 201),
        ("faces.enrol", "hr-import", 201),
        ("faces.enrol", "hr-import", 201),
        ("identify", reader_name, 200),
        ("faces.enrol", reader_name, 403),
        ("face.erase", "hr-import", 204),
        ("subject.erase", "hr-import", 204),
        ("collection.erase", "hr-import", 204),
    ]
    assert mine[1]["audit"]["face_ids"] == [embedded_id]
    assert mine[1]["audit"]["subject"] == "ada"
    assert mine[3]["request_id"] == "audit-identify-1"
    assert mine[3]["audit"]["subjects"] == ["ada"] and embedded_id in mine[3]["audit"]["face_ids"]
    assert mine[5]["audit"]["face_ids"] == [image_id]
    # No number of the embedding, raw or normalised, is anywhere in the trail.
    unit = vector / np.linalg.norm(vector)
    for value in [*vector[:32], *unit[:32]]:
        assert f"{value:.4f}"[:7] not in text and f"{value:.3f}" not in text
    assert ENROLLER_KEY not in text

    assert main(["gallery", "audit", "--file", str(audit_file), "--key", "hr-import",
                 "--action", "collection.erase"]) == 0  # fmt: skip
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["collection"] == collection

    # The same records reach the gallery database's table (written in the background).
    table: list[dict[str, object]] = []
    deadline = time.monotonic() + 30
    while len(table) < len(mine) and time.monotonic() < deadline:
        time.sleep(0.2)
        assert main(["gallery", "audit", "--url", postgres.url(), "--collection", collection]) == 0
        table = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["action"], r["key"], r["outcome"]) for r in table] == actions
    assert table[3]["request_id"] == "audit-identify-1"
    assert table[1]["face_ids"] == [embedded_id]
    stored = json.dumps(table)
    assert all(f"{value:.4f}"[:7] not in stored for value in [*vector[:32], *unit[:32]])


def test_old_audit_records_are_pruned(fresh_database: str) -> None:
    async def scenario() -> tuple[int, list[str]]:
        store = await open_store(fresh_database, pool_size=1, timeout_s=10, migrate=True)
        try:
            now = datetime.now(UTC)
            rows = [
                (AuditRecord("k", "identify", "POST", "/r", 200, "old"), "r1", now - timedelta(days=40)),
                (AuditRecord("k", "identify", "POST", "/r", 200, "new"), "r2", now),
            ]  # fmt: skip
            await store.insert_audit(rows)
            pruned = await store.prune_audit(30)
            left = await store.read_audit(since=None, key=None, collection=None, limit=10)
        finally:
            await store.close()
        return pruned, [str(r.record.collection) for r in left]

    assert asyncio.run(scenario()) == (1, ["new"])


def test_the_table_reader_converts_a_since_with_an_offset(
    fresh_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--since 05:00+02:00 is 03:00 UTC (the first round read it as 05:00 UTC, dropping 03:30)."""

    async def insert() -> None:
        store = await open_store(fresh_database, pool_size=1, timeout_s=10, migrate=True)
        try:
            day = datetime(2026, 12, 7, tzinfo=UTC)
            rows = [
                (AuditRecord("k", "identify", "POST", "/r", 200, "before"), "r1", day + timedelta(hours=2.5)),
                (AuditRecord("k", "identify", "POST", "/r", 200, "after"), "r2", day + timedelta(hours=3.5)),
            ]  # fmt: skip
            await store.insert_audit(rows)
        finally:
            await store.close()

    asyncio.run(insert())
    assert (
        main(["gallery", "audit", "--url", fresh_database, "--since", "2026-12-07T05:00+02:00"])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["collection"] for line in lines] == ["after"]
