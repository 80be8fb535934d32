"""`facegate serve`: the embedded Triton and the REST gateway together (the main job)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.ops.commands._common import (
    DEFAULT_REPOSITORY,
    SYNTHETIC_REPOSITORY,
    CliError,
    Subparsers,
    add_gateway_address,
    add_repository,
    add_triton_ports,
)
from gateway.ops.commands.gallery import add_serve_options, serve_gallery_server

if TYPE_CHECKING:
    from gateway.ops.servers.supervisor import RestartPolicy, Supervisor
    from gateway.ops.servers.triton import EmbeddedTriton
    from gateway.supervision import ServerStates

log = logging.getLogger("facegate")


def subparser_init(commands: Subparsers) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the embedded Triton and the REST gateway together (the main job)",
        description="Start the embedded Triton on the repository's models, then the REST gateway "
        "in front of it. --models synthetic generates and serves synthetic models (NOT face "
        "models), labelled in /v1/models and the logs.",
    )
    add_repository(serve)
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
    add_gateway_address(serve)
    add_triton_ports(serve)
    add_serve_options(serve)
    serve.add_argument("--show-logs", action="store_true", help="echo Triton's own log to stderr")
    from gateway.ops.servers.supervisor import add_supervision_options

    add_supervision_options(serve)
    serve.set_defaults(func=cmd)


def cmd(args: argparse.Namespace) -> int:
    from gateway.ops.repository.install import read_manifest
    from gateway.ops.servers.supervisor import (
        GAVE_UP_NEXT,
        ChildStartError,
        policy_from_args,
        supervise,
    )
    from gateway.ops.servers.triton import EmbeddedTriton, TritonOptions, TritonPorts

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
            from gateway.ops.commands.models import write_synthetic_models

            write_synthetic_models(argparse.Namespace(profile=args.profile, repository=repository))
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
    policy = policy_from_args(args)
    servers, supervisor = supervise(server, policy)
    gallery: Supervisor | None = None
    # SIGTERM raises KeyboardInterrupt like Ctrl-C. uvicorn restores this handler and re-raises
    # the signal into it after its graceful shutdown, so the finally below stops Triton (which
    # runs in its own session and would not see the terminal's signals).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        try:
            gallery, gallery_url = _start_gallery(args, policy, servers)
            supervisor.start()
        except ChildStartError as exc:
            raise CliError(str(exc)) from exc
        _serve_gateway(args, server, options.repository_key, label, gallery_url, servers)
    except KeyboardInterrupt:
        pass
    finally:
        supervisor.stop()
        if gallery is not None:
            gallery.stop()
    failure = supervisor.failure or (gallery.failure if gallery is not None else "")
    if failure:
        raise CliError(f"{failure}. {GAVE_UP_NEXT}")
    return 0


def _start_gallery(
    args: argparse.Namespace, policy: RestartPolicy, servers: ServerStates
) -> tuple[Supervisor | None, str]:
    """The embedded PostgreSQL started under supervision (None without one) and its URL."""
    from gateway.ops.servers.launcher_child import postgres_child
    from gateway.ops.servers.supervisor import supervise

    postgres = serve_gallery_server(args)
    if postgres is None:
        return None, ""
    _, gallery = supervise(postgres_child(postgres), policy, servers)
    gallery.start()
    return gallery, postgres.url()


def _models_label(repository: Path) -> str:
    from gateway.ops.repository.install import read_manifest

    labels = {str(entry.get("synthetic", "")) for entry in read_manifest(repository).values()}
    labels.discard("")
    return ", ".join(sorted(labels))


def _serve_gateway(
    args: argparse.Namespace,
    server: EmbeddedTriton,
    key: str,
    label: str,
    gallery_url: str,
    servers: ServerStates | None = None,
) -> None:
    from gateway.config import Settings

    if label:
        log.warning("SERVING SYNTHETIC MODELS (%s): detections are not faces", label)
    extra: dict[str, Any] = {"gallery_url": gallery_url} if gallery_url else {}
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
    from gateway.ops.commands.gateway import run_gateway

    run_gateway(settings, args.host, args.port, servers)
