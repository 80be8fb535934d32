"""One ASGI middleware for every request: request id, access log, metrics, admission.

Admission control for /v1/ routes (rules in gateway/admission.py): the caller's key is
authenticated from the headers first (401 before any of the body is read, no slot taken),
then the global cap, the key's share of the slots and the key's request rate decide
(429 + Retry-After rather than unbounded queueing). An admitted request has a deadline
(504), and its body one well under it (408: a slow or stalled upload frees its slot);
new requests get 503 while the process drains before shutdown. Added last, it is the
outermost layer and the catch-all: an exception nothing else handled becomes a 500 with
the request id (errors.internal_error_response).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.admission import Admission
from gateway.auth import ANONYMOUS, COMPAT, ApiKeys, Caller, presented_key
from gateway.errors import (
    BodyTimeout,
    DeadlineExceeded,
    FacegateError,
    error_response,
    internal_error_response,
)
from gateway.logs import request_id_var
from gateway.metrics import Metrics

__all__ = ["Admission", "GatewayMiddleware"]

log = logging.getLogger("facegate.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
COMPAT_CALLER = Caller(COMPAT, "user")
_REASONS = {
    "shutting_down": "draining",
    "overloaded": "overloaded",
    "key_overloaded": "key_overloaded",
    "rate_limited": "rate_limited",
}


@dataclass
class _Progress:
    code: int = 500
    started: bool = False


class GatewayMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        admission: Admission,
        keys: ApiKeys | None = None,
    ) -> None:
        """keys: who may call /v1/ (None: everyone, as the anonymous caller)."""
        self.app = app
        self.metrics = metrics
        self.admission = admission
        self.keys = keys

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

        # A CORS preflight carries no key and no body: the CORS layer answers it.
        guarded = scope.get("method") != "OPTIONS" and (
            scope["path"].startswith("/v1/") or scope["path"] in self.admission.extra_paths
        )
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

    def _caller(self, scope: Scope) -> Caller:
        """Who calls, from the headers alone; Unauthenticated (401) for a missing/unknown key."""
        if scope["path"] in self.admission.extra_paths:
            return COMPAT_CALLER
        if self.keys is None:
            return Caller(ANONYMOUS, "admin")
        headers = dict(scope.get("headers") or [])
        x_api_key = headers.get(b"x-api-key", b"").decode("latin-1") or None
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        return self.keys.authenticate(presented_key(x_api_key, authorization))

    async def _refuse(
        self, refusal: FacegateError, key: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        reason = _REASONS.get(refusal.code, refusal.code)
        self.metrics.rejected.labels(reason).inc()
        self.metrics.key_rejected.labels(key, reason).inc()
        if refusal.status_code == 429 and self.admission.refusal_pause_s > 0:
            await asyncio.sleep(self.admission.refusal_pause_s)
        await error_response(refusal)(scope, receive, send)

    async def _admit(self, scope: Scope, receive: Receive, send: Send, status: _Progress) -> None:
        admission = self.admission
        try:
            caller = self._caller(scope)
        except FacegateError as exc:
            await self._refuse(exc, "unknown", scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        refusal = admission.refusal(caller)
        if refusal is not None:
            await self._refuse(refusal, caller.name, scope, receive, send)
            return
        admission.acquire(caller)
        self.metrics.in_flight.inc()
        self.metrics.key_in_flight.labels(caller.name).inc()
        try:
            late = await self._run_bounded(scope, receive, send)
            if late is not None and not status.started:
                await error_response(late)(scope, receive, send)
        finally:
            admission.release(caller)
            self.metrics.in_flight.dec()
            self.metrics.key_in_flight.labels(caller.name).dec()

    async def _run_bounded(
        self, scope: Scope, receive: Receive, send: Send
    ) -> FacegateError | None:
        """Run the app under the request deadline and the body deadline; the error if one passed."""
        admission = self.admission
        body_late = asyncio.Event()
        body_deadline = (
            None
            if admission.body_timeout_s is None
            else asyncio.get_running_loop().time() + admission.body_timeout_s
        )
        body_done = False

        async def bounded_receive() -> Message:
            nonlocal body_done
            if body_done or body_deadline is None:
                return await receive()
            remaining = body_deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0.0))
            except asyncio.TimeoutError:
                body_late.set()
                # _run_bounded cancels the app (and this wait) and answers 408 itself.
                await asyncio.Event().wait()
                raise
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        work = asyncio.ensure_future(self.app(scope, bounded_receive, send))
        watch = asyncio.ensure_future(body_late.wait())
        try:
            done, _ = await asyncio.wait(
                {work, watch},
                timeout=admission.request_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if work in done:
                work.result()  # the app's own exception, if any, for the catch-all
                return None
        finally:
            watch.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
        if body_late.is_set():
            return BodyTimeout(
                f"the request body did not arrive within {admission.body_timeout_s:.0f} s: "
                "send it faster, or in smaller pieces"
            )
        return DeadlineExceeded(f"the request took longer than {admission.request_timeout_s:.0f} s")

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        caller = (scope.get("state") or {}).get("caller")
        key = caller.name if isinstance(caller, Caller) else "-"
        self.metrics.requests.labels(path, method, str(status)).inc()
        self.metrics.latency.labels(path, method).observe(seconds)
        log.info(
            "%s %s %d %.1f ms",
            method,
            path,
            status,
            seconds * 1000,
            extra={
                "route": path,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "key": key,
            },
        )
