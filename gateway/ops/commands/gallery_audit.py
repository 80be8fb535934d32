"""`facegate gallery audit`: read the audit trail back, filtered (gateway/audit.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from gateway.audit import AUDIT_LOGGER, StoredAuditRecord
from gateway.ops.argtypes import positive_int
from gateway.ops.commands._common import CliError

FIELDS = ("key", "action", "collection", "subject", "outcome")


def add_audit_parser(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    add_target: Callable[[argparse.ArgumentParser], None],
) -> argparse.ArgumentParser:
    audit = actions.add_parser(
        "audit",
        help="read the audit trail of gallery changes and searches",
        description="Print audit records as JSON lines: from --file (FACEGATE_AUDIT_LOG_FILE, or "
        "a file of the gateway's JSON logs: other lines are skipped), else from the gallery "
        "database's table (gateways with FACEGATE_AUDIT_TABLE=true write it). Filters combine; "
        "records never hold an image or an embedding.",
    )
    add_target(audit)
    audit.add_argument(
        "--file",
        type=Path,
        default=Path(os.environ["FACEGATE_AUDIT_LOG_FILE"])
        if os.environ.get("FACEGATE_AUDIT_LOG_FILE")
        else None,
        metavar="PATH",
        help="the audit log (default: FACEGATE_AUDIT_LOG_FILE; none: the database table); "
        "'-' reads standard input",
    )
    for name in FIELDS:
        audit.add_argument(f"--{name}", metavar=name.upper(), help=f"only records with this {name}")
    audit.add_argument(
        "--since",
        type=_since,
        metavar="TIME",
        help="only records at or after this ISO 8601 time: UTC unless it names an offset, e.g. "
        "2026-12-07T03 or 2026-12-07T05:00+02:00",
    )
    audit.add_argument(
        "--last", type=positive_int, metavar="N", help="only the last N matching records"
    )
    return audit


def _since(text: str) -> datetime:
    """--since as an aware UTC time: a time without an offset is UTC, one with is converted."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write an ISO 8601 time like 2026-12-07T03:00 (UTC) or "
            "2026-12-07T05:00+02:00"
        ) from exc
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _records(source: TextIO) -> Iterator[dict[str, Any]]:
    for line in source:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("logger") == AUDIT_LOGGER and "audit" in entry:
            record = {"time": entry.get("time"), "request_id": entry.get("request_id")}
            record.update(entry["audit"])
            yield record


def _matches(record: dict[str, Any], args: argparse.Namespace) -> bool:
    for name in FIELDS:
        wanted = getattr(args, name)
        if wanted is not None and str(record.get(name)) != wanted:
            return False
    since: datetime | None = args.since
    if since is None:
        return True
    try:
        # Log lines end in "Z", which fromisoformat reads only from Python 3.11 on.
        at = datetime.fromisoformat(str(record.get("time")).replace("Z", "+00:00"))
    except ValueError:
        return False
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at) >= since


def _as_line(stored: StoredAuditRecord) -> dict[str, Any]:
    fields = asdict(stored.record)
    fields["face_ids"] = list(stored.record.face_ids)
    fields["subjects"] = list(stored.record.subjects)
    return {"time": stored.at.isoformat(), "request_id": stored.request_id, **fields}


async def read_table(url: str, args: argparse.Namespace) -> int:
    """Print the matching records of the gallery database's audit table."""
    from gateway.storage.postgres import open_store

    store = await open_store(url, pool_size=1, timeout_s=10, migrate=False)
    try:
        rows = await store.read_audit(
            since=args.since, key=args.key, collection=args.collection, limit=args.last or 100_000
        )
    finally:
        await store.close()
    for stored in rows:
        line = _as_line(stored)
        if _matches(line, args):
            sys.stdout.write(json.dumps(line) + "\n")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Print the matching records of --file."""
    try:
        source = sys.stdin if str(args.file) == "-" else args.file.open(encoding="utf-8")
    except OSError as exc:
        raise CliError(
            f"cannot read the audit log {args.file}: {exc.strerror}; check the path "
            "(FACEGATE_AUDIT_LOG_FILE of the gateway)"
        ) from exc
    with source:
        found = [r for r in _records(source) if _matches(r, args)]
    for record in found[-args.last :] if args.last else found:
        sys.stdout.write(json.dumps(record) + "\n")
    return 0
