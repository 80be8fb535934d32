"""`facegate gateway`: the REST gateway alone, against a Triton elsewhere."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from gateway.ops.commands._common import CliError, Subparsers, add_gateway_address

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.supervision import ServerStates


def subparser_init(commands: Subparsers) -> None:
    gateway = commands.add_parser(
        "gateway",
        help="run only the REST gateway (Triton elsewhere; settings from FACEGATE_* variables)",
        description="Run the REST gateway against a running Triton. Settings come from FACEGATE_* "
        "environment variables (FACEGATE_TRITON_URL, FACEGATE_TRITON_REPOSITORY_KEY, "
        "FACEGATE_MAX_IMAGE_BYTES, ...).",
    )
    add_gateway_address(gateway)
    gateway.add_argument(
        "--triton-url", default="", help="Triton gRPC host:port (default $FACEGATE_TRITON_URL)"
    )
    gateway.set_defaults(func=cmd)


def cmd(args: argparse.Namespace) -> int:
    from gateway.config import Settings

    overrides: dict[str, Any] = {"triton_url": args.triton_url} if args.triton_url else {}
    if args.no_auth:
        overrides["auth_disabled"] = True
    settings = Settings(**overrides)
    run_gateway(settings, args.host, args.port)
    return 0


def run_gateway(
    settings: Settings, host: str, port: int, servers: ServerStates | None = None
) -> None:
    from gateway.app import create_app
    from gateway.audit import configure_audit_log
    from gateway.auth import AuthConfigError
    from gateway.logs import configure_logging
    from gateway.ops.servers.gateway import serve_app

    configure_logging(settings.log_level, settings.json_logs)
    try:
        configure_audit_log(settings.audit_log_file)
    except OSError as exc:
        raise CliError(
            f"cannot open the audit log {settings.audit_log_file}: {exc.strerror}; check "
            "FACEGATE_AUDIT_LOG_FILE (its folder must exist and be writable)"
        ) from exc
    try:
        app = create_app(settings, servers=servers)
    except AuthConfigError as exc:
        raise CliError(str(exc)) from exc
    serve_app(app, host, port, settings.drain_s, settings.log_level)
