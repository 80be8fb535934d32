"""Access control, admission limits, request ids, metrics, CORS, drain and privacy of logs."""

from __future__ import annotations

import base64
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from gateway.app import create_app
from gateway.auth import AuthConfigError
from gateway.config import Settings
from gateway.ops.servers.triton import EmbeddedTriton

from ..images import encode, square_image
from .conftest import ADMIN_KEY, USER_KEY, ServerThread, api_client, gateway_settings

pytestmark = pytest.mark.integration
FACE = encode(square_image(640, 640, [(240, 128, 64), (480, 320, 128)]))


def test_no_key_is_401_and_unknown_key_is_401(gateway_url: str) -> None:
    with httpx.Client(base_url=gateway_url, timeout=60) as anonymous:
        response = anonymous.post("/v1/detect", files={"image": FACE})
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"]["code"] == "unauthenticated"
        wrong = anonymous.post("/v1/detect", files={"image": FACE}, headers={"X-API-Key": "x" * 24})
        assert wrong.status_code == 401
        assert anonymous.get("/health/live").status_code == 200
        assert anonymous.get("/metrics").status_code == 200


def test_user_scope_may_detect_but_not_manage_models(gateway_url: str) -> None:
    with api_client(gateway_url, USER_KEY) as user:
        assert user.post("/v1/detect", files={"image": FACE}).status_code == 200
        assert user.get("/v1/models").status_code == 200
        forbidden = user.post("/v1/models/swapper/unload")
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["code"] == "forbidden"


def test_bearer_token_works(gateway_url: str) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=gateway_url, timeout=60, headers=headers) as bearer:
        assert bearer.post("/v1/detect", files={"image": FACE}).status_code == 200


def test_auth_is_off_only_when_explicitly_disabled(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(AuthConfigError, match="FACEGATE_API_KEYS"):
        create_app(Settings(triton_url="localhost:1"))
    with pytest.raises(AuthConfigError, match="16 characters"):
        create_app(Settings(triton_url="localhost:1", api_keys="user:short"))
    with caplog.at_level(logging.WARNING):
        create_app(Settings(triton_url="localhost:1", auth_disabled=True))
    assert "DISABLED" in caplog.text


def test_request_id_is_echoed_or_generated(client: httpx.Client) -> None:
    echoed = client.get("/health/live", headers={"X-Request-ID": "trace-123"})
    assert echoed.headers["x-request-id"] == "trace-123"
    generated = client.post("/v1/detect", files={"image": FACE})
    assert len(generated.headers["x-request-id"]) == 32
    sneaky = client.get("/health/live", headers={"X-Request-ID": "ok-id\tinjected"})
    assert sneaky.headers["x-request-id"] != "ok-id\tinjected"


def test_metrics_count_requests_and_triton_calls(client: httpx.Client) -> None:
    client.post("/v1/detect", files={"image": FACE}, params={"embed": "true"})
    text = client.get("/metrics").text
    assert 'facegate_requests_total{method="POST",route="/v1/detect",status="200"}' in text
    assert 'facegate_triton_call_seconds_count{model="detector"}' in text
    assert 'facegate_triton_call_seconds_count{model="recognizer"}' in text
    assert "facegate_in_flight_requests" in text and "facegate_swapper_loaded" in text


def test_in_flight_limit_answers_429(triton: EmbeddedTriton) -> None:
    settings = gateway_settings(triton, max_in_flight=1)
    big = [("images", encode(square_image(2000, 2000, [(1000, 1000, 400)]))) for _ in range(8)]
    with (
        ServerThread(settings) as server,
        api_client(server.url) as http,
        ThreadPoolExecutor(4) as pool,
    ):
        responses = list(pool.map(lambda _: http.post("/v1/detect/batch", files=big), range(4)))
    codes = sorted(r.status_code for r in responses)
    assert codes[0] == 200 and 429 in codes
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["retry-after"] and refused.json()["error"]["code"] == "overloaded"


def test_request_deadline_answers_504(triton: EmbeddedTriton) -> None:
    settings = gateway_settings(triton, request_timeout_s=0.05)
    big = [("images", encode(square_image(3000, 3000, []))) for _ in range(6)]
    with ServerThread(settings) as server, api_client(server.url) as http:
        response = http.post("/v1/detect/batch", files=big)
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "deadline_exceeded"
        assert http.get("/health/live").status_code == 200


def test_draining_refuses_new_work_and_unreadies(triton: EmbeddedTriton) -> None:
    with ServerThread(gateway_settings(triton)) as server, api_client(server.url) as http:
        assert http.get("/health/ready").status_code == 200
        server.server.config.app.state.admission.draining = True  # what SIGTERM does first
        refused = http.post("/v1/detect", files={"image": FACE})
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert http.get("/health/ready").status_code == 503


def test_cors_off_by_default_and_on_when_configured(
    triton: EmbeddedTriton, client: httpx.Client
) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    assert (
        "access-control-allow-origin" not in client.options("/v1/detect", headers=preflight).headers
    )
    settings = gateway_settings(triton, cors_origins=["https://app.example"])
    with ServerThread(settings) as server, api_client(server.url) as http:
        allowed = http.options("/v1/detect", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"


def test_no_embedding_or_image_bytes_in_debug_logs(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    image = encode(square_image(640, 640, [(240, 128, 64)], value=201))
    with caplog.at_level(logging.DEBUG):
        detected = client.post(
            "/v1/detect", files={"image": image}, params={"embed": "true"}
        ).json()
        client.post("/v1/detect/batch", files=[("images", image)] * 2, params={"embed": "true"})
        client.post("/v1/detect", json={"image": base64.b64encode(image).decode()})
        client.post("/v1/verify", files={"image_a": image, "image_b": image})
        client.post("/v1/swap", files=[("source", image), ("target", FACE)])
        client.get("/v1/models")
        threading.Event().wait(0.2)
    text = caplog.text
    assert "POST /v1/detect" in text  # the access log did run at debug level
    embedding = np.array(detected["faces"][0]["embedding"])
    for value in embedding[:32]:
        assert f"{value:.6f}"[:8] not in text
        assert repr(float(value))[:10] not in text
    assert base64.b64encode(image).decode()[40:80] not in text
    assert image[16:48].hex() not in text and str(image[16:48]) not in text


def test_keys_file_with_comments_and_commas(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    from gateway.auth import load_api_keys

    keys_file = Path(str(tmp_path)) / "keys"
    keys_file.write_text(
        f"# generated, rotate by restart, keep secret\nuser:{USER_KEY}  # the app\nadmin:{ADMIN_KEY}\n"
    )
    keys = load_api_keys("", keys_file, disabled=False)
    assert keys.scope_of(USER_KEY) == "user" and keys.scope_of(ADMIN_KEY) == "admin"
    assert keys.scope_of("nope" * 5) is None
