"""examples/node/faces.js (@grpc/grpc-js, Triton's published protos) against the real Triton.

Raw JPEG/PNG bytes from a non-Python client get the same faces and embeddings as REST at
det_sizes 640 and 128,640; garbage bytes get INVALID_ARGUMENT and the call after it works.
Runs `npm ci` in examples/node when its node_modules is missing (node 20 and npm needed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest

from gateway.ops.servers.triton import EmbeddedTriton

from ..fidelity.scenes import Square, square_scene
from ..images import encode
from ..inserver.test_faces_model import assert_same, full_frame, rest, rest_faces, scene

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "node"
__all__ = ["rest"]  # the module-scoped gateway fixture, shared


@pytest.fixture(scope="module")
def node_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's directory with its dependencies installed, and the descriptor set."""
    for tool in ("node", "npm"):
        assert shutil.which(tool), f"{tool} is needed (node 20 and npm)"
    if not (EXAMPLE / "node_modules" / "@grpc" / "grpc-js").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=EXAMPLE, check=True, timeout=300
        )
    descriptors = tmp_path_factory.mktemp("node") / "triton.desc"
    subprocess.run(
        [sys.executable, str(EXAMPLE / "triton_descriptors.py"), str(descriptors)], check=True
    )
    return descriptors


def run_node(
    triton: EmbeddedTriton, descriptors: Path, files: list[Path], *args: str
) -> tuple[int, list[dict[str, Any]]]:
    done = subprocess.run(
        ["node", str(EXAMPLE / "faces.js"), "--url", triton.grpc_url,
         "--descriptors", str(descriptors), *args, *map(str, files)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert not done.stderr, done.stderr
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


def as_outputs(answer: dict[str, Any]) -> dict[str, npt.NDArray[Any]]:
    """The Node answer in the faces model's tensor form, for assert_same."""
    faces = answer["faces"]
    return {
        "BOXES": np.array([f["bbox"] for f in faces], np.float32).reshape(1, -1, 4),
        "SCORES": np.array([f["score"] for f in faces], np.float32).reshape(1, -1),
        "LANDMARKS": np.array([f["landmarks"] for f in faces], np.float32).reshape(1, -1, 5, 2),
        "EMBEDDINGS": np.array([f["embedding"] for f in faces], np.float32).reshape(1, -1, 512),
        "EMBEDDING_NORMS": np.array([f["embedding_norm"] for f in faces], np.float32).reshape(
            1, -1
        ),
    }


@pytest.mark.parametrize("det_sizes", ["640", "128,640"])
def test_node_client_gets_the_faces_rest_gives(
    triton: EmbeddedTriton,
    rest: httpx.Client,
    node_example: Path,
    tmp_path: Path,
    det_sizes: str,
) -> None:
    images = {
        "scene.png": scene(),
        "scene.jpg": encode(square_scene(800, 600, [Square(192, 160, 32, seed=3)]), ".jpg"),
        "full-frame.png": full_frame(),
    }
    files = []
    for name, data in images.items():
        (tmp_path / name).write_bytes(data)
        files.append(tmp_path / name)

    code, answers = run_node(
        triton, node_example, files, "--det-sizes", det_sizes, "--concurrency", "3"
    )

    assert code == 0, answers
    assert [a["image"] for a in answers] == [str(f) for f in files]
    for answer, data in zip(answers, images.values(), strict=True):
        want = rest_faces(rest, data, det_sizes=det_sizes)
        assert_same(as_outputs(answer), want)
    found = [len(a["faces"]) for a in answers]
    # The face that fills the frame is found at 128 only.
    assert found == ([3, 1, 0] if det_sizes == "640" else [3, 1, 1])


def test_garbage_bytes_are_invalid_argument_and_the_next_call_works(
    triton: EmbeddedTriton, node_example: Path, tmp_path: Path
) -> None:
    (tmp_path / "garbage.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    (tmp_path / "scene.png").write_bytes(scene())

    code, answers = run_node(
        triton, node_example, [tmp_path / "garbage.jpg", tmp_path / "scene.png"], "--no-embed"
    )

    assert code == 1
    assert answers[0]["error"]["code"] == "INVALID_ARGUMENT"
    assert answers[0]["error"]["message"]
    assert len(answers[1]["faces"]) == 3 and "embedding" not in answers[1]["faces"][0]
