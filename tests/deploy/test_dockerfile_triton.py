"""Dockerfile.triton, checked statically (no Docker engine here): hadolint, and the files
it copies are all the faces model imports of facegate (with numpy, OpenCV and Pillow)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from test_container_files import hadolint

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile.triton"
# What the image must not need: the gateway's web stack, the Triton client, onnxruntime.
NOT_IN_IMAGE = ("fastapi", "starlette", "pydantic", "tritonclient", "grpc", "onnxruntime", "onnx")


def copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context."""
    found = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            *sources, destination = line.split()[1:]
            found.append((sources, destination))
    return found


def test_passes_hadolint() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_copied_modules_are_all_the_faces_model_imports(tmp_path: Path) -> None:
    image_root = tmp_path / "image"
    for sources, destination in copies():
        target = image_root / destination.lstrip("/")
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, target, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)
    facegate = image_root / "opt" / "facegate"
    script = (
        "import sys; "
        f"sys.path.insert(0, {str(facegate)!r}); "
        "from gateway.inserver.faces import TritonPythonModel; "
        "import gateway; "
        f"assert gateway.__file__.startswith({str(facegate)!r}), gateway.__file__; "
        f"print(sorted(m for m in {NOT_IN_IMAGE!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_numpy_is_the_pinned_1x() -> None:
    pins = (ROOT / "constraints.txt").read_text()
    text = DOCKERFILE.read_text()
    for package in ("numpy==1.26.4", "opencv-python-headless==4.11.0.86"):
        assert package in pins and package in text
