"""Unit tests: compat routes are off by default, network-restricted, and admitted like /v1/."""

from __future__ import annotations

import ipaddress

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from gateway.api.compat.access import client_allowed, parse_networks
from gateway.app import create_app
from gateway.config import Settings

KEYS = "user:unit-test-user-key-0123"


def _app_client(host: str = "127.0.0.1", **settings: object) -> TestClient:
    app = create_app(Settings(api_keys=KEYS, **settings))  # type: ignore[arg-type]
    return TestClient(app, client=(host, 50000))


def test_off_by_default() -> None:
    client = _app_client()
    for method, path in (
        ("POST", "/extract"),
        ("GET", "/info"),
        ("POST", "/predict"),
        ("GET", "/ping"),
    ):
        assert client.request(method, path).status_code == 404


def test_loopback_only_by_default() -> None:
    assert _app_client("127.0.0.1", compat="immich").get("/ping").text == "pong"
    refused = _app_client("192.168.1.20", compat="immich").get("/ping")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "client_not_allowed"
    assert "FACEGATE_COMPAT_NETWORKS" in refused.json()["error"]["message"]


def test_configured_networks_are_let_in() -> None:
    client = _app_client("10.1.2.3", compat="ifr,immich", compat_networks="10.0.0.0/8")
    assert client.get("/ping").status_code == 200
    assert client.get("/info").status_code == 200
    assert (
        _app_client("127.0.0.1", compat="ifr", compat_networks="10.0.0.0/8")
        .get("/info")
        .status_code
        == 403
    )


def test_compat_work_counts_against_admission() -> None:
    client = _app_client(compat="ifr,immich", compat_immich_prefix="immich/")
    admission = client.app.state.admission  # type: ignore[attr-defined]
    assert admission.extra_paths == {"/extract", "/health", "/predict", "/immich/predict"}
    admission.draining = True
    for path in ("/extract", "/predict", "/immich/predict"):
        response = client.post(path)
        assert response.status_code == 503 and response.json()["error"]["code"] == "shutting_down"
    admission.draining = False
    admission.max_in_flight, admission.in_flight = 1, 1
    assert client.post("/extract").status_code == 429
    assert client.get("/ping").status_code == 200  # liveness stays outside the limit


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("testclient", False),
        (None, False),
    ],
)
def test_client_allowed(host: str | None, allowed: bool) -> None:
    assert client_allowed(host, parse_networks("127.0.0.1/32, ::1/128")) is allowed


def test_parse_networks() -> None:
    assert parse_networks("10.0.0.0/8,,fd00::/8") == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    )


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("compat", "ifr,clip", "clip"), ("compat_networks", "10.0.0.0/33", "10.0.0.0/33")],
)
def test_bad_settings_are_refused(field: str, value: str, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        Settings(api_keys=KEYS, **{field: value})  # type: ignore[arg-type]
