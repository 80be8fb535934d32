"""`facegate perf`: NVIDIA perf_analyzer against the detector, the recognizer or the faces model."""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from gateway.ops.commands._common import CliError, Subparsers


def subparser_init(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "perf",
        help="run NVIDIA perf_analyzer (from the tritonclient wheel) on the detector, the "
        "recognizer or the in-server faces model",
        description="Measure Triton alone (no client-side processing) with perf_analyzer, with "
        "the right tensor shapes and its CUDA runtime library on LD_LIBRARY_PATH. Triton must "
        "be running (facegate triton). See docs/CLIENT.md.",
        epilog="Examples: facegate perf recognizer -b 32 --concurrency 1:8 --shared-memory system; "
        "facegate perf faces --image photo.jpg --det-sizes 640 --concurrency 1:16:3",
    )
    parser.add_argument(
        "kind", choices=("detector", "recognizer", "faces"), help="the model to measure"
    )
    parser.add_argument(
        "--image",
        type=Path,
        default=None,
        help="faces: the encoded image (JPEG, PNG, WebP, BMP) every request sends (required)",
    )
    parser.add_argument(
        "--det-sizes",
        default="",
        help="faces: detector sizes, e.g. 640 or 128,640 (default: the model's)",
    )
    parser.add_argument(
        "--url", default="localhost:8001", help="Triton gRPC host:port (default localhost:8001)"
    )
    parser.add_argument("-b", "--batch-size", type=int, default=1, help="images per request")
    parser.add_argument(
        "--concurrency", default="1:4", help="start:end[:step] requests in flight (default 1:4)"
    )
    parser.add_argument(
        "--shared-memory",
        choices=("none", "system"),
        default="none",
        help="system: tensors through Triton's system shared memory (same host only)",
    )
    parser.add_argument(
        "--measurement-request-count", type=int, default=50, help="requests per window"
    )
    parser.add_argument("--max-trials", type=int, default=10, help="windows before giving up")
    parser.add_argument(
        "--stability-percentage",
        type=float,
        default=10.0,
        help="accepted spread between windows in percent (raise it on a noisy host)",
    )
    parser.add_argument(
        "--unbatched", action="store_true", help="a detector served with max_batch_size 0"
    )
    parser.add_argument("--model-name", default="", help="model name on Triton (default: kind)")
    parser.set_defaults(func=cmd)


def cmd(args: argparse.Namespace) -> int:
    if args.kind != "faces" and (args.image or args.det_sizes):
        raise CliError("--image and --det-sizes are for `facegate perf faces` only")
    with tempfile.TemporaryDirectory(prefix="facegate-perf-") as folder:
        input_data = _faces_input(args, Path(folder)) if args.kind == "faces" else ""
        return _run(args, input_data)


def _faces_input(args: argparse.Namespace, folder: Path) -> str:
    from gateway.ops.perf import faces_input_data

    if args.image is None:
        raise CliError("`facegate perf faces` needs --image FILE: the image every request sends")
    try:
        image = args.image.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read --image {args.image}: {exc.strerror}") from exc
    return str(faces_input_data(image, folder))


def _run(args: argparse.Namespace, input_data: str) -> int:
    from gateway.ops.perf import (
        PerfAnalyzerMissing,
        PerfRun,
        check_libraries,
        find_perf_analyzer,
        perf_command,
        perf_environment,
    )

    run = PerfRun(
        args.kind,
        url=args.url,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        shared_memory=args.shared_memory,
        measurement_request_count=args.measurement_request_count,
        max_trials=args.max_trials,
        stability_percentage=args.stability_percentage,
        unbatched=args.unbatched,
        model_name=args.model_name,
        input_data=input_data,
        det_sizes=args.det_sizes,
    )
    try:
        binary = find_perf_analyzer()
        env = perf_environment()
        check_libraries(binary, env)
    except PerfAnalyzerMissing as exc:
        raise CliError(str(exc)) from exc
    code = subprocess.run(perf_command(run, binary), env=env, check=False).returncode
    if code != 0:
        # perf_analyzer's own message is printed above; its exit codes are not facegate's.
        raise CliError(
            f"perf_analyzer failed (exit status {code}; its message is above). Is Triton serving "
            f"{args.kind} at {args.url}? Start one with `facegate triton` (or `facegate serve`), "
            "or point --url at yours."
        )
    return 0
