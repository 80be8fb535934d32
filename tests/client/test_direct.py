"""FaceClient straight to Triton: the REST gateway's answers, over the wire and shared memory."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.utils.shared_memory as shm

from gateway.client import (
    AsyncFaceClient,
    ClientOptions,
    FaceClient,
    FaceRestClient,
    ImageFaces,
    NoFaceFound,
)
from gateway.client.aio import is_local
from gateway.client.errors import InvalidArgument
from gateway.errors import InvalidParameter, PayloadTooLarge, UndecodableImage
from gateway.ops.servers.triton import EmbeddedTriton
from gateway.triton.shared_memory import SharedMemoryFaceModels, SharedMemoryUnavailable

from ..images import encode, square_image

pytestmark = pytest.mark.integration

# Squares of side 4*stride centred on the stride grid: the tiny detector's exact faces.
SQUARES = [(240, 128, 64), (96, 400, 32), (480, 320, 128)]
IMAGES = [
    square_image(640, 640, SQUARES),
    square_image(1280, 1280, [(cx * 2, cy * 2, s * 2) for cx, cy, s in SQUARES[:2]]),
    square_image(640, 480, SQUARES[1:2], value=200),
    square_image(320, 320, []),
]


def assert_same_faces(ours: ImageFaces, theirs: ImageFaces) -> None:
    """Equal up to the REST answer's rounding (3 decimals for pixels, 6 for scores)."""
    assert (ours.width, ours.height) == (theirs.width, theirs.height)
    assert len(ours.detections) == len(theirs.detections)
    np.testing.assert_allclose(ours.detections.boxes, theirs.detections.boxes, atol=6e-4)
    np.testing.assert_allclose(ours.detections.kps, theirs.detections.kps, atol=6e-4)
    np.testing.assert_allclose(ours.detections.scores, theirs.detections.scores, atol=6e-7)
    if theirs.embeddings is None:
        assert ours.embeddings is None
        return
    assert ours.embeddings is not None and ours.embedding_norms is not None
    assert theirs.embedding_norms is not None
    np.testing.assert_allclose(ours.embeddings, theirs.embeddings, atol=1e-6)
    np.testing.assert_allclose(ours.embedding_norms, theirs.embedding_norms, rtol=1e-6)


def test_detect_and_embed_equal_rest(direct: FaceClient, rest: FaceRestClient) -> None:
    theirs = rest.detect_batch([encode(img) for img in IMAGES], embed=True)
    # Arrays and encoded bytes are the same image to the direct client.
    ours = direct.embed([IMAGES[0], encode(IMAGES[1]), IMAGES[2], encode(IMAGES[3])])
    assert [len(f.detections) for f in ours] == [3, 2, 1, 0]
    for mine, reference in zip(ours, theirs, strict=True):
        assert_same_faces(mine, reference)
    plain = direct.detect(IMAGES[:1], max_faces=2, min_size_px=40)
    assert_same_faces(plain[0], rest.detect(IMAGES[0], max_faces=2, min_size_px=40))
    assert plain[0].embeddings is None


def test_verify_equals_rest(direct: FaceClient, rest: FaceRestClient) -> None:
    image_b = square_image(640, 640, [(320, 320, 128)], value=180)
    ours = direct.verify(IMAGES[0], encode(image_b))
    theirs = rest.verify(IMAGES[0], image_b)
    assert ours.similarity == pytest.approx(theirs.similarity, abs=1e-6)
    assert (ours.threshold, ours.match) == (theirs.threshold, theirs.match)
    np.testing.assert_allclose(ours.face_a.detections.boxes, theirs.face_a.boxes, atol=6e-4)
    with pytest.raises(NoFaceFound, match="image_b"):
        direct.verify(IMAGES[0], IMAGES[3])


