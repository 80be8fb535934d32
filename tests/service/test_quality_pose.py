"""Quality's head pose: asked of 1k3d68 only when wanted and served, and its failure handled."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest

from gateway.errors import UpstreamTimeout, UpstreamUnavailable
from gateway.service.gallery import Gallery
from gateway.service.pipeline import DetectOptions, Pipeline, Timings
from gateway.triton import spec

from ..fakes import FakeBackend
from ..images import encode, square_image


class _LandmarkBackend(FakeBackend):
    """FakeBackend with the landmark models: 1k3d68 served or not, failing or not."""

    def __init__(self, *, served: bool = True, fail: BaseException | None = None) -> None:
        super().__init__([True])
        self.served = served
        self.fail = fail
        self.landmark_calls = 0

    async def landmarks_2d106(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        raise AssertionError("quality never asks for the 106 points")

    async def landmarks_3d68(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        self.landmark_calls += 1
        if self.fail is not None:
            raise self.fail
        return np.zeros((len(crops_bgr), spec.LANDMARK_3D68_OUTPUT.shape[0]), np.float32)

    async def landmarks_served(self) -> tuple[bool, bool]:
        return self.served, self.served


def _quality(models: _LandmarkBackend, **options: Any) -> Any:
    pipeline = Pipeline(models, ThreadPoolExecutor(2), max_pixels=10_000_000, nms_iou=0.4)
    image = encode(square_image(640, 640, [(160, 160, 64)]))
    (faces,) = asyncio.run(
        pipeline.detect([image], DetectOptions(quality=True, **options), Timings())
    )
    assert faces.quality is not None
    return faces.quality


def test_quality_asks_1k3d68_where_served_and_not_when_pose_is_off() -> None:
    models = _LandmarkBackend()
    quality = _quality(models)
    assert models.landmark_calls == 1 and np.isfinite(quality.pose).all()
    models = _LandmarkBackend()
    quality = _quality(models, quality_pose=False)
    assert models.landmark_calls == 0 and np.isnan(quality.pose).all()
    assert np.isfinite(quality.sharpness).all() and np.isfinite(quality.norm).all()


def test_an_unserved_1k3d68_costs_no_failing_call() -> None:
    models = _LandmarkBackend(served=False)
    quality = _quality(models)
    assert models.landmark_calls == 0 and np.isnan(quality.pose).all()


@pytest.mark.parametrize(
    "error", [UpstreamTimeout("1k3d68 timed out"), UpstreamUnavailable("restarting")]
)
def test_a_failing_1k3d68_leaves_pose_unknown_instead_of_failing(error: Exception) -> None:
    models = _LandmarkBackend(fail=error)
    quality = _quality(models)
    assert models.landmark_calls == 1 and np.isnan(quality.pose).all()
    assert quality.levels[0] in ("low", "medium", "high")


class _RecordingPipeline:
    def __init__(self) -> None:
        self.options: list[DetectOptions] = []

    async def detect(self, images: Any, options: DetectOptions, timings: Any) -> Any:
        self.options.append(options)
        raise _Stop


class _Stop(Exception):
    pass


class _Store:
    async def collection_recognizer(self, collection: str) -> str:
        return "0" * 64


def test_identify_grades_pose_only_when_asked() -> None:
    pipeline = _RecordingPipeline()

    async def sha() -> str:
        return "0" * 64

    gallery = Gallery(cast(Any, _Store()), cast(Any, pipeline), sha)
    for pose in (None, True):
        extra = {} if pose is None else {"pose": pose}
        with pytest.raises(_Stop):
            asyncio.run(
                gallery.identify_image(
                    "c",
                    b"jpeg",
                    top_k=1,
                    threshold=0.3,
                    max_faces=1,
                    detect_threshold=0.5,
                    **extra,
                )
            )
    assert [(o.quality, o.quality_pose) for o in pipeline.options] == [(True, False), (True, True)]


def _pose(models: _LandmarkBackend) -> None:
    _quality(models, pose=True)


def test_pose_on_a_restarting_triton_is_its_own_503_not_install_the_models() -> None:
    restarting = UpstreamUnavailable("Triton is restarting", retry_after_s=5)
    with pytest.raises(UpstreamUnavailable) as caught:
        _pose(_LandmarkBackend(fail=restarting))
    assert caught.value.retry_after_s == 5 and "install" not in caught.value.message


def test_pose_without_1k3d68_says_what_to_install_and_makes_no_call() -> None:
    models = _LandmarkBackend(served=False)
    with pytest.raises(UpstreamUnavailable) as caught:
        _pose(models)
    assert models.landmark_calls == 0
    assert caught.value.retry_after_s == 60 and "1k3d68.onnx" in caught.value.message
