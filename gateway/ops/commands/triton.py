"""`facegate triton`: the embedded Triton server on its own (no Docker)."""

from __future__ import annotations

import argparse
import logging
import signal
from types import FrameType
from typing import TYPE_CHECKING

from gateway.ops.commands._common import CliError, Subparsers, add_repository, add_triton_ports

if TYPE_CHECKING:
    from gateway.ops.servers.triton import EmbeddedTriton

log = logging.getLogger("facegate")


def subparser_init(commands: Subparsers) -> None:
    triton = commands.add_parser(
        "triton",
        help="run the embedded Triton server (no Docker)",
        description="Start the tritonserver shipped by nvidia-pytriton in explicit "
        "model-control mode, load detector and recognizer (the swapper loads on demand), "
        "restrict the model-repository API to the repository key, wait until ready.",
    )
    add_repository(triton)
    add_triton_ports(triton)
    triton.add_argument("--show-logs", action="store_true", help="echo Triton's own log to stderr")
    triton.add_argument("--log-verbose", type=int, default=0, help="Triton's --log-verbose level")
    triton.set_defaults(func=cmd)


def cmd(args: argparse.Namespace) -> int:
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
    signals = forward_signals(server)
    try:
        server.start()
    except EmbeddedTritonError as exc:
        server.stop()
        if signals:
            # Ctrl-C/SIGTERM while Triton was starting: stopped on request, not a failure.
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


def forward_signals(server: EmbeddedTriton) -> list[int]:
    """Ctrl-C/SIGTERM ask Triton to stop (it drains); a second one kills it.

    The handlers only signal: the main thread, waiting on Triton, sees it exit. Returns the
    list the handlers append each signal number to.
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
