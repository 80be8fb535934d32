"""/v1/embed, det_sizes, attributes, liveness and /v1/detect/render against the real embedded Triton."""

from __future__ import annotations

import base64

import cv2
import httpx
import numpy as np
import pytest

from gateway.ops.servers.triton import EmbeddedTriton

from ..images import encode, square_image
from .conftest import USER_KEY, ServerThread, api_client, gateway_settings

pytestmark = pytest.mark.integration


def _crops(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(14)
    return [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(count)]


def test_embed_returns_one_unit_vector_per_crop_in_order(client: httpx.Client) -> None:
    crops = _crops(3)
    files = [("images", (f"{i}.png", encode(c), "image/png")) for i, c in enumerate(crops)]

    together = client.post("/v1/embed", files=files)
    singles = [client.post("/v1/embed", files=[f]) for f in files]

    assert together.status_code == 200, together.text
    body = together.json()
    vectors = np.array(body["embeddings"])
    assert vectors.shape == (3, 512) and len(body["embedding_norms"]) == 3
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Different crops, different vectors; the batch equals the single requests, in order.
    assert np.abs(vectors[0] @ vectors[1]) < 0.999
    for row, single in zip(vectors, singles, strict=True):
        assert single.status_code == 200, single.text
        assert float(row @ np.array(single.json()["embeddings"][0])) > 0.99999


def test_embed_accepts_json_base64(client: httpx.Client) -> None:
    payload = {"images": [base64.b64encode(encode(c)).decode() for c in _crops(2)]}
    response = client.post("/v1/embed", json=payload)
    assert response.status_code == 200, response.text
    assert len(response.json()["embeddings"]) == 2


@pytest.mark.parametrize("shape", [(640, 480, 3), (112, 113, 3), (128, 128, 3)])
def test_embed_refuses_a_crop_of_another_size_with_422(
    client: httpx.Client, shape: tuple[int, int, int]
) -> None:
    crops = [*_crops(1), np.zeros(shape, np.uint8)]
    files = [("images", (f"{i}.png", encode(c), "image/png")) for i, c in enumerate(crops)]
    response = client.post("/v1/embed", files=files)
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert "crop 1" in message and "112x112" in message


@pytest.mark.parametrize("value", ["", "abc", "100", "0", "16", "128,640,96,160,192", "4096"])
def test_bad_det_sizes_are_a_422_that_says_what_is_accepted(
    client: httpx.Client, value: str
) -> None:
    png = encode(square_image(640, 640, [(240, 128, 64)]))
    for route, field in (("/v1/detect", "image"), ("/v1/detect/batch", "images")):
        response = client.post(route, files={field: png}, params={"det_sizes": value})
        assert response.status_code == 422, (route, value, response.text)
        assert "det_sizes" in response.text


def test_det_sizes_640_gives_the_single_scale_answer(client: httpx.Client) -> None:
    # A bright square filling the frame: no 640 anchor sees a dark ring around it, the
    # stride-32 anchors of the 128 pass do.
    full = np.full((640, 640, 3), 230, np.uint8)
    single = client.post("/v1/detect", files={"image": encode(full)}, params={"det_sizes": "640"})
    both = client.post("/v1/detect", files={"image": encode(full)}, params={"det_sizes": "128,640"})
    default = client.post("/v1/detect", files={"image": encode(full)})
    assert single.status_code == both.status_code == default.status_code == 200
    assert single.json()["faces"] == []
    assert len(both.json()["faces"]) == 1
    assert default.json()["faces"] == both.json()["faces"]
    np.testing.assert_allclose(both.json()["faces"][0]["bbox"], [0, 0, 640, 640], atol=1e-3)


def test_attributes_add_gender_and_age_to_every_face(client: httpx.Client) -> None:
    png = encode(square_image(640, 640, [(240, 128, 64), (96, 400, 32)]))
    plain = client.post("/v1/detect", files={"image": png})
    response = client.post("/v1/detect", files={"image": png}, params={"attributes": "true"})
    batch = client.post("/v1/detect/batch", files={"images": png}, params={"attributes": "true"})
    assert response.status_code == plain.status_code == batch.status_code == 200, response.text
    faces = response.json()["faces"]
    assert len(faces) == 2
    assert all(f["gender"] in ("F", "M") and isinstance(f["age"], int) for f in faces)
    assert all("gender" not in f and "age" not in f for f in plain.json()["faces"])
    assert batch.json()["results"][0]["faces"] == faces
    assert "genderage" in response.json()["timings_ms"]


def test_attributes_without_the_genderage_model_are_a_503_that_says_what_to_install(
    triton: EmbeddedTriton,
) -> None:
    settings = gateway_settings(triton, genderage_model="genderage_not_installed")
    png = encode(square_image(640, 640, [(240, 128, 64)]))
    with ServerThread(settings) as server, api_client(server.url, USER_KEY) as http:
        without = http.post("/v1/detect", files={"image": png})
        response = http.post("/v1/detect", files={"image": png}, params={"attributes": "true"})
    assert without.status_code == 200
    assert response.status_code == 503, response.text
    message = response.json()["error"]["message"]
    assert "genderage" in message and "facegate models fetch" in message


@pytest.mark.parametrize(("fmt", "magic"), [("png", b"\x89PNG"), ("jpeg", b"\xff\xd8")])
def test_render_returns_the_image_with_its_faces_drawn(
    client: httpx.Client, fmt: str, magic: bytes
) -> None:
    img = square_image(640, 480, [(240, 128, 64), (96, 400, 32)])
    detect = client.post("/v1/detect", files={"image": encode(img)})
    response = client.post(
        "/v1/detect/render",
        files={"image": encode(img)},
        params={"format": fmt, "attributes": "true"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"image/{fmt}"
    assert response.content.startswith(magic)
    assert int(response.headers["X-Faces"]) == len(detect.json()["faces"]) == 2
    drawn = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape == img.shape
    x1, y1, x2, _ = (round(v) for v in detect.json()["faces"][0]["bbox"])
    # The box's top edge is drawn red where the image was black.
    edge = drawn[y1, x1 + 2 : x2 - 2].astype(int)
    assert (edge[:, 2] > 150).all() and (edge[:, 0] < 100).all()


def test_liveness_adds_score_and_decision_and_follows_the_threshold(client: httpx.Client) -> None:
    png = encode(square_image(640, 640, [(240, 128, 64), (480, 320, 128)]))
    low = client.post(
        "/v1/detect", files={"image": png}, params={"liveness": "true", "liveness_threshold": 0}
    )
    high = client.post(
        "/v1/detect", files={"image": png}, params={"liveness": "true", "liveness_threshold": 1}
    )
    assert low.status_code == high.status_code == 200, low.text
    for face_low, face_high in zip(low.json()["faces"], high.json()["faces"], strict=True):
        assert face_low["liveness"]["score"] == face_high["liveness"]["score"]
        assert 0.0 <= face_low["liveness"]["score"] <= 1.0
        assert face_low["liveness"]["is_live"] is True
        assert face_high["liveness"]["is_live"] is (face_high["liveness"]["score"] >= 1.0)


def test_liveness_threshold_out_of_range_is_a_422(client: httpx.Client) -> None:
    png = encode(square_image(640, 640, [(240, 128, 64)]))
    response = client.post(
        "/v1/detect", files={"image": png}, params={"liveness": "true", "liveness_threshold": 1.5}
    )
    assert response.status_code == 422


def test_liveness_without_the_model_is_a_503_that_says_what_to_install(
    triton: EmbeddedTriton,
) -> None:
    settings = gateway_settings(triton, liveness_model="liveness_not_installed")
    png = encode(square_image(640, 640, [(240, 128, 64)]))
    with ServerThread(settings) as server, api_client(server.url, USER_KEY) as http:
        response = http.post("/v1/detect", files={"image": png}, params={"liveness": "true"})
    assert response.status_code == 503, response.text
    message = response.json()["error"]["message"]
    assert "liveness.onnx" in message and "facegate models fetch" in message
    assert "facegate models install liveness FILE" in message


def test_dense_landmarks_and_pose_add_points_and_angles_to_every_face(
    client: httpx.Client,
) -> None:
    png = encode(square_image(640, 640, [(240, 128, 64), (96, 400, 32)]))
    plain = client.post("/v1/detect", files={"image": png})
    params = {"dense_landmarks": "true", "pose": "true"}
    response = client.post("/v1/detect", files={"image": png}, params=params)
    batch = client.post("/v1/detect/batch", files={"images": png}, params=params)
    pose_only = client.post("/v1/detect", files={"image": png}, params={"pose": "true"})
    assert response.status_code == batch.status_code == pose_only.status_code == 200, response.text
    faces = response.json()["faces"]
    assert len(faces) == 2
    for face in faces:
        x1, y1, x2, y2 = face["bbox"]
        points = np.array(face["landmarks_2d_106"])
        assert points.shape == (106, 2) and np.array(face["landmarks_3d_68"]).shape == (68, 3)
        # The stand-in's points sit on a face-shaped set inside the box.
        assert (points[:, 0] > x1 - 8).all() and (points[:, 0] < x2 + 8).all()
        assert (points[:, 1] > y1 - 8).all() and (points[:, 1] < y2 + 8).all()
        assert set(face["pose"]) == {"pitch", "yaw", "roll"}
    assert batch.json()["results"][0]["faces"] == faces
    assert all("landmarks_2d_106" not in f and "pose" not in f for f in plain.json()["faces"])
    only = pose_only.json()["faces"]
    assert [f["pose"] for f in only] == [f["pose"] for f in faces]
    assert all("landmarks_2d_106" not in f and "landmarks_3d_68" not in f for f in only)
    timings = response.json()["timings_ms"]
    assert "landmark_2d_106" in timings and "landmark_3d_68" in timings
    assert "landmark_2d_106" not in pose_only.json()["timings_ms"]


@pytest.mark.parametrize(
    ("setting", "flag"),
    [
        ("landmark_2d_106_model", "dense_landmarks"),
        ("landmark_3d_68_model", "dense_landmarks"),
        ("landmark_3d_68_model", "pose"),
    ],
)
def test_landmarks_without_the_model_are_a_503_that_says_what_to_install(
    triton: EmbeddedTriton, setting: str, flag: str
) -> None:
    settings = gateway_settings(triton, **{setting: "landmark_not_installed"})
    png = encode(square_image(640, 640, [(240, 128, 64)]))
    with ServerThread(settings) as server, api_client(server.url, USER_KEY) as http:
        without = http.post("/v1/detect", files={"image": png})
        response = http.post("/v1/detect", files={"image": png}, params={flag: "true"})
    assert without.status_code == 200
    assert response.status_code == 503, response.text
    message = response.json()["error"]["message"]
    assert "2d106det.onnx" in message and "1k3d68.onnx" in message
    assert "facegate models fetch" in message


def test_dense_landmarks_of_an_image_without_faces_are_an_empty_list(client: httpx.Client) -> None:
    png = encode(np.zeros((200, 200, 3), np.uint8))
    params = {"dense_landmarks": "true", "pose": "true"}
    response = client.post("/v1/detect", files={"image": png}, params=params)
    assert response.status_code == 200, response.text
    assert response.json()["faces"] == []


def test_quality_grades_every_face_and_blur_lowers_it(client: httpx.Client) -> None:
    img = square_image(640, 640, [(240, 128, 64), (96, 400, 32)])
    texture = np.random.default_rng(5).integers(170, 256, (640 // 8, 640 // 8, 3), np.uint8)
    img = np.minimum(img, cv2.resize(texture, (640, 640), interpolation=cv2.INTER_NEAREST))
    sharp = client.post("/v1/detect", files={"image": encode(img)}, params={"quality": "true"})
    blurred = client.post(
        "/v1/detect",
        files={"image": encode(cv2.GaussianBlur(img, (0, 0), 3))},
        params={"quality": "true", "embed": "true"},
    )
    assert sharp.status_code == blurred.status_code == 200, sharp.text
    faces = sharp.json()["faces"]
    assert len(faces) == 2
    for face in faces:
        quality = face["quality"]
        assert set(quality) == {"norm", "size", "sharpness", "pose", "for_recognition"}
        assert quality["for_recognition"] in ("low", "medium", "high")
        x1, y1, x2, y2 = face["bbox"]
        assert quality["size"] == pytest.approx(min(x2 - x1, y2 - y1), abs=1e-3)
        assert "embedding" not in face  # the norm needs the recognizer, the answer does not
    by_size = {round(f["quality"]["size"]): f["quality"] for f in faces}
    for face in blurred.json()["faces"]:
        assert "embedding" in face
        before = by_size[round(face["quality"]["size"])]
        assert face["quality"]["sharpness"] < before["sharpness"]
    assert "quality" in sharp.json()["timings_ms"]


def test_render_draws_the_dense_landmarks(client: httpx.Client) -> None:
    img = square_image(640, 480, [(240, 128, 64)])
    detect = client.post(
        "/v1/detect", files={"image": encode(img)}, params={"dense_landmarks": "true"}
    )
    plain = client.post("/v1/detect/render", files={"image": encode(img)})
    dense = client.post(
        "/v1/detect/render",
        files={"image": encode(img)},
        params={"dense_landmarks": "true", "pose": "true"},
    )
    assert plain.status_code == dense.status_code == 200, dense.text
    drawn = cv2.imdecode(np.frombuffer(dense.content, np.uint8), cv2.IMREAD_COLOR)
    before = cv2.imdecode(np.frombuffer(plain.content, np.uint8), cv2.IMREAD_COLOR)
    (face,) = detect.json()["faces"]
    # Where a dense point lies, the dense drawing differs from the plain one.
    changed = [
        (drawn[round(y), round(x)] != before[round(y), round(x)]).any()
        for x, y in face["landmarks_2d_106"]
    ]
    assert sum(changed) >= 90, sum(changed)
