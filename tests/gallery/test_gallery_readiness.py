"""Readiness against the real PostgreSQL: a database nobody migrated (gallery.migrate=false,
no migrate step) shows as "degraded" with the database's error, and as ready once migrated."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import quote, unquote, urlsplit

import pytest
from fastapi.testclient import TestClient

from gateway.api import health
from gateway.app import create_app
from gateway.errors import GalleryUnavailable
from gateway.storage.migrations import apply_migrations
from gateway.storage.postgres import PostgresGalleryStore

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


def test_a_wrong_password_is_reported_as_such_not_as_a_busy_pool(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "GALLERY_CHECK_S", 0.0)
    password = unquote(urlsplit(fresh_database).password or "")
    wrong = fresh_database.replace(f":{quote(password, safe='')}@", ":not-the-password@", 1)
    settings = _settings(gallery_url=wrong, gallery_migrate=False, gallery_timeout_s=1.0)
    with TestClient(create_app(settings, models=FakeBackend())) as http:
        detail = ready_when(http, lambda body: "cannot connect" in body["detail"])["detail"]
        assert "cannot connect to the gallery database (wrong password" in detail
        assert "password authentication failed" in detail
        assert "not-the-password" not in detail and "POOL_SIZE" not in detail


def test_an_exhausted_pool_still_says_so(fresh_database: str) -> None:
    apply_migrations(fresh_database)

    async def scenario() -> str:
        store = PostgresGalleryStore(fresh_database, pool_size=1, timeout_s=0.5)
        await store.open()
        try:
            async with store._connection():
                with pytest.raises(GalleryUnavailable) as caught:
                    async with store._connection():
                        pass
        finally:
            await store.close()
        return caught.value.message

    assert "raise FACEGATE_GALLERY_POOL_SIZE" in asyncio.run(scenario())
