"""What the gateway knows about the servers `facegate serve` supervises (Triton, PostgreSQL).

The supervisor (gateway/ops/servers/supervisor.py) runs in its own thread and writes here;
the gateway reads: requests that need a server that is down answer 503 with Retry-After at
once instead of waiting on a dead socket, /health/ready says which server is down, and
/health/live turns 503 once the supervisor has given up (the service cannot recover by
itself, so an outer supervisor should restart it). Without `facegate serve` (the gateway
alone, e.g. in Kubernetes) nothing writes here and every server counts as up.

Each server has an epoch that grows on every restart: state that lives inside a server
(a model loaded on demand) and was recorded under an older epoch is gone.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from gateway.errors import UpstreamUnavailable

TRITON = "triton"
POSTGRES = "postgres"


@dataclass(frozen=True)
class ServerDown:
    """A supervised server that is restarting: why, and when to try again."""

    reason: str
    retry_after_s: float


class ServerStates:
    """Thread-safe record of supervised servers: down or up, restart epochs, given up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down: dict[str, ServerDown] = {}
        self._epochs: dict[str, int] = {}
        self._fatal = ""

    def mark_down(self, server: str, reason: str, retry_after_s: float) -> None:
        with self._lock:
            self._down[server] = ServerDown(reason, retry_after_s)

    def mark_up(self, server: str) -> None:
        """The server is back after a restart: a new epoch begins."""
        with self._lock:
            self._down.pop(server, None)
            self._epochs[server] = self._epochs.get(server, 0) + 1

    def mark_failed(self, reason: str) -> None:
        """The supervisor gave up: the service cannot recover by itself."""
        with self._lock:
            self._fatal = reason

    @property
    def fatal(self) -> str:
        """Why the supervisor gave up ('' while it has not)."""
        with self._lock:
            return self._fatal

    def down(self, server: str) -> ServerDown | None:
        with self._lock:
            return self._down.get(server)

    def epoch(self, server: str) -> int:
        with self._lock:
            return self._epochs.get(server, 0)

    def check_up(
        self, server: str, what: str, error: type[UpstreamUnavailable] = UpstreamUnavailable
    ) -> None:
        """Raise `error` (503 + Retry-After) while `server` is restarting."""
        down = self.down(server)
        if down is not None:
            retry_after_s = max(1, math.ceil(down.retry_after_s))
            raise error(
                f"{what} is restarting ({down.reason}): retry in {retry_after_s} s",
                retry_after_s=retry_after_s,
            )
