"""The gateway's own logic on a fake backend: create_app(settings, models=fake), no Triton."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.service.swapper_lifecycle import SwapperManager

from ..fakes import FakeBackend
from ..images import encode, square_image

USER_KEY = "unit-user-key-0123456789"
ADMIN_KEY = "unit-admin-key-0123456789"


def _settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "api_keys": f"user:{USER_KEY},admin:{ADMIN_KEY}",
        "json_logs": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def http(backend: FakeBackend) -> Iterator[TestClient]:
    app = create_app(_settings(), models=backend)
    with TestClient(app, headers={"X-API-Key": ADMIN_KEY}, raise_server_exceptions=False) as client:
        yield client


def test_detect_runs_on_the_fake_backend(http: TestClient, backend: FakeBackend) -> None:
    image = encode(square_image(640, 640, [(160, 160, 64)]))
    response = http.post("/v1/detect?embed=true", files={"image": image})
    assert response.status_code == 200, response.text
    (face,) = response.json()["faces"]
    assert face["bbox"] == pytest.approx([128, 128, 192, 192])
    assert len(face["embedding"]) == 512
    # One detector call per frame size (default det_sizes: 128 and 640), one recognizer call.
    assert backend.detect_calls == [1, 1] and backend.embed_calls == [1]


def test_black_image_has_no_face_and_verify_says_which(http: TestClient) -> None:
    face = encode(square_image(640, 640, [(160, 160, 64)]))
    black = encode(square_image(640, 640, []))
    response = http.post("/v1/verify", files={"image_a": face, "image_b": black})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "no_face"
    assert "image_b" in response.json()["error"]["message"]


def test_readiness_and_models_come_from_the_service(http: TestClient, backend: FakeBackend) -> None:
    assert http.get("/health/ready").json()["status"] == "ready"
    states = {m["name"]: m["state"] for m in http.get("/v1/models").json()["models"]}
    assert states == backend.states
    backend.states["recognizer"] = "UNAVAILABLE"
    ready = http.get("/health/ready")
    assert ready.status_code == 503 and "recognizer is UNAVAILABLE" in ready.json()["detail"]


def test_admin_load_goes_through_the_swapper_lifecycle(
    http: TestClient, backend: FakeBackend
) -> None:
    response = http.post("/v1/models/swapper/load")
    assert response.status_code == 200 and response.json()["state"] == "READY"
    assert backend.control_calls == ["load swapper"]
    response = http.post("/v1/models/swapper/unload")
    assert response.status_code == 200 and response.json()["state"] == "UNAVAILABLE"


def test_a_backend_passed_in_is_left_open(backend: FakeBackend) -> None:
    with TestClient(create_app(_settings(), models=backend)) as client:
        assert client.get("/health/live").status_code == 200
    assert not backend.closed


def test_an_unexpected_backend_failure_is_a_500_in_the_error_body(
    http: TestClient, backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    backend.fail_with = RuntimeError("backend bug")
    image = encode(square_image(640, 640, [(160, 160, 64)]))
    response = http.post("/v1/detect", files={"image": image}, headers={"X-Request-ID": "r-1"})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert response.json()["error"]["request_id"] == "r-1" == response.headers["x-request-id"]
    logged = "\n".join(r.getMessage() for r in caplog.records if r.exc_info)
    assert "r-1" in logged
    # The log line names the failure, never the request's image bytes.
    assert image[:16].hex() not in caplog.text and str(image[:16]) not in caplog.text


def test_openapi_documents_every_error_status_from_the_tree(http: TestClient) -> None:
    spec = http.get("/openapi.json").json()
    documented = spec["paths"]["/v1/detect"]["post"]["responses"]
    assert {"400", "401", "413", "415", "422", "429", "500", "503", "504"} <= set(documented)
    assert "no_face" in documented["422"]["description"]
    assert "invalid_parameter" in documented["422"]["description"]
    admin = spec["paths"]["/v1/models/swapper/load"]["post"]["responses"]
    assert {"401", "403", "503"} <= set(admin)


def test_a_bug_in_the_swapper_load_is_a_500_with_the_request_id(
    http: TestClient, backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_load(model: str, timeout_s: float) -> None:
        raise KeyError("a bug, not Triton refusing")

    monkeypatch.setattr(backend, "load_model", broken_load)
    response = http.post("/v1/models/swapper/load", headers={"X-Request-ID": "r-swap"})
    assert response.status_code == 500, response.text
    assert response.json()["error"]["request_id"] == "r-swap"
    # Not held like an outage: the next call asks again (and gets the same 500).
    assert http.post("/v1/models/swapper/load").status_code == 500


def test_cors_allows_every_method_the_api_uses(backend: FakeBackend) -> None:
    app = create_app(_settings(cors_origins=["https://app.example"]), models=backend)
    paths = app.openapi()["paths"].values()
    used = {method.upper() for operations in paths for method in operations}
    assert {"PUT", "DELETE"} <= used
    with TestClient(app) as client:
        for method in sorted(used):
            preflight = client.options(
                "/v1/collections/c",
                headers={
                    "Origin": "https://app.example",
                    "Access-Control-Request-Method": method,
                },
            )
            assert preflight.status_code == 200, (method, preflight.text)
            assert method in preflight.headers["access-control-allow-methods"]


def test_a_background_task_that_dies_is_logged_while_the_gateway_runs(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the swapper reaper is logged at ERROR, with its traceback, when it happens.

    Needs nothing of gateway/background.py, so it runs on the first round's old app.py too: its
    bare create_task let the reaper die in silence (this test failed there on the log).
    """

    async def reap_once(self: SwapperManager) -> bool:
        raise RuntimeError("a bug in the reaper")

    def died() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.levelno >= logging.ERROR
            and "swapper-reaper" in r.getMessage()
            and r.exc_info is not None
            and "a bug in the reaper" in str(r.exc_info[1])
        ]

    monkeypatch.setattr(SwapperManager, "reap_once", reap_once)
    app = create_app(_settings(swapper_idle_ttl_s=0.2), models=backend)
    with caplog.at_level(logging.ERROR), TestClient(app) as client:
        deadline = time.monotonic() + 10
        while not died() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert died(), "the reaper died without an ERROR record"
        assert client.get("/health/live").status_code == 200


