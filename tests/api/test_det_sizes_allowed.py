"""FACEGATE_DET_SIZES_ALLOWED: a detector prepared for some sizes only (TensorRT's warmed-up
engines) serves those and answers 422 for any other, before any work."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from gateway.app import create_app

from ..fakes import FakeBackend
from ..images import encode, square_image
from .test_app_fake_backend import ADMIN_KEY, _settings

IMAGE = encode(square_image(640, 640, [(240, 128, 64)]))


def test_only_the_allowed_sizes_are_served() -> None:
    backend = FakeBackend()
    app = create_app(_settings(det_sizes_allowed="128,640"), models=backend)
    with TestClient(app, headers={"X-API-Key": ADMIN_KEY}) as http:
        assert http.post("/v1/detect", files={"image": IMAGE}).status_code == 200
        assert http.post("/v1/detect?det_sizes=640", files={"image": IMAGE}).status_code == 200
        calls = len(backend.detect_calls)
        refused = http.post("/v1/detect?det_sizes=320,640", files={"image": IMAGE})
        assert refused.status_code == 422
        error = refused.json()["error"]
        assert error["code"] == "invalid_parameter"
        assert "320" in error["message"] and "128,640" in error["message"]
        assert len(backend.detect_calls) == calls, "refused before the detector ran"


def test_any_size_without_the_setting() -> None:
    with TestClient(
        create_app(_settings(), models=FakeBackend()), headers={"X-API-Key": ADMIN_KEY}
    ) as http:
        assert http.post("/v1/detect?det_sizes=320", files={"image": IMAGE}).status_code == 200


def test_default_sizes_must_be_allowed() -> None:
    with pytest.raises(ValidationError, match="FACEGATE_DET_SIZES_ALLOWED"):
        _settings(det_sizes="128,640", det_sizes_allowed="640")
    assert _settings(det_sizes="640", det_sizes_allowed="640").det_sizes_allowed_px == (640,)
