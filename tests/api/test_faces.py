"""REST endpoints against the real gateway and the real embedded Triton (tiny models)."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from ..images import encode, png_bomb, square_image

pytestmark = pytest.mark.integration

# Squares of side 4*stride centred on the stride grid: the tiny detector's exact faces.
SQUARES = [(240, 128, 64), (96, 400, 32), (480, 320, 128)]


def _boxes(faces: list[dict[str, object]]) -> list[list[float]]:
    return sorted(face["bbox"] for face in faces)  # type: ignore[misc, type-var]


def _expected(squares: list[tuple[int, int, int]], scale: float = 1.0) -> list[list[float]]:
    return sorted(
        [(cx - s / 2) * scale, (cy - s / 2) * scale, (cx + s / 2) * scale, (cy + s / 2) * scale]
        for cx, cy, s in squares
    )


def test_detect_multipart_finds_the_exact_squares(client: httpx.Client) -> None:
    png = encode(square_image(640, 640, SQUARES))
    response = client.post("/v1/detect", files={"image": ("a.png", png, "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (640, 640)
    assert _boxes(body["faces"]) == _expected(SQUARES)
    scores = [face["score"] for face in body["faces"]]
    assert scores == sorted(scores, reverse=True)
    assert all(len(face["landmarks"]) == 5 and "embedding" not in face for face in body["faces"])
    assert {"decode", "detector", "total"} <= set(body["timings_ms"])


def test_detect_json_base64_maps_back_to_original_pixels(client: httpx.Client) -> None:
    # 1280x1280 letterboxes at scale 0.5: squares twice the size map to the same detector cells.
    big = [(cx * 2, cy * 2, s * 2) for cx, cy, s in SQUARES]
    payload = {"image": base64.b64encode(encode(square_image(1280, 1280, big))).decode()}
    response = client.post("/v1/detect", json=payload, params={"landmarks": "false"})
    assert response.status_code == 200, response.text
    faces = response.json()["faces"]
    assert _boxes(faces) == _expected(SQUARES, 2.0)
    assert all("landmarks" not in face for face in faces)


def test_detect_embed_returns_unit_vectors(client: httpx.Client) -> None:
    png = encode(square_image(640, 480, SQUARES[:2]))
    response = client.post("/v1/detect", files={"image": png}, params={"embed": "true"})
    faces = response.json()["faces"]
    assert len(faces) == 2
    for face in faces:
        vector = np.array(face["embedding"])
        assert vector.shape == (512,)
        assert abs(np.linalg.norm(vector) - 1.0) < 1e-4


def test_detect_options_max_faces_min_size_threshold(client: httpx.Client) -> None:
    png = encode(square_image(640, 640, SQUARES))
    one = client.post("/v1/detect", files={"image": png}, params={"max_faces": 1}).json()
    assert _boxes(one["faces"]) == _expected(SQUARES[2:])  # the largest, by InsightFace's rule
    big = client.post("/v1/detect", files={"image": png}, params={"min_size": 50}).json()
    assert _boxes(big["faces"]) == _expected([SQUARES[0], SQUARES[2]])
    none = client.post("/v1/detect", files={"image": png}, params={"threshold": 0.999}).json()
    assert none["faces"] == []


def test_batch_keeps_order_and_matches_single_calls(client: httpx.Client) -> None:
    images = [
        encode(square_image(640, 640, SQUARES[:1])),
        encode(np.zeros((100, 100, 3), np.uint8)),
        encode(square_image(900, 500, SQUARES), ".jpg"),
    ]
    files = [("images", (f"{i}.png", data)) for i, data in enumerate(images)]
    response = client.post("/v1/detect/batch", files=files, params={"embed": "true"})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 3
    for data, result in zip(images, results, strict=True):
        single = client.post("/v1/detect", files={"image": data}, params={"embed": "true"}).json()
        assert result["faces"] == single["faces"]
    assert results[1]["faces"] == [] and len(results[0]["faces"]) == 1


def test_batch_json_and_limit(client: httpx.Client) -> None:
    one = base64.b64encode(encode(square_image(64, 64, []))).decode()
    assert client.post("/v1/detect/batch", json={"images": [one] * 2}).status_code == 200
    response = client.post("/v1/detect/batch", json={"images": [one] * 17})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_parameter"


def test_verify_same_and_different(client: httpx.Client) -> None:
    a = encode(square_image(640, 640, [(240, 128, 64)]))
    shifted = encode(square_image(640, 640, [(320, 320, 128)]))
    same = client.post("/v1/verify", files={"image_a": a, "image_b": a}).json()
    assert same["similarity"] == pytest.approx(1.0, abs=1e-5) and same["match"] is True
    assert same["threshold"] == 0.3
    other = client.post(
        "/v1/verify", files={"image_a": a, "image_b": shifted}, params={"threshold": 0.99999}
    ).json()
    assert other["match"] is (other["similarity"] >= 0.99999)
    assert len(other["face_b"]["landmarks"]) == 5 and "embedding" not in other["face_b"]


def test_verify_without_a_face_is_422(client: httpx.Client) -> None:
    a = encode(square_image(640, 640, [(240, 128, 64)]))
    blank = encode(np.zeros((200, 200, 3), np.uint8))
    response = client.post("/v1/verify", files={"image_a": a, "image_b": blank})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "no_face"
    assert "image_b" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"files": {"image": b"this is not an image"}}, 415, "unsupported_media_type"),
        ({"files": {"image": encode(square_image(64, 64, []))[:60]}}, 400, "undecodable_image"),
        ({"files": {"image": b"GIF89a" + b"\x00" * 20}}, 415, "unsupported_media_type"),
        ({"files": {"image": png_bomb(50_000, 50_000)}}, 413, "payload_too_large"),
        ({"files": {"wrong_field": b"x"}}, 422, "invalid_parameter"),
        (
            {"content": b"raw", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ({"json": {"image": "%%%not-base64"}}, 400, "invalid_input"),
        ({"json": {"nothing": 1}}, 422, "invalid_parameter"),
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
            "invalid_parameter",
        ),
        ({"files": {"image": b""}}, 400, "invalid_input"),
        (
            {"data": {"image": "not a file part"}, "files": {"other": b"x"}},
            422,
            "invalid_parameter",
        ),
        (
            {"content": b"[" * 100_000, "headers": {"content-type": "application/json"}},
            422,
            "invalid_parameter",
        ),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    client: httpx.Client, kwargs: dict[str, object], status: int, code: str
) -> None:
    response = client.post("/v1/detect", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code and body["error"]["message"]


@pytest.mark.parametrize(
    "params",
    [
        {"threshold": "2"},
        {"threshold": "abc"},
        {"max_faces": "-1"},
        {"min_size": "-3"},
        {"embed": "maybe"},
    ],
)
def test_bad_parameters_are_422(client: httpx.Client, params: dict[str, str]) -> None:
    png = encode(square_image(64, 64, []))
    response = client.post("/v1/detect", files={"image": png}, params=params)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_parameter"


def test_unknown_route_uses_the_error_body(client: httpx.Client) -> None:
    response = client.get("/v1/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_exif_orientation_is_applied(client: httpx.Client) -> None:
    # Stored landscape 640x480 with Orientation=6 (rotate 90° clockwise to view): portrait.
    img = Image.fromarray(np.zeros((480, 640, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    body = client.post("/v1/detect", files={"image": buf.getvalue()}).json()
    assert (body["width"], body["height"]) == (480, 640)
