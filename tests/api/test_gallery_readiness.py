"""Readiness reports a broken gallery database in its body and in facegate_gallery_up, and
the gateway stays in service (detection does not need the gallery)."""

from __future__ import annotations

import asyncio
import re
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from gateway.api import health
from gateway.app import create_app
from gateway.errors import GalleryUnavailable, NotFound

from ..conftest import free_port
from ..fakes import FakeBackend
from ..images import encode, square_image
from .test_app_fake_backend import ADMIN_KEY, _settings


def gallery_up(http: TestClient) -> float | None:
    found = re.search(r"^facegate_gallery_up (\S+)$", http.get("/metrics").text, re.M)
    return float(found.group(1)) if found else None


class StubGallery:
    """The one call readiness makes, answering as a database in the given state would."""

    def __init__(self, state: str) -> None:
        self.state = state
        self.calls = 0

    async def get_collection(self, name: str) -> None:
        self.calls += 1
        if self.state == "hung":
            await asyncio.sleep(3600)
        if self.state == "slow":
            await asyncio.sleep(0.05)
        if self.state == "defect":
            raise KeyError("a bug")
        if self.state == "broken":
            raise GalleryUnavailable('relation "gallery_collections" does not exist')
        raise NotFound(f"no collection '{name}'")


def unreachable_gallery_app() -> TestClient:
    url = f"postgresql://facegate:pw@127.0.0.1:{free_port()}/facegate"
    app = create_app(_settings(gallery_url=url), models=FakeBackend())
    return TestClient(app, headers={"X-API-Key": ADMIN_KEY})


def test_an_unreachable_gallery_is_reported_and_the_gateway_stays_ready() -> None:
    with unreachable_gallery_app() as http:
        ready = http.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert ready.json()["detail"].startswith("gallery unavailable: ")
        assert gallery_up(http) == 0
        image = encode(square_image(640, 640, [(240, 128, 64)]))
        assert http.post("/v1/detect", files={"image": image}).status_code == 200


def test_no_gallery_no_gallery_metric() -> None:
    with TestClient(create_app(_settings(), models=FakeBackend())) as http:
        assert http.get("/health/ready").json()["status"] == "ready"
        assert gallery_up(http) is None


def test_readiness_follows_the_database_and_checks_it_at_most_once_per_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with unreachable_gallery_app() as http:
        stub = StubGallery("broken")
        http.app.state.gallery = stub  # type: ignore[attr-defined]
        ready = http.get("/health/ready").json()
        assert ready["status"] == "degraded" and "does not exist" in ready["detail"]
        assert gallery_up(http) == 0
        # Probes inside the interval reuse the last answer: one query per interval.
        for _ in range(5):
            http.get("/health/ready")
        assert stub.calls == 1

        monkeypatch.setattr(health, "GALLERY_CHECK_S", 0.0)
        stub.state = "ok"
        assert http.get("/health/ready").json() == {"status": "ready", "detail": ""}
        assert gallery_up(http) == 1


def test_a_hung_database_does_not_hold_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "GALLERY_CHECK_WAIT_S", 0.05)
    with unreachable_gallery_app() as http:
        http.app.state.gallery = StubGallery("hung")  # type: ignore[attr-defined]
        ready = http.get("/health/ready")
        assert ready.status_code == 200
        assert "has not answered in 0.05 s" in ready.json()["detail"]
        assert gallery_up(http) == 0


def test_a_defect_in_the_check_is_reported_not_a_500() -> None:
    with unreachable_gallery_app() as http:
        http.app.state.gallery = StubGallery("defect")  # type: ignore[attr-defined]
        ready = http.get("/health/ready")
        assert ready.status_code == 200
        assert "the gallery check failed (KeyError)" in ready.json()["detail"]


def test_overlapping_probes_share_one_check_and_all_get_its_answer() -> None:
    # The first probe to resume clears the shared check; the others must still answer (they
    # read a cleared check and answered 500 before).
    async def probes() -> list[str | None]:
        gallery = health.GalleryHealth(CollectorRegistry())
        state = SimpleNamespace(gallery=stub)
        return await asyncio.gather(*(gallery.problem(state) for _ in range(4)))

    stub = StubGallery("slow")
    assert asyncio.run(probes()) == [None] * 4
    assert stub.calls == 1
