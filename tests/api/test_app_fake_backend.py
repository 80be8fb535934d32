"""The gateway's own logic on a fake backend: create_app(settings, models=fake), no Triton."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.config import Settings

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
