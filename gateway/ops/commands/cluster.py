"""`facegate gallery bench-cluster`: its options and its run (the gallery command wires it)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from gateway.ops.argtypes import positive_int


def add_bench_cluster(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    add_target: Callable[[argparse.ArgumentParser], None],
    handler: Callable[[argparse.Namespace], int],
) -> None:
    bench = actions.add_parser(
        "bench-cluster",
        help="cluster time of N modelled faces (named people, unassigned faces, singletons)",
        description="Load N modelled faces (people with 2-12 faces, same-person cosines "
        "0.5-0.75, strangers below 0.2, 10%% singletons; 5%% of people named with 3 enrolled "
        "faces, everything else unassigned) by COPY, build the index, run one cluster over "
        "every unassigned face (timed, scored against the truth), then an incremental run "
        "over --increment faces enrolled afterwards. Long: run it with `nice -n 10`.",
    )
    add_target(bench)
    bench.add_argument("--faces", type=positive_int, default=100_000, help="faces to load")
    bench.add_argument("--seed", type=int, default=0, help="random seed of the model")
    bench.add_argument(
        "--increment",
        type=positive_int,
        default=1000,
        help="faces held back and clustered incrementally afterwards (default %(default)s)",
    )
    bench.add_argument(
        "--min-faces", type=positive_int, default=3, help="smallest new subject (default 3)"
    )
    bench.add_argument("--keep", action="store_true", help="keep the bench collection")
    bench.set_defaults(func=handler)


def run_bench_cluster(url: str, args: argparse.Namespace) -> int:
    from gateway.ops.bench.cluster import ClusterBenchOptions, bench_cluster, report_lines

    if args.min_faces < 2:
        print("error: --min-faces is at least 2", file=sys.stderr)
        return 2
    options = ClusterBenchOptions(
        faces=args.faces,
        seed=args.seed,
        increment=args.increment,
        min_faces=args.min_faces,
        keep=args.keep,
        progress=True,
    )
    print(f"loading ~{args.faces} modelled faces, then clustering...", file=sys.stderr)
    result = bench_cluster(url, options)
    print("\n".join(report_lines(result)))
    return 0
