"""Readiness against the real PostgreSQL: a database nobody migrated (gallery.migrate=false,
no migrate step) shows as "degraded" with the database's error, and as ready once migrated."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from gateway.api import health
from gateway.app import create_app
from gateway.storage.migrations import apply_migrations

from ..api.test_app_fake_backend import ADMIN_KEY, _settings
from ..api.test_gallery_readiness import gallery_up
from ..fakes import FakeBackend

pytestmark = [pytest.mark.gallery, pytest.mark.integration]


def ready_when(http: TestClient, done: Callable[[dict[str, str]], bool]) -> dict[str, str]:
    """The first readiness body that `done` accepts (the gateway connects and retries in the
    background, every few seconds)."""
    deadline = time.monotonic() + 30
    while True:
        body: dict[str, str] = http.get("/health/ready").json()
        if done(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_an_unmigrated_database_is_reported_until_it_is_migrated(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "GALLERY_CHECK_S", 0.0)
    settings = _settings(gallery_url=fresh_database, gallery_migrate=False)
    app = create_app(settings, models=FakeBackend())
    with TestClient(app, headers={"X-API-Key": ADMIN_KEY}) as http:
        # The database's own error, not the first "connecting" (no vector type, no tables).
        ready = ready_when(http, lambda body: "connecting" not in body["detail"])
        assert ready["status"] == "degraded"
        assert ready["detail"].startswith("gallery unavailable: ")
        assert gallery_up(http) == 0
        assert http.get("/v1/collections").status_code == 503

        apply_migrations(fresh_database)
        assert ready_when(http, lambda body: body["status"] == "ready") == {
            "status": "ready",
            "detail": "",
        }
        assert gallery_up(http) == 1
        assert http.get("/v1/collections").status_code == 200
