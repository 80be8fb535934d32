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

from gateway.admission import Admission, parse_rate_limits
from gateway.auth import load_api_keys, unnamed_key_name
from gateway.metrics import Metrics
from gateway.middleware import GatewayMiddleware

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


KEY_A = "key-of-app-a-0123456789"
KEY_B = "key-of-app-b-0123456789"


def _keyed_middleware(
    app: Callable[..., Awaitable[None]], **admission: Any
) -> tuple[GatewayMiddleware, Metrics]:
    keys = load_api_keys(f"user/app-a:{KEY_A},user:{KEY_B}", None, False)
    metrics = Metrics()
    limits = Admission(admission.pop("max_in_flight", 64), 60.0, **admission)
    return GatewayMiddleware(app, metrics, limits, keys), metrics


async def _keyed_request(
    middleware: GatewayMiddleware, key: str | None, receive: Any = None
) -> Reply:
    reply = Reply()
    headers = [(b"x-api-key", key.encode())] if key else []
    scope = {"type": "http", "path": "/v1/detect", "method": "POST", "headers": headers}

    async def complete_body() -> dict[str, Any]:
        return {"type": "http.request", "body": b"img", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            reply.status = message["status"]
            reply.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        else:
            reply.body += message.get("body", b"")

    await middleware(scope, receive or complete_body, send)
    return reply


def _body_reading_app(read: list[bytes]) -> Callable[..., Awaitable[None]]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            read.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["state"]["caller"].name.encode()})

    return app


def test_a_missing_or_unknown_key_is_401_before_the_body_is_read_and_takes_no_slot() -> None:
    read: list[bytes] = []
    middleware, metrics = _keyed_middleware(_body_reading_app(read))
    for key in (None, "not-a-key-0123456789"):
        reply = asyncio.run(_keyed_request(middleware, key))
        assert reply.status == 401 and reply.json()["error"]["code"] == "unauthenticated"
    assert read == [] and middleware.admission.in_flight == 0
    assert metrics.key_rejected.labels("unknown", "unauthenticated")._value.get() == 2
    ok = asyncio.run(_keyed_request(middleware, KEY_A))
    assert ok.status == 200 and ok.body == b"app-a" and read == [b"img"]
    unnamed = asyncio.run(_keyed_request(middleware, KEY_B))
    assert unnamed.body.decode() == unnamed_key_name(KEY_B)


def test_one_keys_share_is_refused_per_key_and_counted_by_name() -> None:
    async def scenario() -> tuple[Reply, Reply, Metrics]:
        release = asyncio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        middleware, metrics = _keyed_middleware(app, per_key_in_flight=2)
        held = [asyncio.create_task(_keyed_request(middleware, KEY_A)) for _ in range(2)]
        while middleware.admission.in_flight < 2:
            await asyncio.sleep(0)
        assert metrics.key_in_flight.labels("app-a")._value.get() == 2
        refused = await _keyed_request(middleware, KEY_A)
        other = asyncio.create_task(_keyed_request(middleware, KEY_B))
        while middleware.admission.in_flight < 3:
            await asyncio.sleep(0)
        release.set()
        await asyncio.gather(*held)
        return refused, await other, metrics

    refused, other, metrics = asyncio.run(scenario())
    assert refused.status == 429 and refused.json()["error"]["code"] == "key_overloaded"
    assert refused.headers["retry-after"] == "1"
    assert other.status == 200
    assert metrics.key_rejected.labels("app-a", "key_overloaded")._value.get() == 1
    assert metrics.key_in_flight.labels("app-a")._value.get() == 0


def test_a_rate_limited_key_gets_429_with_retry_after() -> None:
    middleware, _ = _keyed_middleware(_app(_nothing), rate_limits=parse_rate_limits("app-a=1"))
    assert asyncio.run(_keyed_request(middleware, KEY_A)).status == 200
    refused = asyncio.run(_keyed_request(middleware, KEY_A))
    assert refused.status == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert asyncio.run(_keyed_request(middleware, KEY_B)).status == 200


def test_a_body_slower_than_its_deadline_is_408_and_frees_the_slot() -> None:
    read: list[bytes] = []
    middleware, _ = _keyed_middleware(_body_reading_app(read), body_timeout_s=0.2)

    async def trickle() -> dict[str, Any]:
        await asyncio.sleep(0.05)  # a chunk every 50 ms, forever: under the deadline each
        return {"type": "http.request", "body": b"x", "more_body": True}

    reply = asyncio.run(_keyed_request(middleware, KEY_A, receive=trickle))
    assert reply.status == 408 and reply.json()["error"]["code"] == "body_timeout"
    assert 1 <= len(read) < 20  # it was reading, and stopped at the deadline
    assert middleware.admission.in_flight == 0 and middleware.admission.by_key == {}
    assert asyncio.run(_keyed_request(middleware, KEY_A)).status == 200


def test_the_access_line_names_the_key_never_the_key_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    middleware, _ = _keyed_middleware(_app(_nothing))
    with caplog.at_level(logging.INFO, logger="facegate.access"):
        asyncio.run(_keyed_request(middleware, KEY_A))
    (record,) = [r for r in caplog.records if r.name == "facegate.access"]
    assert record.__dict__["key"] == "app-a"
    assert KEY_A not in caplog.text and KEY_A not in str(record.__dict__)


def test_a_refusal_is_paused_so_a_flood_that_ignores_retry_after_is_slowed() -> None:
    async def scenario() -> tuple[Reply, float, int]:
        release = asyncio.Event()
        middleware, _ = _keyed_middleware(
            _app(release.wait), per_key_in_flight=1, refusal_pause_s=0.3
        )
        held = asyncio.create_task(_keyed_request(middleware, KEY_A))
        while middleware.admission.in_flight < 1:
            await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        refused = asyncio.create_task(_keyed_request(middleware, KEY_A))
        await asyncio.sleep(0.05)
        in_flight_meanwhile = middleware.admission.in_flight  # the pause holds no slot
        reply = await refused
        waited = loop.time() - started
        release.set()
        await held
        return reply, waited, in_flight_meanwhile

    reply, waited, in_flight_meanwhile = asyncio.run(scenario())
    assert reply.status == 429 and waited >= 0.3 and in_flight_meanwhile == 1
