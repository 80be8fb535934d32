"""`facegate gallery audit`: read the audit trail back, filtered (gateway/audit.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from gateway.audit import AUDIT_LOGGER
from gateway.ops.argtypes import positive_int
from gateway.ops.commands._common import CliError

FIELDS = ("key", "action", "collection", "subject", "outcome")


def add_audit_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = actions.add_parser(
        "audit",
        help="read the audit trail of gallery changes and searches",
        description="Print the audit records (JSON lines) of a log file the gateway wrote: "
        "FACEGATE_AUDIT_LOG_FILE, or a file of its JSON logs (other lines are skipped). "
        "Filters combine; records never hold an image or an embedding.",
    )
    audit.add_argument(
        "--file",
        type=Path,
        default=Path(os.environ["FACEGATE_AUDIT_LOG_FILE"])
        if os.environ.get("FACEGATE_AUDIT_LOG_FILE")
        else None,
        metavar="PATH",
        help="the audit log (default: FACEGATE_AUDIT_LOG_FILE); '-' reads standard input",
    )
    for name in FIELDS:
        audit.add_argument(f"--{name}", metavar=name.upper(), help=f"only records with this {name}")
    audit.add_argument(
        "--since", metavar="TIME", help="only records at or after this UTC time, e.g. 2026-12-07T03"
    )
    audit.add_argument(
        "--last", type=positive_int, metavar="N", help="only the last N matching records"
    )
    audit.set_defaults(func=cmd_audit)


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
    return args.since is None or str(record.get("time") or "") >= args.since


def cmd_audit(args: argparse.Namespace) -> int:
    if args.file is None:
        raise CliError(
            "no audit log given: pass --file PATH (the gateway's FACEGATE_AUDIT_LOG_FILE), or "
            "pipe the gateway's JSON logs in with --file -"
        )
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
