"""The audit trail's table (migration 20): records in, records out, old ones pruned."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.audit import AuditRecord, StoredAuditRecord
from gateway.storage.base import StoreBase, bounded

_COLUMNS = (
    "key, action, method, route, outcome, collection, subject, face_ids, subjects, request_id"
)


class AuditMixin(StoreBase):
    @bounded
    async def insert_audit(self, records: Sequence[tuple[AuditRecord, str, datetime]]) -> None:
        """Store (record, request id, time) rows in one transaction."""
        async with self._transaction() as conn, conn.cursor() as cursor:
            await cursor.executemany(
                f"INSERT INTO gallery_audit (at, {_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        at,
                        r.key,
                        r.action,
                        r.method,
                        r.route,
                        r.outcome,
                        r.collection,
                        r.subject,
                        list(r.face_ids),
                        list(r.subjects),
                        request_id,
                    )
                    for r, request_id, at in records
                ],
            )

    @bounded
    async def prune_audit(self, retention_days: int) -> int:
        """Delete records older than `retention_days`; how many went."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM gallery_audit WHERE at < now() - make_interval(days => %s)",
                (retention_days,),
            )
            return cursor.rowcount

    @bounded
    async def read_audit(
        self, *, since: datetime | None, key: str | None, collection: str | None, limit: int
    ) -> list[StoredAuditRecord]:
        """The last `limit` matching records, oldest first."""
        async with self._connection() as conn:
            cursor = await conn.execute(
                f"SELECT at, {_COLUMNS} FROM gallery_audit"
                " WHERE (%s::timestamptz IS NULL OR at >= %s)"
                " AND (%s::text IS NULL OR key = %s)"
                " AND (%s::text IS NULL OR collection = %s)"
                " ORDER BY id DESC LIMIT %s",
                (since, since, key, key, collection, collection, limit),
            )
            rows = await cursor.fetchall()
        return [_stored(row) for row in reversed(rows)]


def _stored(row: Sequence[Any]) -> StoredAuditRecord:
    at, key, action, method, route, outcome, collection, subject, face_ids, subjects, rid = row
    record = AuditRecord(
        key, action, method, route, outcome, collection, subject,
        tuple(face_ids or ()), tuple(subjects or ()),
    )  # fmt: skip
    return StoredAuditRecord(at, record, rid)
