"""Triton's `faces` model against POST /v1/detect?embed=true on the session's embedded Triton.

Same faces (box IoU >= 0.999, landmarks within 0.1 px, cosine >= 0.9999) for the same
parameters; every refusal is INVALID_ARG for that request alone, and the model keeps serving.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import tritonclient.grpc as grpcclient
from scipy.optimize import linear_sum_assignment
from tritonclient.utils import InferenceServerException

from gateway.client import FaceClient
from gateway.client.errors import InvalidArgument
from gateway.errors import InvalidInput
from gateway.ops.servers.sessions import python_stubs
from gateway.ops.servers.triton import EmbeddedTriton
from gateway.triton import spec

from ..api.conftest import USER_KEY, ServerThread, api_client, gateway_settings
from ..fidelity.scenes import Square, square_scene
from ..images import encode, photo, png_bomb

pytestmark = pytest.mark.integration

MIN_IOU = 0.999
MAX_LANDMARK_PX = 0.1
MIN_COSINE = 0.9999


@pytest.fixture(scope="module")
def rest(triton: EmbeddedTriton) -> Iterator[httpx.Client]:
    with ServerThread(gateway_settings(triton)) as server, api_client(server.url, USER_KEY) as http:
        yield http


@pytest.fixture(scope="module")
def grpc(triton: EmbeddedTriton) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(triton.grpc_url)


def call_faces(
    grpc: grpcclient.InferenceServerClient, data: bytes, **parameters: Any
) -> dict[str, npt.NDArray[Any]]:
    tensor = grpcclient.InferInput("IMAGE", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[data]], dtype=np.object_))
    result = grpc.infer(spec.FACES, [tensor], parameters=parameters)
    names = [o["name"] for o in result.get_response(as_json=True)["outputs"]]
    return {name: result.as_numpy(name) for name in names}


def rest_faces(rest: httpx.Client, data: bytes, **params: Any) -> list[dict[str, Any]]:
    response = rest.post(
        "/v1/detect", params={"embed": "true", **params}, files={"image": ("image", data)}
    )
    assert response.status_code == 200, response.text
    faces: list[dict[str, Any]] = response.json()["faces"]
    return faces


def iou(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    a, b = a[:, None, :], b[None, :, :]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    result: npt.NDArray[np.float64] = inter / (area(a) + area(b) - inter)
    return result


def assert_same(out: dict[str, npt.NDArray[Any]], want: list[dict[str, Any]]) -> None:
    boxes = out["BOXES"][0].astype(np.float64)
    assert boxes.shape == (len(want), 4), (boxes, want)
    assert out["SCORES"].shape == (1, len(want))
    assert out["LANDMARKS"].shape == (1, len(want), 5, 2)
    assert out["EMBEDDINGS"].shape == (1, len(want), 512)
    if not want:
        return
    want_boxes = np.array([f["bbox"] for f in want], np.float64)
    ious = iou(boxes, want_boxes)
    rows, cols = linear_sum_assignment(ious, maximize=True)
    assert ious[rows, cols].min() >= MIN_IOU
    kps = out["LANDMARKS"][0].astype(np.float64)[rows]
    want_kps = np.array([f["landmarks"] for f in want], np.float64)[cols]
    assert np.linalg.norm(kps - want_kps, axis=-1).max() <= MAX_LANDMARK_PX
    emb = out["EMBEDDINGS"][0].astype(np.float64)[rows]
    want_emb = np.array([f["embedding"] for f in want], np.float64)[cols]
    cosine = (
        (emb * want_emb).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(want_emb, axis=1)
    )
    assert cosine.min() >= MIN_COSINE
    norms = np.array([f["embedding_norm"] for f in want])[cols]
    assert np.allclose(out["EMBEDDING_NORMS"][0][rows], norms, rtol=1e-4)
    # The same order as /v1/detect: descending score.
    assert (np.diff(out["SCORES"][0]) <= 0).all()


def scene() -> bytes:
    squares = [Square(96, 96, 32, seed=1), Square(320, 256, 16, seed=2), Square(448, 320, 8)]
    return encode(square_scene(640, 480, squares))


def full_frame() -> bytes:
    # Found at 128 only: a face that fills the frame.
    yy, xx = np.mgrid[:640, :640] / 640
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (0.7 * xx + 1.3 * yy)[..., None] + np.array([0, 2, 4]))
    return encode(np.clip(250.0 - 50.0 * wave, 0, 255).astype(np.uint8))


IMAGES = {
    "scene-png": scene,
    "scene-jpeg": lambda: encode(square_scene(800, 600, [Square(192, 160, 32, seed=3)]), ".jpg"),
    "full-frame": full_frame,
    "astronaut-jpeg": lambda: encode(photo("astronaut"), ".jpg"),
}


@pytest.mark.parametrize("det_sizes", ["640", "128,640"])
@pytest.mark.parametrize("image", sorted(IMAGES))
def test_faces_model_answers_as_rest(
    grpc: grpcclient.InferenceServerClient, rest: httpx.Client, image: str, det_sizes: str
) -> None:
    data = IMAGES[image]()
    threshold = 0.002 if image == "astronaut-jpeg" else 0.5
    want = rest_faces(rest, data, det_sizes=det_sizes, threshold=threshold)

    got = call_faces(grpc, data, det_sizes=det_sizes, threshold=threshold)

    assert_same(got, want)
    # The face filling the frame is found at 128 only (as insightface finds it).
    assert bool(want) == (image != "full-frame" or det_sizes == "128,640"), want


def test_parameters_left_out_are_the_gateways_defaults(
    grpc: grpcclient.InferenceServerClient, rest: httpx.Client
) -> None:
    data = full_frame()
    # Only the default det sizes (128,640) find this face: a default of 640 would find none.
    want = rest_faces(rest, data)

    got = call_faces(grpc, data)

    assert len(want) == 1
    assert_same(got, want)


def test_max_faces_min_size_and_no_embeddings(
    grpc: grpcclient.InferenceServerClient, rest: httpx.Client
) -> None:
    data = scene()
    want = rest_faces(rest, data, max_faces=2, min_size=20)

    got = call_faces(grpc, data, max_faces=2, min_size=20)
    bare = call_faces(grpc, data, max_faces=2, min_size=20, embed=False)

    assert len(want) == 2
    assert_same(got, want)
    assert "EMBEDDINGS" not in bare and "EMBEDDING_NORMS" not in bare
    assert np.array_equal(bare["BOXES"], got["BOXES"])
    assert bare["IMAGE_SIZE"].tolist() == [[640, 480]]


BAD = [
    ("garbage", b"not an image at all", {}, "not a recognised image"),
    ("empty", b"", {}, "empty"),
    ("truncated-png", scene()[:200], {}, ""),
    ("oversized-png", png_bomb(50_000, 50_000), {}, "50000x50000"),
    ("threshold", None, {"threshold": 1.5}, "threshold"),
    ("threshold-text", None, {"threshold": "high"}, "threshold"),
    ("det_sizes", None, {"det_sizes": "100"}, "multiple of 32"),
    ("det_sizes-long", None, {"det_sizes": "640," * 30}, "longer than"),
    ("max_faces", None, {"max_faces": 5000}, "max_faces"),
    ("max_faces-superscript", None, {"max_faces": "\u00b2"}, "max_faces"),
    ("embed", None, {"embed": "maybe"}, "embed"),
    ("quality", None, {"quality": True}, "parameter quality is not served"),
]


@pytest.mark.parametrize(
    ("data", "parameters", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_refusals_are_invalid_arg_and_the_next_call_works(
    grpc: grpcclient.InferenceServerClient,
    data: bytes | None,
    parameters: dict[str, Any],
    words: str,
) -> None:
    with pytest.raises(InferenceServerException) as caught:
        call_faces(grpc, scene() if data is None else data, **parameters)

    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT", caught.value
    assert words in str(caught.value.message())
    assert len(call_faces(grpc, scene())["SCORES"][0]) == 3


def test_two_images_in_one_request_are_refused(grpc: grpcclient.InferenceServerClient) -> None:
    tensor = grpcclient.InferInput("IMAGE", [2, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[scene()], [scene()]], dtype=np.object_))

    with pytest.raises(InferenceServerException) as caught:
        grpc.infer(spec.FACES, [tensor])

    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "one encoded image per request" in str(caught.value.message())


def test_concurrent_requests_batched_together_each_get_their_own_answer(
    triton: EmbeddedTriton, rest: httpx.Client
) -> None:
    # Mixed det sizes, a bad image and a bad parameter among them: the dynamic batcher groups
    # them into execute() calls; each answer must be that request's own.
    bad_max = {"max_faces": "\u00b2"}
    cases = [
        (scene(), "640", {}),
        (full_frame(), "128,640", {}),
        (b"\xff\xd8broken", "640", {}),
        (scene(), "640", bad_max),
    ] * 4
    wants = [
        None if d[:2] == b"\xff\xd8" or extra else rest_faces(rest, d, det_sizes=s)
        for d, s, extra in cases
    ]

    def one(
        case: tuple[bytes, str, dict[str, str]],
    ) -> dict[str, npt.NDArray[Any]] | InferenceServerException:
        client = grpcclient.InferenceServerClient(triton.grpc_url)
        try:
            return call_faces(client, case[0], det_sizes=case[1], **case[2])
        except InferenceServerException as exc:
            return exc

    with concurrent.futures.ThreadPoolExecutor(len(cases)) as pool:
        results = list(pool.map(one, cases))

    for want, got in zip(wants, results, strict=True):
        if want is None:
            assert isinstance(got, InferenceServerException)
            assert got.status() == "StatusCode.INVALID_ARGUMENT"
        else:
            assert not isinstance(got, InferenceServerException), got
            assert_same(got, want)


def test_sdk_detect_in_server_equals_sdk_detect(triton: EmbeddedTriton) -> None:
    nobody = encode(np.zeros((240, 320, 3), np.uint8))
    images = [scene(), full_frame(), square_scene(320, 240, [Square(96, 96, 16, seed=5)]), nobody]
    with FaceClient(triton.grpc_url, use_shared_memory=False) as client:
        local = client.detect(images, embed=True, det_sizes="128,640", attributes=True)
        served = client.detect_in_server(images, det_sizes="128,640", attributes=True)
        with pytest.raises(InvalidInput, match="not a recognised image"):
            client.detect_in_server([b"garbage"])
        with pytest.raises(InvalidArgument):
            client.detect_in_server(images, threshold=2.0)

    assert [len(f.detections) for f in served] == [3, 1, 1, 0]
    for want, got in zip(local, served, strict=True):
        assert (got.width, got.height) == (want.width, want.height)
        assert len(got.detections) == len(want.detections)
        assert got.embeddings is not None and got.embeddings.shape == (len(got.detections), 512)
        assert got.attributes is not None and want.attributes is not None
        assert got.attributes.labels() == want.attributes.labels()
        assert np.array_equal(got.attributes.ages, want.attributes.ages)
        if not len(want.detections):
            continue
        assert np.abs(got.detections.boxes - want.detections.boxes).max() <= 1e-3
        assert np.abs(got.detections.kps - want.detections.kps).max() <= 1e-3
        assert got.embeddings is not None and want.embeddings is not None
        assert (got.embeddings * want.embeddings).sum(axis=1).min() >= MIN_COSINE


def test_a_killed_faces_stub_is_reloaded_and_serves_again(
    triton: EmbeddedTriton, grpc: grpcclient.InferenceServerClient
) -> None:
    assert triton.repair() == ""  # the watch counts the live stubs (a supervisor polls it)
    stubs = python_stubs(triton.pid)[spec.FACES]
    assert len(stubs) == 2  # two instances: one decodes while the other awaits its BLS calls
    os.kill(stubs[0], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while stubs[0] in python_stubs(triton.pid).get(spec.FACES, []):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    done = triton.repair()

    assert f"{spec.FACES}: its backend process died; reloaded" in done
    assert len(call_faces(grpc, scene())["SCORES"][0]) == 3


def test_attributes_are_the_gender_and_age_rest_gives(
    grpc: grpcclient.InferenceServerClient, rest: httpx.Client
) -> None:
    data = scene()
    response = rest.post(
        "/v1/detect", params={"attributes": "true"}, files={"image": ("image", data)}
    )
    assert response.status_code == 200, response.text
    want = response.json()["faces"]

    got = call_faces(grpc, data, attributes=True, embed=False)
    plain = call_faces(grpc, data)

    assert len(want) == 3
    assert got["GENDERS"].shape == got["AGES"].shape == (1, 3)
    assert ["FM"[g] for g in got["GENDERS"][0]] == [f["gender"] for f in want]
    assert got["AGES"][0].tolist() == [f["age"] for f in want]
    assert "GENDERS" not in plain and "AGES" not in plain


def test_v1_models_lists_the_faces_model(rest: httpx.Client) -> None:
    response = rest.get("/v1/models")
    assert response.status_code == 200, response.text
    states = {m["name"]: m["state"] for m in response.json()["models"]}
    assert states[spec.FACES] == "READY"
