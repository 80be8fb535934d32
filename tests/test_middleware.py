"""GatewayMiddleware on its own: admission (429), deadline (504), drain (503), the catch-all (500).

The app behind it is a plain ASGI callable that waits on an event or raises, so each
behaviour is shown without Triton and without timing assumptions beyond "never finishes".
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.metrics import Metrics
from gateway.middleware import Admission, GatewayMiddleware

Behaviour = Callable[[], Awaitable[object]]


@dataclass
class Reply:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


def _app(behaviour: Behaviour) -> Callable[..., Awaitable[None]]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await behaviour()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def _request(
    middleware: GatewayMiddleware, path: str = "/v1/detect", request_id: str = ""
) -> Reply:
    reply = Reply()
    headers = [(b"x-request-id", request_id.encode())] if request_id else []
    scope = {"type": "http", "path": path, "method": "POST", "headers": headers}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            reply.status = message["status"]
            reply.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        else:
            reply.body += message.get("body", b"")

    await middleware(scope, receive, send)
    return reply


def _middleware(
    behaviour: Behaviour, max_in_flight: int = 4, timeout_s: float = 60.0
) -> GatewayMiddleware:
    return GatewayMiddleware(_app(behaviour), Metrics(), Admission(max_in_flight, timeout_s))


async def _nothing() -> None:
    return None


def test_over_the_in_flight_limit_is_429_with_retry_after() -> None:
    async def scenario() -> tuple[Reply, Reply, Reply]:
        release = asyncio.Event()
        middleware = _middleware(release.wait, max_in_flight=1)
        first = asyncio.create_task(_request(middleware))
        while middleware.admission.in_flight == 0:
            await asyncio.sleep(0)
        refused = await _request(middleware)
        release.set()
        done = await first
        after = await _request(middleware)
        return refused, done, after

    refused, done, after = asyncio.run(scenario())
    assert refused.status == 429 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "overloaded"
    assert done.status == 200 and after.status == 200


def test_a_request_past_its_deadline_is_504() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    middleware = _middleware(forever, timeout_s=0.05)
    reply = asyncio.run(_request(middleware))
    assert reply.status == 504 and reply.json()["error"]["code"] == "deadline_exceeded"
    assert middleware.admission.in_flight == 0


def test_draining_refuses_api_requests_but_not_health() -> None:
    middleware = _middleware(_nothing)
    middleware.admission.draining = True
    refused = asyncio.run(_request(middleware))
    assert refused.status == 503 and refused.json()["error"]["code"] == "shutting_down"
    assert refused.headers["retry-after"]
    assert asyncio.run(_request(middleware, path="/health/live")).status == 200


def test_unexpected_exceptions_are_a_500_with_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken() -> None:
        raise ZeroDivisionError("a bug")

    with caplog.at_level(logging.ERROR, logger="facegate.errors"):
        reply = asyncio.run(_request(_middleware(broken), request_id="req-42"))
    assert reply.status == 500 and reply.headers["x-request-id"] == "req-42"
    assert reply.json()["error"] == {
        "code": "internal_error",
        "message": reply.json()["error"]["message"],
        "request_id": "req-42",
    }
    assert "req-42" in reply.json()["error"]["message"]
    (record,) = [r for r in caplog.records if r.name == "facegate.errors"]
    assert "req-42" in record.getMessage() and record.exc_info is not None
    assert record.exc_info[0] is ZeroDivisionError


def test_a_malformed_request_id_is_replaced() -> None:
    reply = asyncio.run(_request(_middleware(_nothing), request_id="bad id\n"))
    assert reply.status == 200
    assert reply.headers["x-request-id"] != "bad id\n" and len(reply.headers["x-request-id"]) == 32