def test_a_background_task_that_dies_is_logged_and_restarted(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    restarted = threading.Event()

    async def reap_once(self: SwapperManager) -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the reaper")
        restarted.set()
        return False

    monkeypatch.setattr(SwapperManager, "reap_once", reap_once)
    monkeypatch.setattr("gateway.background.RESTART_S", 0.01, raising=False)
    app = create_app(_settings(swapper_idle_ttl_s=0.2), models=backend)
    with TestClient(app):
        assert restarted.wait(10)
    died = [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR and "swapper-reaper" in r.getMessage()
    ]
    assert died and died[0].exc_info is not None


def test_render_takes_a_jpeg_quality_and_a_bad_one_is_a_422(http: TestClient) -> None:
    # /v1/detect's boolean `quality` must not clash with render's JPEG quality (1-100).
    image = encode(square_image(640, 640, [(160, 160, 64)]))
    for value in ("80", "100"):
        response = http.post(
            "/v1/detect/render", params={"format": "jpeg", "quality": value}, files={"image": image}
        )
        assert response.status_code == 200, response.text
        assert response.content.startswith(b"\xff\xd8")
    response = http.post(
        "/v1/detect/render", params={"format": "jpeg", "quality": "true"}, files={"image": image}
    )
    assert response.status_code == 422, response.text


def test_cors_lets_a_browser_app_read_the_headers_the_api_sets(backend: FakeBackend) -> None:
    """Location (a 202 erasure's job URL) and Retry-After; the first round exposed no Location."""
    app = create_app(_settings(cors_origins=["https://app.example"]), models=backend)
    with TestClient(app) as client:
        response = client.get("/health/live", headers={"Origin": "https://app.example"})
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"location", "retry-after", "x-request-id", "x-faces", "x-faces-swapped"} <= exposed
