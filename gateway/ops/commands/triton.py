"""`facegate triton`: the embedded Triton server on its own (no Docker)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
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
    triton.add_argument(
        "--no-supervise",
        action="store_true",
        help="do not restart Triton when it crashes or hangs: exit with its status instead "
        "(for an outer supervisor that restarts the command)",
    )
    from gateway.ops.servers.supervisor import add_supervision_options

    add_supervision_options(triton)
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
    if not args.no_supervise:
        return _run_supervised(args, server, generated)
    signals = forward_signals(server)
    try:
        server.start()
    except EmbeddedTritonError as exc:
        server.stop()
        if signals:
            # Ctrl-C/SIGTERM while Triton was starting: stopped on request, not a failure.
            return 0
        raise CliError(str(exc)) from exc
    _announce(server, args.metrics_port, generated)
    code = server.wait()
    return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code


def _announce(server: EmbeddedTriton, metrics_port: int, generated: bool) -> None:
    print(
        f"Triton ready: gRPC {server.grpc_url}, HTTP {server.http_url}, metrics :{metrics_port}",
        flush=True,
    )
    if generated:
        print(
            "Model-repository API key (random, this run only; set FACEGATE_TRITON_REPOSITORY_KEY to choose one):\n"
            f"  {server.options.repository_key}",
            flush=True,
        )
    print("Ctrl-C stops it.", flush=True)


def _run_supervised(args: argparse.Namespace, server: EmbeddedTriton, generated: bool) -> int:
    """Triton under the supervisor of `facegate serve`: restarted when it dies or hangs.

    Ends on Ctrl-C/SIGTERM (0), or when the supervisor gives up (exit 2, as serve does).
    """
    from gateway.ops.servers.supervisor import (
        GAVE_UP_NEXT,
        ChildEvent,
        ChildStartError,
        Supervisor,
        policy_from_args,
    )

    done = threading.Event()

    def on_change(event: ChildEvent) -> None:
        if event.phase == "failed":
            done.set()

    supervisor = Supervisor(server, policy_from_args(args), on_change)
    started = threading.Event()
    signals = forward_signals(server, done, started)
    try:
        supervisor.start()
        started.set()
    except ChildStartError as exc:
        server.stop()
        if signals:
            return 0  # stopped on request while starting, not a failure
        raise CliError(str(exc)) from exc
    _announce(server, args.metrics_port, generated)
    while not done.wait(1.0):
        pass
    supervisor.stop()
    if supervisor.failure:
        raise CliError(f"{supervisor.failure}. {GAVE_UP_NEXT}")
    return 0


def forward_signals(
    server: EmbeddedTriton,
    done: threading.Event | None = None,
    started: threading.Event | None = None,
) -> list[int]:
    """Ctrl-C/SIGTERM ask Triton to stop (it drains); a second one kills it.

    The handlers only signal: the main thread, waiting on Triton, sees it exit (or, when
    supervised, sees `done` set and stops the supervisor, so that the exit is no crash to
    restart). A supervised Triton that is still starting (`started` not set) is also asked
    to stop: the supervisor's first start waits for it to be ready, up to the start-up
    timeout, and would not look at `done` before. Returns the list the handlers append each
    signal number to.
    """
    seen: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)
        if len(seen) == 1:
            log.info("signal %d: stopping Triton (again to kill it)", signum)
            if done is not None:
                done.set()
            if done is None or started is None or not started.is_set():
                server.terminate()
        else:
            server.kill()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return seen
