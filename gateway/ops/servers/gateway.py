"""Running the gateway under uvicorn with a graceful drain on SIGTERM/SIGINT.

On the first signal the gateway stops admitting new /v1/ requests (503 + Retry-After) and
/health/ready turns 503 so load balancers move away; after `drain_s` uvicorn's own
graceful shutdown lets in-flight requests finish. A second signal starts that shutdown
at once; a third (Ctrl-C) forces it.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """uvicorn.Server that drains before it shuts down."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_s: float) -> None:
        super().__init__(config)
        self._app = app
        self._drain_s = drain_s
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining or self._drain_s <= 0:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        self._app.state.admission.draining = True
        log.info("draining for %.1f s before shutdown (signal %d)", self._drain_s, sig)
        timer = threading.Timer(self._drain_s, super().handle_exit, (sig, frame))
        timer.daemon = True
        timer.start()


def _check_port(host: str, port: int) -> None:
    """Fail before start-up with an OSError naming the port (uvicorn would log and exit 1)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:  # other bind errors: uvicorn reports them
                raise OSError(exc.errno, f"{exc.strerror}: {host}:{port}") from exc


def serve_app(app: FastAPI, host: str, port: int, drain_s: float, log_level: str) -> None:
    """Serve until a signal; in-flight requests finish (uvicorn waits for them)."""
    _check_port(host, port)
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level.lower(), log_config=None, access_log=False
    )
    DrainingServer(config, app, drain_s).run()
