"""`facegate bench-group`: /v1/group's grouping on modelled people, against DBSCAN alone."""

from __future__ import annotations

import argparse

from gateway.ops.argtypes import positive_int
from gateway.ops.commands._common import Subparsers


def subparser_init(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "bench-group",
        help="grouping faces into people on modelled data: ARI, merges, splits, time",
        description="Group modelled faces (people with 2-12 faces, same-person cosines "
        "0.5-0.75, strangers below 0.2, singletons; optionally look-alike pairs of people) "
        "as POST /v1/group does, and by DBSCAN-like candidates alone (Immich's way), and "
        "score both against the truth. No server needed.",
    )
    parser.add_argument("--seeds", type=positive_int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--people", type=positive_int, default=120, help="default %(default)s")
    parser.add_argument("--singletons", type=int, default=60, help="default %(default)s")
    parser.add_argument(
        "--lookalike-pairs",
        default="0,20",
        help="comma-separated numbers of look-alike pairs among the people (default 0,20)",
    )
    parser.add_argument(
        "--lookalike-cosine",
        type=float,
        default=0.75,
        help="cosine between a look-alike pair's centres (default %(default)s)",
    )
    parser.set_defaults(func=cmd)


def cmd(args: argparse.Namespace) -> int:
    from gateway.ops.bench.grouping import bench_grouping, report_lines
    from gateway.ops.commands._common import CliError

    try:
        pairs = tuple(int(v) for v in args.lookalike_pairs.split(","))
    except ValueError as exc:
        raise CliError("--lookalike-pairs takes numbers like 0,20") from exc
    if min(pairs) < 0 or 2 * max(pairs) > args.people:
        raise CliError("--lookalike-pairs: each from 0 to half of --people")
    if not 0 < args.lookalike_cosine < 1 or args.singletons < 0:
        raise CliError("--lookalike-cosine is in (0, 1) and --singletons at least 0")
    runs = bench_grouping(args.seeds, args.people, args.singletons, pairs, args.lookalike_cosine)
    print("\n".join(report_lines(runs)))
    return 0