def test_stream_keeps_order_across_batches(direct: FaceClient) -> None:
    images = [IMAGES[i % 3] for i in range(7)]
    single = direct.detect(IMAGES[:3], embed=True)
    streamed = list(direct.detect_stream(iter(images), embed=True, batch_size=3))
    assert len(streamed) == 7
    for index, faces in enumerate(streamed):
        assert_same_faces(faces, single[index % 3])


def test_shared_memory_answers_are_the_wire_answers(
    triton: EmbeddedTriton, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More faces than the recognizer's max batch (32): several recognizer requests share regions.
    crowd = square_image(
        640, 640, [(48 + 64 * x, 48 + 64 * y, 32) for x in range(9) for y in range(4)]
    )
    images = [crowd, *IMAGES]
    options = ClientOptions(shm_regions_per_model=1)
    with FaceClient(triton.grpc_url, use_shared_memory=False) as wire:
        expected = wire.embed(images)
    through_regions: list[str] = []
    infer_in = SharedMemoryFaceModels._infer_in

    async def spy(self: SharedMemoryFaceModels, region: Any, *args: Any) -> Any:
        through_regions.append(region.name)
        return await infer_in(self, region, *args)

    monkeypatch.setattr(SharedMemoryFaceModels, "_infer_in", spy)
    with FaceClient(triton.grpc_url, use_shared_memory=True, options=options) as local:
        got = local.embed(images)
    # One detector request (5 frames) per detector size (128 and 640 by default), two
    # recognizer requests (32 + 4 faces), one region each.
    assert sorted(name.rsplit("-", 2)[1] for name in through_regions) == [
        "detector",
        "detector",
        "recognizer",
        "recognizer",
    ]
    assert len(expected[0].detections) == 36
    for mine, reference in zip(got, expected, strict=True):
        assert_same_faces(mine, reference)
        if mine.embeddings is not None and reference.embeddings is not None:
            assert np.array_equal(mine.embeddings, reference.embeddings)


def registered_regions(triton: EmbeddedTriton) -> set[str]:
    status = grpcclient.InferenceServerClient(triton.grpc_url).get_system_shared_memory_status(
        as_json=True
    )
    return set(status.get("regions", {}))


def test_regions_registered_once_and_unregistered_on_close(triton: EmbeddedTriton) -> None:
    before = registered_regions(triton)
    client = FaceClient(triton.grpc_url)  # "auto" on 127.0.0.1: shared memory
    names = set(client.shared_memory_regions)
    assert client.shared_memory and len(names) == 4  # 2 detector + 2 recognizer regions
    client.detect(IMAGES[:2], embed=True)
    assert registered_regions(triton) - before == names
    client.close()
    assert registered_regions(triton) == before
    assert not set(shm.mapped_shared_memory_regions()) & {f"/{n}" for n in names}


def test_auto_falls_back_to_the_wire_and_true_insists(
    triton: EmbeddedTriton, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(name: str, key: str, byte_size: int) -> None:
        raise shm.SharedMemoryException("unable to get shared memory descriptor")

    monkeypatch.setattr(shm, "create_shared_memory_region", refuse)
    with FaceClient(triton.grpc_url, use_shared_memory="auto") as client:
        assert not client.shared_memory
        assert len(client.detect(IMAGES[:1])[0].detections) == 3
    with pytest.raises(SharedMemoryUnavailable, match="cannot create"):
        FaceClient(triton.grpc_url, use_shared_memory=True)
    assert is_local("127.0.0.1:8001") and is_local("[::1]:8001") and not is_local("triton:8001")


def test_async_client_concurrent_calls_share_one_channel(triton: EmbeddedTriton) -> None:
    async def main() -> list[list[ImageFaces]]:
        async with AsyncFaceClient(triton.grpc_url) as client:
            return await asyncio.gather(*(client.detect(IMAGES[i : i + 1]) for i in range(3)))

    results = asyncio.run(main())
    assert [len(r[0].detections) for r in results] == [3, 2, 1]


def test_bad_images_raise_the_error_tree(direct: FaceClient) -> None:
    grey: npt.NDArray[np.uint8] = np.zeros((64, 64), np.uint8)
    with pytest.raises(InvalidArgument, match="uint8"):
        direct.detect([grey])
    with pytest.raises(UndecodableImage):
        direct.detect([encode(IMAGES[0])[:200]])
    with pytest.raises(InvalidArgument, match="not str"):
        direct.detect(["photo.jpg"])
    small = ClientOptions(max_image_pixels=100)
    with (
        FaceClient("127.0.0.1:1", use_shared_memory=False, options=small) as offline,
        pytest.raises(PayloadTooLarge),
    ):
        offline.detect([IMAGES[0]])


def test_verify_honours_the_clients_detect_threshold(triton: EmbeddedTriton) -> None:
    image_b = square_image(640, 640, [(320, 320, 128)], value=180)
    with FaceClient(triton.grpc_url, use_shared_memory=False) as default:
        (faces,) = default.detect([image_b])
        score = float(faces.detections.scores[0])
        assert default.verify(IMAGES[0], image_b).face_b.detections.scores[0] == score
    assert score < 0.999  # room above the face's score for a stricter threshold
    strict = ClientOptions(detect_threshold=(score + 1.0) / 2)
    with (
        FaceClient(triton.grpc_url, use_shared_memory=False, options=strict) as client,
        pytest.raises(NoFaceFound, match="image_b"),
    ):
        client.verify(IMAGES[0], image_b)


@pytest.mark.parametrize("det_sizes", ["640", (128, 640)])
def test_analysis_options_equal_rest(
    direct: FaceClient, rest: FaceRestClient, det_sizes: str | tuple[int, ...]
) -> None:
    options: dict[str, Any] = {"det_sizes": det_sizes, "attributes": True, "liveness": True}
    for image in IMAGES[:3]:
        ours = direct.detect([image], **options)[0]
        theirs = rest.detect(image, **options)
        assert_same_faces(ours, theirs)
        assert ours.attributes is not None and theirs.attributes is not None
        assert ours.attributes.labels() == theirs.attributes.labels()
        assert ours.attributes.ages.tolist() == theirs.attributes.ages.tolist()
        assert ours.liveness is not None and theirs.liveness is not None
        np.testing.assert_allclose(ours.liveness.scores, theirs.liveness.scores, atol=1e-6)
        assert ours.liveness.is_live.tolist() == theirs.liveness.is_live.tolist()


def test_embed_crops_equal_rest(direct: FaceClient, rest: FaceRestClient) -> None:
    crops = np.random.default_rng(5).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    ours, our_norms = direct.embed_crops(list(crops))
    theirs, their_norms = rest.embed_crops(list(crops))
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    np.testing.assert_allclose(our_norms, their_norms, rtol=1e-6)
    with pytest.raises(InvalidParameter, match="112x112"):
        direct.embed_crops([np.zeros((100, 100, 3), np.uint8)])


def test_landmarks_pose_and_quality_equal_rest(direct: FaceClient, rest: FaceRestClient) -> None:
    options: dict[str, Any] = {"dense_landmarks": True, "pose": True, "quality": True}
    for image in IMAGES[:3]:
        ours = direct.detect([image], **options)[0]
        theirs = rest.detect(image, **options)
        assert_same_faces(ours, theirs)
        assert ours.landmarks is not None and theirs.landmarks is not None
        assert ours.landmarks.points_2d is not None and theirs.landmarks.points_2d is not None
        np.testing.assert_allclose(ours.landmarks.points_2d, theirs.landmarks.points_2d, atol=1e-3)
        assert ours.landmarks.pose is not None and theirs.landmarks.pose is not None
        np.testing.assert_allclose(ours.landmarks.pose.yaw, theirs.landmarks.pose.yaw, atol=1e-3)
        assert ours.quality is not None and theirs.quality is not None
        assert ours.quality.levels == theirs.quality.levels
        np.testing.assert_allclose(ours.quality.sharpness, theirs.quality.sharpness, atol=1e-3)
