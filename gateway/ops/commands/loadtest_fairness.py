"""`facegate loadtest-fairness`: one key's flood and slow uploads against another key's calls."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gateway.ops.commands._common import CliError, Subparsers, positive_float, positive_int


def subparser_init(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "loadtest-fairness",
        help="check that one API key's flood and slow uploads leave another key served",
        description="Against a running gateway: key B's idle latency first, then for "
        "--duration-s key A holds --slow-uploads uploads that never finish and floods detect "
        "from --workers workers while key B makes sequential detects. Exits 1 unless every call "
        "of key B answered 200, its p95 stayed within --ratio-bound times its idle p50 (same "
        "run) and every slow upload was answered or closed within 90 s.",
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway")
    parser.add_argument("--key-a", required=True, metavar="KEY", help="the flooding key")
    parser.add_argument("--key-b", required=True, metavar="KEY", help="the quiet key")
    parser.add_argument(
        "--image", type=Path, required=True, metavar="PATH", help="the image both keys detect on"
    )
    parser.add_argument(
        "--duration-s", type=positive_float, default=30.0, metavar="S", help="attack length (30)"
    )
    parser.add_argument(
        "--slow-uploads",
        type=positive_int,
        default=100,
        metavar="N",
        help="uploads of key A that trickle and never finish (100)",
    )
    parser.add_argument(
        "--workers", type=positive_int, default=16, metavar="N", help="key A's flood workers (16)"
    )
    parser.add_argument(
        "--ratio-bound",
        type=positive_float,
        default=8.0,
        metavar="X",
        help="key B's p95 under attack over its idle p50 must stay within this (8)",
    )
    parser.set_defaults(func=cmd)


def cmd(args: argparse.Namespace) -> int:
    import httpx

    from gateway.ops.loadtest.fairness import FairnessOptions, run_fairness, verdict

    try:
        image = args.image.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.image}: {exc.strerror}; pass a JPEG or PNG") from exc
    options = FairnessOptions(
        url=args.url.rstrip("/"),
        key_a=args.key_a,
        key_b=args.key_b,
        image=image,
        duration_s=args.duration_s,
        slow_uploads=args.slow_uploads,
        flood_workers=args.workers,
        ratio_bound=args.ratio_bound,
    )
    print(f"running for about {args.duration_s + 15:.0f} s against {args.url} ...", file=sys.stderr)
    try:
        result = asyncio.run(run_fairness(options))
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the gateway at {args.url}: {exc}; is it running?") from exc
    print(result.summary())
    failures = verdict(result, options)
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0
