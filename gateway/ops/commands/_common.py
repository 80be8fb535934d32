"""What several subcommands share: the error that ends a command, common options, defaults."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TypeAlias

from gateway.ops.argtypes import port_number as port_number
from gateway.ops.argtypes import positive_float as positive_float
from gateway.ops.argtypes import positive_int as positive_int
from gateway.ops.failures import CommandFailed

# The type of the object add_subparsers() returns, which subparser_init receives.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

DEFAULT_REPOSITORY = Path("model_repository")
# Where `serve --models synthetic` puts generated models, away from real ones.
SYNTHETIC_REPOSITORY = Path(".facegate") / "synthetic"
LICENCE_NOTE = (
    "InsightFace's models (buffalo_l, buffalo_s, inswapper_128) are licensed for "
    "non-commercial research only."
)


class CliError(CommandFailed):
    """A failure whose message tells the user what to do next."""


def add_repository(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repository",
        type=Path,
        default=DEFAULT_REPOSITORY,
        metavar="PATH",
        help="Triton model repository to write to / serve from (default: ./model_repository)",
    )


def add_pack_options(parser: argparse.ArgumentParser) -> None:
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


def add_triton_ports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--triton-host",
        default="127.0.0.1",
        help="address Triton listens on (default 127.0.0.1; Triton does not authenticate "
        "inference, so expose it only behind a firewall)",
    )
    parser.add_argument(
        "--grpc-port", type=port_number, default=8001, help="Triton gRPC port (default 8001)"
    )
    parser.add_argument(
        "--http-port", type=port_number, default=8000, help="Triton HTTP port (default 8000)"
    )
    parser.add_argument(
        "--metrics-port",
        type=port_number,
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
        type=positive_float,
        default=180.0,
        help="seconds to wait for readiness (default 180)",
    )


def add_gateway_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="serve without API keys (trusted networks only; a warning is logged)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=port_number, default=8080, help="REST port (default 8080)")


def add_cache_dir(parser: argparse.ArgumentParser, default: Path) -> None:
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=default,
        metavar="PATH",
        help=f"where the synthetic models are built once and reused (default ./{default})",
    )


def add_write_report(parser: argparse.ArgumentParser, default: Path, help_text: str) -> None:
    """--write-report [PATH]: PATH is optional and defaults to `default`."""
    parser.add_argument(
        "--write-report",
        nargs="?",
        const=default,
        default=None,
        type=Path,
        metavar="PATH",
        help=help_text,
    )
