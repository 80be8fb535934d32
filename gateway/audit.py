"""The audit trail: one record per gallery change or search, never a face or an embedding.

A record says who (the API key's name), what (the action, route, collection, subject and
face ids), how it ended (the HTTP status) and which request it was (the request id); the
time is the log line's. Records go to their own logger, `facegate.audit`: with
FACEGATE_AUDIT_LOG_FILE they are JSON lines in that file only, else they are JSON lines
among the other logs (filter on logger == "facegate.audit"). With FACEGATE_AUDIT_TABLE
they also go into the gallery database's gallery_audit table (written in batches by a
background task, pruned after FACEGATE_AUDIT_RETENTION_DAYS). `facegate gallery audit`
reads either back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from gateway.errors import FacegateError
from gateway.logs import JsonFormatter, request_id_var

AUDIT_LOGGER = "facegate.audit"
log = logging.getLogger(AUDIT_LOGGER)


@dataclass(frozen=True)
class AuditRecord:
    """One gallery call: identifiers and the outcome only."""

    key: str
    action: str
    method: str
    route: str
    outcome: int
    collection: str | None = None
    subject: str | None = None
    face_ids: Sequence[str] = field(default_factory=tuple)
    subjects: Sequence[str] = field(default_factory=tuple)


def write_audit(record: AuditRecord) -> None:
    """Log the record on the audit stream (the request id is added by the log formatter)."""
    fields = asdict(record)
    fields["face_ids"] = list(record.face_ids)
    fields["subjects"] = list(record.subjects)
    log.info("audit %s %s %d", record.key, record.action, record.outcome, extra={"audit": fields})


def configure_audit_log(path: Path | None) -> None:
    """Audit records into `path` (JSON lines, appended) and nowhere else; None: with the other logs."""
    log.handlers[:] = []
    log.propagate = True
    log.setLevel(logging.INFO)
    if path is None:
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    log.propagate = False


@dataclass(frozen=True)
class StoredAuditRecord:
    """A record as the table holds it: with its time and request id."""

    at: datetime
    record: AuditRecord
    request_id: str


class AuditWriter(Protocol):
    """What the table writer needs of the gallery store (storage/audit.py)."""

    async def insert_audit(self, records: Sequence[tuple[AuditRecord, str, datetime]]) -> None: ...

    async def prune_audit(self, retention_days: int) -> int: ...


BATCH = 500
PRUNE_PERIOD_S = 3600.0


class AuditQueue:
    """Records on their way into the table; a full queue drops (and says so at ERROR)."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self._queue: asyncio.Queue[tuple[AuditRecord, str, datetime]] = asyncio.Queue(maxsize)
        self.dropped = 0

    def put(self, record: AuditRecord) -> None:
        try:
            self._queue.put_nowait((record, request_id_var.get(), datetime.now(UTC)))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error(
                    "audit table writer behind: %d records not stored in the table (the log "
                    "stream has them)",
                    self.dropped,
                )

    async def write(self, store: AuditWriter) -> None:
        """Until cancelled: store what is queued, a batch at a time."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await store.insert_audit(batch)
            except FacegateError as exc:
                # The log stream has each record already; the table misses these.
                self.dropped += len(batch)
                log.error("%d audit records not stored in the table: %s", len(batch), exc.message)


async def prune_audit(store: AuditWriter, retention_days: int) -> None:
    """Until cancelled: delete records older than the retention, hourly."""
    while True:
        try:
            pruned = await store.prune_audit(retention_days)
            if pruned:
                log.info("pruned %d audit records older than %d days", pruned, retention_days)
        except FacegateError as exc:
            log.error("audit records not pruned: %s", exc.message)
        await asyncio.sleep(PRUNE_PERIOD_S)
