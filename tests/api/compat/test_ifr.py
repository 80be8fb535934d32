"""InsightFace-REST's /extract, /info and /health against the real gateway and Triton.

Requests are built as its clients build them (ifr_clients/ifr_client.py): msgpack with
raw bytes, Content-Type application/msgpack and Accept application/x-msgpack, or JSON
with base64. Answers are parsed with strict contract models and cross-checked against
/v1/detect on the same images.
"""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import httpx
import msgpack
import numpy as np
import pytest

from gateway.ops.servers.triton import EmbeddedTriton

from ...images import encode, photo, square_image
from ..conftest import ServerThread, gateway_settings
from .conftest import SQUARES, CompatGateway
from .contracts import IfrResponse

pytestmark = pytest.mark.integration


def _request(images: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The body IFRClient.extract sends (its defaults), with overrides."""
    body: dict[str, Any] = {
        "images": images,
        "threshold": 0.6,
        "extract_ga": False,
        "extract_embedding": True,
        "return_face_data": False,
        "return_landmarks": False,
        "embed_only": False,
        "limit_faces": 0,
        "msgpack": True,
    }
    body.update(fields)
    return body


def post_msgpack(client: httpx.Client, body: dict[str, Any]) -> IfrResponse:
    response = client.post(
        "/extract",
        content=msgpack.dumps(body),
        headers={"content-type": "application/msgpack", "accept": "application/x-msgpack"},
    )
    assert response.status_code == 200, response.text
    # IFRClient compares the header verbatim to pick its decoder.
    assert response.headers["content-type"] == "application/x-msgpack"
    return IfrResponse.model_validate(msgpack.loads(response.content))


def post_json(client: httpx.Client, body: dict[str, Any]) -> IfrResponse:
    response = client.post("/extract", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return IfrResponse.model_validate(response.json())


def _v1_faces(
    keyed: httpx.Client, data: bytes, threshold: float, **params: str
) -> list[dict[str, Any]]:
    # InsightFace-REST detects at its one max_size (640): /v1's single-scale answer.
    response = keyed.post(
        "/v1/detect",
        files={"image": data},
        params={"embed": "true", "threshold": str(threshold), "det_sizes": "640", **params},
    )
    assert response.status_code == 200, response.text
    faces: list[dict[str, Any]] = response.json()["faces"]
    return faces


def _cosine(a: list[float], b: list[float]) -> float:
    va, vb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))


def _images() -> list[bytes]:
    return [
        encode(square_image(640, 480, SQUARES)),
        encode(square_image(1280, 960, [(cx * 2, cy * 2, s * 2) for cx, cy, s in SQUARES]), ".jpg"),
        encode(photo("astronaut"), ".jpg"),
        encode(photo("t1"), ".jpg"),
    ]


@pytest.mark.parametrize("wire", ["msgpack", "json"])
def test_extract_matches_v1_detect(plain: httpx.Client, keyed: httpx.Client, wire: str) -> None:
    images = _images()
    if wire == "msgpack":
        result = post_msgpack(plain, _request({"data": images}, return_landmarks=True))
    else:
        encoded = [base64.b64encode(i).decode() for i in images]
        result = post_json(plain, _request({"data": encoded}, msgpack=False, return_landmarks=True))
    assert len(result.data) == len(images)
    found_any = False
    for data, image in zip(images, result.data, strict=True):
        assert image.status == "ok"
        expected = _v1_faces(keyed, data, 0.6)
        assert len(image.faces) == len(expected)
        for i, (face, ref) in enumerate(zip(image.faces, expected, strict=True)):
            found_any = True
            assert face.num_det == i
            assert np.all(np.abs(np.asarray(face.bbox) - np.asarray(ref["bbox"])) < 1.0)
            assert face.size == int(ref["bbox"][2] - ref["bbox"][0])
            assert face.landmarks is not None
            assert np.all(np.abs(np.asarray(face.landmarks) - np.asarray(ref["landmarks"])) < 1.0)
            assert face.prob == pytest.approx(ref["score"], abs=1e-5)
            assert face.vec is not None and face.norm is not None
            assert len(face.vec) == 512
            assert np.linalg.norm(face.vec) == pytest.approx(1.0, abs=1e-4)
            assert _cosine(face.vec, ref["embedding"]) >= 0.9999
            assert face.norm == pytest.approx(ref["embedding_norm"], rel=1e-5)
            assert face.facedata is None and face.gender is None and face.age is None
    assert found_any


@pytest.mark.parametrize("wire", ["msgpack", "json"])
def test_extract_ga_matches_v1_detect_attributes(
    plain: httpx.Client, keyed: httpx.Client, wire: str
) -> None:
    images = _images()
    body = _request({"data": images}, extract_ga=True)
    if wire == "json":
        body = _request(
            {"data": [base64.b64encode(i).decode() for i in images]}, extract_ga=True, msgpack=False
        )
    result = (post_msgpack if wire == "msgpack" else post_json)(plain, body)
    without = post_msgpack(plain, _request({"data": images}))
    faces = 0
    for data, image, plain_image in zip(images, result.data, without.data, strict=True):
        assert image.status == "ok"
        expected = _v1_faces(keyed, data, 0.6, attributes="true")
        assert len(image.faces) == len(expected) == len(plain_image.faces)
        for face, ref, plain_face in zip(image.faces, expected, plain_image.faces, strict=True):
            faces += 1
            # insightface's encoding upstream: 0 = female, 1 = male.
            assert face.gender in (0, 1) and {0: "F", 1: "M"}[face.gender] == ref["gender"]
            assert face.age == ref["age"]
            # Asking for gender and age changes nothing else of the face.
            assert face.bbox == plain_face.bbox and face.vec == plain_face.vec
            assert plain_face.gender is None and plain_face.age is None
    assert faces > 0
    assert plain.get("/info").json()["models"]["ga_name"] == "genderage"  # as configured


def test_extract_ga_without_the_genderage_model_is_null_not_an_error(
    triton: EmbeddedTriton,
) -> None:
    settings = gateway_settings(triton, compat="ifr", genderage_model="genderage_not_installed")
    with ServerThread(settings) as server, httpx.Client(base_url=server.url, timeout=120) as raw:
        result = post_msgpack(raw, _request({"data": _images()[:1]}, extract_ga=True))
    (image,) = result.data
    assert image.status == "ok" and len(image.faces) == len(SQUARES)
    assert all(f.gender is None and f.age is None and f.vec is not None for f in image.faces)


def test_extract_scale_is_the_letterbox_scale(plain: httpx.Client) -> None:
    big = encode(square_image(1280, 960, [(480, 256, 128)]))
    result = post_msgpack(plain, _request({"data": [big]}))
    (face,) = result.data[0].faces
    assert face.scale == pytest.approx(0.5)
    assert face.bbox == [416, 192, 544, 320]


def test_failed_image_is_reported_in_place(plain: httpx.Client) -> None:
    good = encode(square_image(640, 480, SQUARES))
    body = _request({"data": [good, b"not an image", good]})
    result = post_msgpack(plain, body)
    statuses = [image.status for image in result.data]
    assert statuses == ["ok", "failed", "ok"]
    failed = result.data[1]
    assert failed.faces == [] and failed.traceback and "not a recognised image" in failed.traceback
    assert result.data[0].faces == result.data[2].faces


def test_face_data_is_the_aligned_crop(plain: httpx.Client) -> None:
    squares = encode(square_image(640, 480, SQUARES))
    result = post_msgpack(plain, _request({"data": [squares]}, return_face_data=True))
    faces = result.data[0].faces
    assert len(faces) == 3
    for face in faces:
        assert face.facedata is not None
        crop = cv2.imdecode(
            np.frombuffer(base64.b64decode(face.facedata), np.uint8), cv2.IMREAD_COLOR
        )
        assert crop.shape == (112, 112, 3)


def test_embed_only_embeds_crops_without_detection(
    plain: httpx.Client, keyed: httpx.Client
) -> None:
    # The aligned crop of a detected face, embedded again, gives the same identity.
    squares = encode(square_image(640, 480, SQUARES))
    full = post_msgpack(plain, _request({"data": [squares]}, return_face_data=True))
    face = full.data[0].faces[0]
    assert face.facedata is not None and face.vec is not None
    crop_png = encode(cv2.imdecode(np.frombuffer(base64.b64decode(face.facedata), np.uint8), 1))
    result = post_msgpack(plain, _request({"data": [crop_png, squares]}, embed_only=True))
    first, second = result.data
    assert first.status == "ok" and second.status == "failed"
    assert second.traceback and "112x112" in second.traceback
    (crop_face,) = first.faces
    assert crop_face.bbox == [0, 0, 112, 112] and crop_face.prob == 1.0
    assert crop_face.vec is not None
    # JPEG round trip of the crop: the same identity, not bit-identical pixels.
    assert _cosine(crop_face.vec, face.vec) > 0.9


def test_limit_threshold_and_min_size(plain: httpx.Client) -> None:
    data = [encode(square_image(640, 480, SQUARES))]
    all_faces = post_msgpack(plain, _request({"data": data})).data[0].faces
    limited = post_msgpack(plain, _request({"data": data}, limit_faces=1)).data[0].faces
    assert len(all_faces) == 3 and len(limited) == 1
    big = post_msgpack(plain, _request({"data": data}, min_face_size=100)).data[0].faces
    assert [f.size for f in big] == [128]
    none = post_msgpack(plain, _request({"data": data}, threshold=1.0)).data[0].faces
    assert none == []
    bare = post_msgpack(plain, _request({"data": data}, extract_embedding=False)).data[0].faces
    assert all(f.vec is None and f.norm is None for f in bare)


def test_unknown_and_retired_fields_are_ignored(plain: httpx.Client) -> None:
    body = _request(
        {"data": [encode(square_image(640, 480, SQUARES))]},
        use_rotation=True,
        detect_masks=True,
        verbose_timings=True,
        img_req_headers={"User-Agent": "x"},
        something_new=[1, 2],
    )
    result = post_msgpack(plain, body)
    assert len(result.data[0].faces) == 3
    assert all(f.mask is None for f in result.data[0].faces)
    extra = result.took.model_extra or {}
    assert {"read_imgs_ms", "embed_all_ms", "detector_ms"} <= set(extra)


def test_batch_of_64_images(plain: httpx.Client) -> None:
    # Squares of side 64 centred on the stride-16 grid, shifted one cell per image.
    images = [encode(square_image(640, 480, [(176 + 16 * (i % 8), 128, 64)])) for i in range(64)]
    broken = {17, 63}  # failures in later groups (images go through 16 at a time) stay in place
    for i in broken:
        images[i] = b"not an image"
    result = post_msgpack(plain, _request({"data": images}))
    assert [image.status for image in result.data] == [
        "failed" if i in broken else "ok" for i in range(64)
    ]
    for i, image in enumerate(result.data):
        if i in broken:
            continue
        (face,) = image.faces
        assert face.bbox == [144 + 16 * (i % 8), 96, 208 + 16 * (i % 8), 160]


def test_over_the_image_limit_is_422(plain: httpx.Client) -> None:
    tiny = encode(square_image(32, 32, []))
    response = plain.post(
        "/extract",
        content=msgpack.dumps(_request({"data": [tiny] * 65})),
        headers={"content-type": "application/msgpack"},
    )
    assert response.status_code == 422
    assert "limit is 64" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"\xc1\xc1", "application/msgpack", 422),
        (b"{not json", "application/json", 422),
        (b'{"images": {}}', "application/json", 422),
        (b'{"images": {"data": []}}', "application/json", 422),
        (b'{"images": {"data": ["a"], "urls": ["b"]}}', "application/json", 422),
        (b'{"images": {"data": ["x"]}, "threshold": 7}', "application/json", 422),
        (b"<xml/>", "text/xml", 415),
    ],
)
def test_bad_bodies_are_clear_4xx(
    plain: httpx.Client, content: bytes, content_type: str, status: int
) -> None:
    response = plain.post("/extract", content=content, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]


def test_bad_base64_fails_in_place(plain: httpx.Client) -> None:
    good = base64.b64encode(encode(square_image(640, 480, SQUARES))).decode()
    body = _request({"data": ["data:image/png;base64," + good, "%%%"]}, msgpack=False)
    result = post_json(plain, body)
    assert [i.status for i in result.data] == ["ok", "failed"]
    assert len(result.data[0].faces) == 3


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def image_host(compat_gateway: CompatGateway) -> Iterator[str]:
    handler = partial(_Quiet, directory=str(compat_gateway.images_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_urls_resolve_under_the_folder_only(
    plain: httpx.Client, compat_gateway: CompatGateway, image_host: str
) -> None:
    outside = compat_gateway.images_dir.parent / "secret.png"
    outside.write_bytes(encode(square_image(640, 480, SQUARES)))
    (compat_gateway.images_dir / "link.png").unlink(missing_ok=True)
    (compat_gateway.images_dir / "link.png").symlink_to(outside)
    urls = [
        "squares.png",
        "nested/one.jpg",
        "../secret.png",
        "link.png",
        str(outside),
        "missing.png",
        f"{image_host}/squares.png",
        f"{image_host.replace('127.0.0.1', 'localhost')}/squares.png",
        f"{image_host}/missing.png",
    ]
    result = post_msgpack(plain, _request({"urls": urls}))
    statuses = [image.status for image in result.data]
    assert statuses == [
        "ok",
        "ok",
        "failed",
        "failed",
        "failed",
        "failed",
        "ok",
        "failed",
        "failed",
    ]
    assert len(result.data[0].faces) == 3 and len(result.data[1].faces) == 1
    assert result.data[6].faces == result.data[0].faces
    reasons = [image.traceback or "" for image in result.data]
    assert "outside the images folder" in reasons[2] and "outside" in reasons[3]
    assert "not found" in reasons[4] and "not found" in reasons[5]
    assert "FACEGATE_COMPAT_URL_HOSTS" in reasons[7]
    assert "404" in reasons[8]


def test_info_has_what_the_clients_print(plain: httpx.Client) -> None:
    info = plain.get("/info").json()
    for key in (
        "inference_backend",
        "det_name",
        "rec_name",
        "rec_batch_size",
        "det_batch_size",
        "max_size",
    ):
        assert key in info["models"]
    assert info["defaults"]["det_thresh"] == 0.6


def test_health_runs_the_detector(plain: httpx.Client) -> None:
    response = plain.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_concurrent_extracts_agree_with_a_serial_one(plain: httpx.Client) -> None:
    body = _request({"data": _images()})
    reference = post_msgpack(plain, body).model_dump(exclude={"took"})
    for image in reference["data"]:
        image["took_ms"] = 0.0

    def one(_: int) -> dict[str, Any]:
        answer = post_msgpack(plain, body).model_dump(exclude={"took"})
        for image in answer["data"]:
            image["took_ms"] = 0.0
        return answer

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(24)))
    assert all(answer == reference for answer in answers)


def test_odd_paths_and_urls_fail_in_place(plain: httpx.Client, image_host: str) -> None:
    urls = ["a\x00b.png", "", "http://[::1/x.png", "ftp://127.0.0.1/x.png", f"{image_host}:99999/x"]
    result = post_msgpack(plain, _request({"urls": urls}))
    assert [image.status for image in result.data] == ["failed"] * len(urls)
    assert all(image.traceback for image in result.data)


def test_folder_paths_need_the_setting(tmp_path: Path) -> None:
    from gateway.api.compat.ifr_sources import _read_file

    error = _read_file(None, "a.png", 1000)
    assert isinstance(error, Exception) and "FACEGATE_COMPAT_IMAGES_DIR" in str(error)
