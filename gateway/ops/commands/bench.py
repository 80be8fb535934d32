"""`facegate bench`: InsightFace in process vs the REST gateway vs the gRPC client."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.ops.commands._common import CliError, Subparsers, add_cache_dir, add_write_report

if TYPE_CHECKING:
    from gateway.ops.bench.options import BenchOptions


def subparser_init(commands: Subparsers) -> None:
    from gateway.ops.bench.options import DEFAULT_CACHE_DIR, DEFAULT_REPORT

    bench = commands.add_parser(
        "bench",
        help="time InsightFace in process (defaults, tuned, given OpenVINO), the REST gateway "
        "and the gRPC client (wire, shm)",
        description="Start the embedded Triton and the gateway on synthetic models (NOT face "
        "models), then send the same JPEG bytes (a 640x480 photo and a 12 MP photo, each with "
        "four planted 'faces') to InsightFace's SCRFD+ArcFace in this process, with "
        "onnxruntime's defaults and tuned (spin-wait off, the fastest intra-op thread count, "
        "searched in the run) and given onnxruntime's OpenVINO provider (in a worker process), to POST /v1/detect?embed=true, and to the direct gRPC client "
        "(FaceClient) over the wire and through shared memory. Prints p50/p95 latency at "
        "concurrency 1, throughput at each --concurrency level (on the 640x480 photo), the "
        "recognizer on batches of 32 aligned faces through Triton against plain onnxruntime "
        "(the floor), the warm swap call against INSwapper.get, the ratios to the in-process "
        "baselines and issues 28's and 12's goals. Run it on an otherwise idle machine: other load skews "
        "the numbers.",
        epilog="Smoke run: facegate bench --quick (3 to 4 minutes on 2 cores). Full run for "
        "the record (about 10 minutes on 2 idle cores): facegate bench --write-report. The "
        "gateway's levers A/B: facegate bench --levers --write-report.",
    )
    bench.add_argument(
        "--profile",
        choices=("realistic", "tiny"),
        default="realistic",
        help="synthetic models: realistic (real-model compute, default) or tiny (smoke tests)",
    )
    bench.add_argument(
        "--swap",
        action="store_true",
        help="the swap benchmark instead: Triton memory with the swapper unloaded/loaded/unloaded, "
        "cold and warm /v1/swap against InsightFace's INSwapper, paste-back on 12 MP",
    )
    bench.add_argument(
        "--cold",
        action="store_true",
        help="the cold-start benchmark instead: `facegate serve` to ready and the swapper's cold "
        "load, the runner settings from before issue 12 against the installed ones, "
        "alternating for --rounds rounds (gateway/ops/bench/cold.py)",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="few requests (4 latency, 4 throughput at concurrency 1,4, 1 warm-up, 1 round, "
        "1 floor batch): a smoke run, not a result",
    )
    bench.add_argument(
        "--requests",
        type=int,
        default=0,
        help="timed requests at concurrency 1 per image and scenario (default 20)",
    )
    bench.add_argument(
        "--throughput-requests",
        type=int,
        default=0,
        help="timed requests per concurrency level above 1, per scenario, at least the level "
        "in each round (default 16)",
    )
    bench.add_argument(
        "--concurrency",
        default=None,
        metavar="LIST",
        help="concurrency levels, comma-separated (default 1,4,16; 1 is always included)",
    )
    bench.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed sequential requests per image and scenario first (default 2)",
    )
    bench.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="interleaved rounds the timed requests are split into, alternating order (default 2)",
    )
    bench.add_argument(
        "--floor-batches",
        type=int,
        default=0,
        help="timed recognizer batches of 32 faces per floor side (default 3)",
    )
    bench.add_argument(
        "--swap-calls",
        type=int,
        default=None,
        help="timed warm swap calls per side: POST /v1/swap, INSwapper.get in process with "
        "onnxruntime's defaults and tuned (default 4; 0 leaves the swap row out)",
    )
    bench.add_argument(
        "--levers",
        action="store_true",
        help="the gateway's levers instead: variants of `facegate gateway` (cpu_threads, two "
        "processes, reduced JPEG decode) side by side on one Triton, A/B in interleaved rounds",
    )
    bench.add_argument(
        "--gateway-cpu",
        action="store_true",
        help="the gateway's own CPU per image instead: POST /v1/detect?embed=true on a 640x480 "
        "and a 1920x1080 JPEG against a null backend (models answer at no cost), --requests "
        "timed calls each (gateway/ops/bench/gateway_cpu.py)",
    )
    bench.add_argument(
        "--device",
        choices=("cpu", "gpu"),
        default="cpu",
        help="gpu: onnxruntime's CUDA provider in process and KIND_GPU in the embedded configs "
        "(needs onnxruntime-gpu); its report block and plot are kept apart from the CPU ones",
    )
    bench.add_argument(
        "--no-openvino",
        action="store_true",
        help="leave out the insightface-openvino baseline (InsightFace given onnxruntime's "
        "OpenVINO provider, in a worker process; CPU runs only, needs scripts/bootstrap.sh's "
        "onnxruntime-openvino) and its goals",
    )
    add_cache_dir(bench, DEFAULT_CACHE_DIR)
    bench.add_argument(
        "--fresh-models", action="store_true", help="rebuild the cached synthetic models"
    )
    add_write_report(
        bench,
        DEFAULT_REPORT,
        f"replace the generated block of the report (default PATH: {DEFAULT_REPORT}) and "
        "write benchmarks.png next to it",
    )
    bench.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    bench.set_defaults(func=cmd)


def cmd(args: argparse.Namespace) -> int:
    from gateway.ops.bench.options import BenchError, BenchOptions, parse_concurrency
    from gateway.ops.bench.report import write_report
    from gateway.ops.bench.run import run_bench
    from gateway.ops.servers.stack import StackError

    quick = args.quick
    try:
        concurrency = parse_concurrency(args.concurrency or ("1,4" if quick else "1,4,16"))
    except BenchError as exc:
        raise CliError(str(exc)) from exc
    # The swap benchmark derives its warm-up count from --requests: keep its old default.
    latency_default = 40 if args.swap else 20
    options = BenchOptions(
        profile=args.profile,
        latency_requests=args.requests or (4 if quick else latency_default),
        throughput_requests=args.throughput_requests or (4 if quick else 16),
        concurrency=concurrency,
        warmup=args.warmup if args.warmup is not None else (1 if quick else 2),
        rounds=args.rounds or (1 if quick else 2),
        floor_batches=args.floor_batches or (1 if quick else 3),
        swap_calls=args.swap_calls if args.swap_calls is not None else (1 if quick else 4),
        device=args.device,
        cache_dir=args.cache_dir,
        fresh_models=args.fresh_models,
        progress=not args.no_progress,
        openvino=not args.no_openvino,
    )
    if options.swap_calls < 0:
        raise CliError(f"--swap-calls is a count of calls (0 or more), not {options.swap_calls}")
    if args.write_report and options.profile != "realistic":
        raise CliError(
            "--write-report records realistic-profile runs only: add --profile realistic"
        )
    if args.cold:
        from gateway.ops.bench.cold import run_cold_command

        try:
            return run_cold_command(options, args.write_report)
        except BenchError as exc:
            raise CliError(str(exc)) from exc
    if args.swap:
        from gateway.ops.bench.swap import run_swap_bench, write_swap_report
        from gateway.ops.machine import describe_machine

        # Read before the run, so its "load average at start" is the start's.
        machine = ", ".join(f"{k}: {v}" for k, v in describe_machine().items())
        try:
            figures = run_swap_bench(options, sys.stdout)
        except (BenchError, StackError) as exc:
            raise CliError(str(exc)) from exc
        if args.write_report:
            write_swap_report(args.write_report, figures, f"Machine: {machine}.")
            print(f"Wrote the swap figures to {args.write_report}")
        return 0
    if args.levers:
        return _levers(options, args.write_report)
    if args.gateway_cpu:
        return _gateway_cpu(options)
    try:
        report = run_bench(options, sys.stdout)
    except (BenchError, StackError) as exc:
        raise CliError(str(exc)) from exc
    if args.write_report:
        plot = write_report(args.write_report, report)
        print(f"Wrote the results to {args.write_report} and the plot to {plot}")
    return 0


def _gateway_cpu(options: BenchOptions) -> int:
    from gateway.ops.bench.gateway_cpu import (
        format_gateway_cpu,
        gateway_images,
        measure_gateway_cpu,
    )
    from gateway.ops.bench.images import sample_photo
    from gateway.ops.bench.models import prepare_models
    from gateway.ops.bench.options import BenchError
    from gateway.ops.machine import git_commit, load_average
    from gateway.ops.reports import text_table

    try:
        models = prepare_models(options.cache_dir, options.profile, fresh=options.fresh_models)
        images = gateway_images(sample_photo())
        detector = models.repository / "detector" / "1" / "model.onnx"
        results = measure_gateway_cpu(detector, images, options.latency_requests, options.warmup)
    except BenchError as exc:
        raise CliError(str(exc)) from exc
    print(text_table(*format_gateway_cpu(results)))
    print(
        f"commit {git_commit()}, {options.profile} models' detections, load average at the end "
        f"{load_average()}"
    )
    return 0


def _levers(options: BenchOptions, write_report: Path | None) -> int:
    from gateway.ops.bench.levers import run_levers, write_levers_report
    from gateway.ops.bench.options import BenchError
    from gateway.ops.servers.stack import StackError

    try:
        report = run_levers(options, sys.stdout)
    except (BenchError, StackError) as exc:
        raise CliError(str(exc)) from exc
    if write_report:
        write_levers_report(write_report, report)
        print(f"Wrote the levers' figures to {write_report}")
    return 0
