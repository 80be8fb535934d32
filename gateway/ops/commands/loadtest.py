"""`facegate loadtest`: drive the embedded stack at fixed concurrency; fail on errors or growth."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from gateway.ops.bench.options import DEFAULT_CACHE_DIR, DEFAULT_REPORT, BenchError
from gateway.ops.commands._common import (
    CliError,
    Subparsers,
    add_cache_dir,
    add_write_report,
    positive_float,
    positive_int,
)
from gateway.ops.loadtest.gallery_load import GALLERY_KINDS
from gateway.ops.loadtest.kinds import KIND_NAMES
from gateway.ops.loadtest.options import DEFAULT_MIX, LoadOptions, parse_mix

DESCRIPTION = (
    "Start the embedded Triton and the gateway on synthetic models (NOT face models), send "
    "each request kind once, then a weighted mix of requests from --concurrency asyncio "
    "workers for --duration-s seconds. Samples the RSS of the gateway and of Triton (with its "
    "Python-backend stubs) every second. Reports failures by status, throughput, p50/p95/p99 "
    "per kind, and RSS growth after warm-up (the first 20% of the run). Exits 1 when any "
    "request failed (non-2xx, transport error or wrong body) or either process grew more "
    "than --rss-bound-mib."
)


def cmd(args: argparse.Namespace) -> int:
    from gateway.ops.loadtest.driver import run_loadtest
    from gateway.ops.loadtest.report import format_markdown, format_text, write_report
    from gateway.ops.machine import describe_machine, git_commit
    from gateway.ops.servers.stack import StackError

    try:
        # The gallery kinds need serve's embedded PostgreSQL: the fault-schedule run has it.
        known = KIND_NAMES + (GALLERY_KINDS if args.faults else ())
        mix = parse_mix(args.mix, known) if args.mix else dict(DEFAULT_MIX)
    except BenchError as exc:
        raise CliError(str(exc)) from exc
    options = LoadOptions(
        duration_s=args.duration_s,
        concurrency=args.concurrency,
        profile=args.profile,
        mix=mix,
        rss_bound_mib=args.rss_bound_mib,
        cache_dir=args.cache_dir,
        progress=not args.no_progress,
        serve_log=args.serve_log,
    )
    if args.faults:
        from gateway.ops.loadtest.fault_command import run_with_faults

        return run_with_faults(options, args.faults)
    machine = describe_machine()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        summary = run_loadtest(options, sys.stdout)
    except (BenchError, StackError) as exc:
        raise CliError(str(exc)) from exc
    sys.stdout.write(format_text(summary, options))
    if args.write_report:
        write_report(
            args.write_report, format_markdown(summary, options, machine, started, git_commit())
        )
        sys.stdout.write(f"Wrote the results to {args.write_report}\n")
    return 0 if summary.passed else 1


def subparser_init(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "loadtest",
        help="drive the embedded stack at fixed concurrency; fail on errors or memory growth",
        description=DESCRIPTION,
        epilog="CI runs a short version (tests/ops/loadtest). Full run for the record: "
        "facegate loadtest --write-report",
    )
    parser.add_argument(
        "--duration-s", type=positive_float, default=300.0, help="timed run length (default 300)"
    )
    parser.add_argument(
        "--concurrency", type=positive_int, default=8, help="requests in flight (default 8)"
    )
    parser.add_argument(
        "--profile",
        choices=("tiny", "realistic"),
        default="tiny",
        help="synthetic models: tiny (default: the most requests per second) or realistic",
    )
    default_mix = ",".join(f"{kind}={weight}" for kind, weight in DEFAULT_MIX.items())
    parser.add_argument(
        "--mix",
        default="",
        metavar="KIND[=WEIGHT],...",
        help=f"request kinds and relative weights (default {default_mix})",
    )
    parser.add_argument(
        "--rss-bound-mib",
        type=positive_float,
        default=64.0,
        help="largest allowed RSS growth per process after warm-up (default 64)",
    )
    add_cache_dir(parser, DEFAULT_CACHE_DIR)
    add_write_report(
        parser,
        DEFAULT_REPORT,
        f"replace the load test's generated block (default PATH: {DEFAULT_REPORT})",
    )
    parser.add_argument(
        "--faults",
        default="",
        metavar="KIND@S,...",
        help="run against `facegate serve` and inject faults at these seconds: kill (SIGKILL "
        "Triton), stop (SIGSTOP Triton), stub (SIGKILL the swapper's stub), pgkill (SIGKILL "
        "PostgreSQL), pgstop (SIGSTOP PostgreSQL), e.g. kill@60,stop@150,stub@240,pgkill@300; "
        "reports time to recover per fault and failures outside them. This run also knows the "
        "gallery kinds enrol and identify (serve then runs its embedded PostgreSQL)",
    )
    parser.add_argument(
        "--serve-log",
        type=Path,
        default=None,
        metavar="PATH",
        help="with --faults: keep `facegate serve`'s own log (the supervisor's restarts) here",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(func=cmd)
