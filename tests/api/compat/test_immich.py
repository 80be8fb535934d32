"""Immich's /predict and /ping against the real gateway and Triton.

The request comes from Node (immich_request.mjs) built as the Immich server builds it;
answers are parsed with a strict model of Immich's FacialRecognitionResponse and
cross-checked against /v1/detect on the same image.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from ...images import encode, photo, square_image
from .conftest import IMMICH_PREFIX, SQUARES, CompatGateway
from .contracts import ImmichResponse

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).with_name("immich_request.mjs")
NODE = shutil.which("node")


def _entries(model: str = "buffalo_l", min_score: float = 0.7) -> str:
    return json.dumps(
        {
            "facial-recognition": {
                "detection": {"modelName": model, "options": {"minScore": min_score}},
                "recognition": {"modelName": model},
            }
        }
    )


def predict(
    client: httpx.Client, image: bytes, entries: str, path: str = "/predict"
) -> httpx.Response:
    # As Immich's Blob: no content type of its own, filename "blob".
    return client.post(
        path,
        data={"entries": entries},
        files={"image": ("blob", image, "application/octet-stream")},
    )


def _node(url: str, image: Path, model: str, resolution: str, task: str = "") -> dict[str, Any]:
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(SCRIPT), url, str(image), model, "0.7", resolution, task],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.skipif(NODE is None, reason="needs Node 18+ (fetch, FormData, Blob)")
@pytest.mark.parametrize(
    ("base", "resolution"),
    [("", "absolute"), (f"{IMMICH_PREFIX}/", "relative"), (IMMICH_PREFIX, "absolute")],
)
def test_node_request_as_immich_builds_it(
    compat_gateway: CompatGateway, keyed: httpx.Client, base: str, resolution: str
) -> None:
    image = compat_gateway.images_dir / "squares.png"
    result = _node(compat_gateway.url + base, image, "buffalo_l", resolution)
    assert result["ping"] == "pong"
    assert result["status"] == 200, result["body"]
    answer = ImmichResponse.parse(json.loads(result["body"]))
    assert (answer.imageWidth, answer.imageHeight) == (640, 480)
    _cross_check(answer, keyed, image.read_bytes(), 0.7)


def _cross_check(
    answer: ImmichResponse, keyed: httpx.Client, image: bytes, min_score: float
) -> None:
    reference = keyed.post(
        "/v1/detect", files={"image": image}, params={"embed": "true", "threshold": str(min_score)}
    ).json()["faces"]
    assert len(answer.faces) == len(reference) > 0
    for face, ref in zip(answer.faces, reference, strict=True):
        box = face.boundingBox
        got = np.array([box.x1, box.y1, box.x2, box.y2], np.float64)
        assert np.all(np.abs(got - np.asarray(ref["bbox"])) <= 0.5 + 1e-3)
        assert face.score == pytest.approx(ref["score"], abs=1e-5)
        raw = np.asarray(json.loads(face.embedding), np.float64)
        assert raw.shape == (512,)
        # Raw, as Immich stores it: its norm is the recognizer's, its direction /v1's.
        assert np.linalg.norm(raw) == pytest.approx(ref["embedding_norm"], rel=1e-5)
        cosine = raw @ np.asarray(ref["embedding"]) / np.linalg.norm(raw)
        assert cosine >= 0.9999


def test_predict_matches_v1_detect(plain: httpx.Client, keyed: httpx.Client) -> None:
    for image in (
        encode(square_image(640, 480, SQUARES)),
        encode(square_image(1280, 960, [(cx * 2, cy * 2, s * 2) for cx, cy, s in SQUARES]), ".jpg"),
    ):
        response = predict(plain, image, _entries(min_score=0.5))
        assert response.status_code == 200, response.text
        _cross_check(ImmichResponse.parse(response.json()), keyed, image, 0.5)


def test_organisation_prefixed_names_and_no_faces(plain: httpx.Client) -> None:
    response = predict(
        plain, encode(photo("coffee"), ".jpg"), _entries("immich-app/buffalo_l", 0.99)
    )
    assert response.status_code == 200, response.text
    answer = ImmichResponse.parse(response.json())
    assert answer.faces == []
    assert (answer.imageWidth, answer.imageHeight) == (600, 400)


def test_min_score_defaults_to_immichs(plain: httpx.Client) -> None:
    entries = json.loads(_entries())
    del entries["facial-recognition"]["detection"]["options"]
    image = encode(square_image(640, 480, SQUARES))
    default = predict(plain, image, json.dumps(entries)).json()
    explicit = predict(plain, image, _entries(min_score=0.7)).json()
    assert default == explicit


@pytest.mark.parametrize(
    ("entries", "status", "words"),
    [
        (json.dumps({"clip": {"visual": {"modelName": "ViT-B-32__openai"}}}), 422, "clip"),
        (
            json.dumps({"ocr": {"detection": {"modelName": "x"}}, "facial-recognition": {}}),
            422,
            "ocr",
        ),
        (_entries("antelopev2"), 422, "antelopev2"),
        (_entries(min_score=3), 422, "minScore"),
        (
            json.dumps({"facial-recognition": {"detection": {"modelName": "buffalo_l"}}}),
            422,
            "recognition",
        ),
        ("{not json", 422, "JSON"),
        ("[]", 422, "object"),
    ],
)
def test_other_tasks_and_models_are_clear_4xx(
    plain: httpx.Client, entries: str, status: int, words: str
) -> None:
    response = predict(plain, encode(square_image(64, 64, [])), entries)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]


def test_text_and_malformed_requests_are_4xx(plain: httpx.Client) -> None:
    # Multipart text fields, as Node's FormData sends them.
    text = plain.post("/predict", files={"entries": (None, _entries()), "text": (None, "a dog")})
    assert text.status_code == 422 and "text" in text.json()["error"]["message"]
    missing = plain.post("/predict", files={"entries": (None, _entries())})
    assert missing.status_code == 422 and "image" in missing.json()["error"]["message"]
    as_text = plain.post("/predict", files={"entries": (None, _entries()), "image": (None, "x")})
    assert as_text.status_code == 422
    as_json = plain.post("/predict", json={"entries": _entries()})
    assert as_json.status_code == 415
    garbage = predict(plain, b"not an image", _entries())
    assert garbage.status_code == 415


def test_ping_and_prefix(plain: httpx.Client) -> None:
    for path in ("/ping", f"{IMMICH_PREFIX}/ping"):
        response = plain.get(path)
        assert response.status_code == 200 and response.text == "pong"
    assert plain.get("/other/ping").status_code == 404


def test_concurrent_predicts_agree(plain: httpx.Client) -> None:
    image = encode(square_image(640, 480, SQUARES))
    reference = predict(plain, image, _entries()).json()

    def one(index: int) -> dict[str, Any]:
        path = f"{IMMICH_PREFIX}/predict" if index % 2 else "/predict"
        response = predict(plain, image, _entries(), path)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(24)))
    assert all(answer == reference for answer in answers)


@pytest.mark.skipif(NODE is None, reason="needs Node 18+ (fetch, FormData, Blob)")
def test_node_clip_request_is_a_clear_422(compat_gateway: CompatGateway) -> None:
    image = compat_gateway.images_dir / "squares.png"
    result = _node(compat_gateway.url, image, "ViT-B-32__openai", "absolute", "clip")
    assert result["status"] == 422
    assert "facial-recognition" in json.loads(result["body"])["error"]["message"]
