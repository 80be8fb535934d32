"""One ASGI middleware for every request: request id, access log, metrics, admission.

Admission control for /v1/ routes: a bounded number of requests in flight per worker
(429 + Retry-After beyond it, rather than unbounded queueing), a per-request deadline
(504), and 503 for new requests while the process drains before shutdown. Added last, it
is the outermost layer and the catch-all: an exception nothing else handled becomes a
500 with the request id (errors.internal_error_response).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import (
    DeadlineExceeded,
    FacegateError,
    Overloaded,
    ShuttingDown,
    error_response,
    internal_error_response,
)
from gateway.logs import request_id_var
from gateway.metrics import Metrics

log = logging.getLogger("facegate.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass
class Admission:
    """Limits applied to /v1/ requests (and `extra_paths`); `draining` is flipped on shutdown."""

    max_in_flight: int
    request_timeout_s: float
    draining: bool = False
    in_flight: int = 0
    # Exact paths outside /v1/ that count against the same limits (compatibility routes).
    extra_paths: frozenset[str] = frozenset()


@dataclass
class _Progress:
    code: int = 500
    started: bool = False


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, admission: Admission) -> None:
        self.app = app
        self.metrics = metrics
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = _Progress()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.code = message["status"]
                status.started = True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        guarded = scope["path"].startswith("/v1/") or scope["path"] in self.admission.extra_paths
        try:
            if guarded:
                await self._admit(scope, receive, send_wrapper, status)
            else:
                await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if status.started:
                raise  # too late for an error body: the server closes the connection
            await internal_error_response(exc, request_id)(scope, receive, send_wrapper)
        finally:
            self._record(scope, status.code, time.perf_counter() - started)
            request_id_var.reset(token)

    async def _admit(self, scope: Scope, receive: Receive, send: Send, status: _Progress) -> None:
        admission = self.admission
        refusal: FacegateError | None = None
        if admission.draining:
            self.metrics.rejected.labels("draining").inc()
            refusal = ShuttingDown("the gateway is shutting down: retry", retry_after_s=5)
        elif admission.in_flight >= admission.max_in_flight:
            self.metrics.rejected.labels("overloaded").inc()
            refusal = Overloaded("too many requests in flight: retry shortly", retry_after_s=1)
        if refusal is not None:
            await error_response(refusal)(scope, receive, send)
            return
        admission.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            await asyncio.wait_for(self.app(scope, receive, send), admission.request_timeout_s)
        except asyncio.TimeoutError:
            if not status.started:
                late = DeadlineExceeded(
                    f"the request took longer than {admission.request_timeout_s:.0f} s"
                )
                await error_response(late)(scope, receive, send)
        finally:
            admission.in_flight -= 1
            self.metrics.in_flight.dec()

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        self.metrics.requests.labels(path, method, str(status)).inc()
        self.metrics.latency.labels(path, method).observe(seconds)
        log.info(
            "%s %s %d %.1f ms",
            method,
            path,
            status,
            seconds * 1000,
            extra={"route": path, "status": status, "duration_ms": round(seconds * 1000, 2)},
        )
