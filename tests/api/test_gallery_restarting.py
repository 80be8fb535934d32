"""While `facegate serve` restarts its PostgreSQL: gallery routes 503 at once, the rest works."""

from __future__ import annotations

from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.supervision import POSTGRES, ServerStates

from ..fakes import FakeBackend
from ..images import encode, square_image
from .test_app_fake_backend import ADMIN_KEY, _settings


def test_gallery_routes_answer_503_and_readiness_says_degraded() -> None:
    servers = ServerStates()
    app = create_app(_settings(), models=FakeBackend(), servers=servers)
    image = encode(square_image(640, 640, [(240, 128, 64)]))
    with TestClient(app, headers={"X-API-Key": ADMIN_KEY}) as http:
        assert http.get("/health/ready").json()["status"] == "ready"
        servers.mark_down(POSTGRES, "exited unexpectedly (signal SIGKILL)", 5.2)

        listing = http.get("/v1/collections")
        assert listing.status_code == 503 and listing.headers["retry-after"] == "6"
        error = listing.json()["error"]
        assert error["code"] == "gallery_unavailable" and "SIGKILL" in error["message"]
        ready = http.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert "gallery database is restarting" in ready.json()["detail"]
        # What does not need the database does not notice.
        assert http.post("/v1/detect", files={"image": image}).status_code == 200
        assert http.get("/health/live").status_code == 200

        servers.mark_up(POSTGRES)
        assert http.get("/health/ready").json()["status"] == "ready"
        # No gallery configured here: the usual 503, no longer the restart's.
        assert "restarting" not in http.get("/v1/collections").json()["error"]["message"]
