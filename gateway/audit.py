"""The audit trail: one record per gallery change or search, never a face or an embedding.

A record says who (the API key's name), what (the action, route, collection, subject and
face ids), how it ended (the HTTP status) and which request it was (the request id); the
time is the log line's. Records go to their own logger, `facegate.audit`: with
FACEGATE_AUDIT_LOG_FILE they are JSON lines in that file only, else they are JSON lines
among the other logs (filter on logger == "facegate.audit"). `facegate gallery audit`
reads such a file back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gateway.logs import JsonFormatter

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
