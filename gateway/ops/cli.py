"""The `facegate` command line: a registry of subcommands, one module each.

Run `facegate --help` or `facegate <command> --help`. Each name in COMMANDS is a module
gateway/ops/commands/<name>.py with `subparser_init(subparsers)` and `cmd(args) -> int`
(see gateway/ops/commands/__init__.py for how to add one).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from collections.abc import Sequence

from gateway import __version__
from gateway.ops.commands._common import LICENCE_NOTE, CliError
from gateway.ops.failures import run_reported

log = logging.getLogger("facegate")
# Subcommand modules under gateway.ops.commands, in the order --help lists them.
COMMANDS = (
    "models",
    "triton",
    "serve",
    "gateway",
    "gallery",
    "bench",
    "bench_compat",
    "bench_group",
    "loadtest",
    "loadtest_fairness",
    "perf",
)

__all__ = ["COMMANDS", "CliError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facegate",
        description="InsightFace's face models served by NVIDIA Triton, with a REST gateway in front.",
        epilog="Typical first run: facegate serve --models synthetic (the embedded Triton and "
        f"the REST gateway on synthetic models; see README.md). {LICENCE_NOTE}",
    )
    parser.add_argument("--version", action="version", version=f"facegate {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a failure (or FACEGATE_DEBUG=1)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"gateway.ops.commands.{name}").subparser_init(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    started = time.monotonic()
    # The failure policy (exit codes, one paragraph, --debug tracebacks): gateway/ops/failures.py.
    code = run_reported(lambda: int(args.func(args)), args.debug)
    log.debug("%s finished in %.1f s", args.command, time.monotonic() - started)
    return code


if __name__ == "__main__":
    sys.exit(main())
