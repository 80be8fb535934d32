"""A representative subset of the variants through the real embedded Triton and gateway.

One repository holds the hardest valid files at once: a detector with the served names
already on its outputs, (1, -1, C) heads, a residual branch, Identity/Cast tails, fp16
weights, input "images" and opset 17 (batched); a recognizer that runs at batch 1 only
(served unbatched, so the client splits batches); a swapper with other tensor names,
opset 17 and its weights in an external data file. The gateway's answers must equal
insightface's on the same files, with the fidelity tests' tolerances.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import onnx
import pytest

from gateway.ops.repository.install import read_manifest
from gateway.ops.repository.synthetic import SyntheticModels
from gateway.ops.servers.triton import EmbeddedTriton, TritonOptions

from ...api.conftest import USER_KEY, ServerThread, api_client, gateway_settings
from ...conftest import REPOSITORY_KEY, free_ports
from ...fidelity.oracle import InsightFaceOracle
from ...fidelity.scenes import square_scene
from ...fidelity.test_insightface_fidelity import (
    GatewayFaces,
    assert_same_faces,
    png,
    spread_squares,
)
from ...fidelity.test_swap_fidelity import MIN_PSNR_DB, Reference, psnr
from ...images import encode, square_image
from .test_variants import SCENES, install_files
from .variants import DETECTOR_VARIANTS, RECOGNIZER_VARIANTS, SWAPPER_VARIANTS, versions

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:`estimate` is deprecated:FutureWarning"),
]


def _variant(variants: list, variant_id: str) -> object:  # type: ignore[type-arg]
    return next(v for v in variants if v.id == variant_id)


@pytest.fixture(scope="module")
def upstream_dir(tiny_models: SyntheticModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("variant-upstream")
    detector = _variant(DETECTOR_VARIANTS, "everything").transform(tiny_models.detector)  # type: ignore[attr-defined]
    recognizer = _variant(RECOGNIZER_VARIANTS, "runs-at-batch-1-only").transform(  # type: ignore[attr-defined]
        tiny_models.recognizer
    )
    swapper = versions(17, 9)(
        _variant(SWAPPER_VARIANTS, "other-names").transform(tiny_models.swapper)  # type: ignore[attr-defined]
    )
    onnx.save(detector, str(folder / "detector.onnx"))
    onnx.save(recognizer, str(folder / "recognizer.onnx"))
    onnx.save(
        swapper,
        str(folder / "swapper.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="swapper.onnx.data",
        size_threshold=1024,
    )
    assert (folder / "swapper.onnx.data").stat().st_size > (folder / "swapper.onnx").stat().st_size
    return folder


@pytest.fixture(scope="module")
def variant_repository(upstream_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repository = tmp_path_factory.mktemp("variant-repository")
    install_files(
        repository, {r: upstream_dir / f"{r}.onnx" for r in ("detector", "recognizer", "swapper")}
    )
    manifest = read_manifest(repository)
    assert manifest["detector"]["max_batch_size"] == 8, manifest["detector"]["notes"]
    assert manifest["recognizer"]["max_batch_size"] == 0, manifest["recognizer"]["notes"]
    return repository


@pytest.fixture(scope="module")
def variant_gateway(
    variant_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    options = TritonOptions(
        repository=variant_repository, ports=free_ports(), repository_key=REPOSITORY_KEY
    )
    server = EmbeddedTriton(options, runtime_dir=tmp_path_factory.mktemp("variant-triton"))
    server.start()
    try:
        with ServerThread(gateway_settings(server)) as gateway:
            yield gateway.url
    finally:
        server.stop()


@pytest.fixture
def client(variant_gateway: str) -> Iterator[httpx.Client]:
    with api_client(variant_gateway, USER_KEY) as http:
        yield http


@pytest.mark.parametrize(("width", "height", "threshold"), SCENES)
def test_detect_and_embed_equal_insightface(
    client: httpx.Client, upstream_dir: Path, width: int, height: int, threshold: float
) -> None:
    squares = spread_squares(width, height)
    img = square_scene(width, height, squares)
    want = InsightFaceOracle(upstream_dir).faces(img, threshold)
    response = client.post(
        "/v1/detect",
        params={"embed": "true", "threshold": threshold},
        files={"image": ("scene.png", png(img), "image/png")},
    )
    assert response.status_code == 200, response.text
    assert len(want) == len(squares)
    assert_same_faces(GatewayFaces.from_json(response.json()["faces"]), want)


def test_swap_equals_inswapper(client: httpx.Client, upstream_dir: Path) -> None:
    source = square_image(640, 640, [(240, 128, 64)], value=230)
    target = square_image(640, 640, [(320, 320, 128), (96, 400, 32)])
    expected = Reference(upstream_dir).swap(source, target, all_faces=True)
    assert not np.array_equal(expected, target)
    response = client.post(
        "/v1/swap",
        files=[("source", encode(source)), ("target", encode(target))],
        params={"target_face": "all"},
    )
    assert response.status_code == 200, response.text
    got = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert psnr(got, expected) >= MIN_PSNR_DB
