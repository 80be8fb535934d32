"""Everything the install writes is readable by another, unprivileged user, whatever the umask.

Triton runs as another uid than the installer (NGC image uid 1000, the gateway image
10001), and Kubernetes skips fsGroup on read-only mounts: a 0600 model.onnx crash-loops it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.ops.repository.install import DIR_MODE, FILE_MODE, install_models
from gateway.ops.repository.synthetic import NOT_A_FACE_MODEL, SyntheticModels
from gateway.triton import spec

NOBODY = 65534


@pytest.fixture
def umask_077() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder other users may enter (pytest's tmp_path is under a 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix="facegate-modes-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _install(repository: Path, tiny_models: SyntheticModels) -> None:
    upstream = {name: getattr(tiny_models, name) for name in spec.ALL_MODELS}
    label = {"source": "synthetic-tiny", "synthetic": NOT_A_FACE_MODEL}
    install_models(repository, upstream, dict.fromkeys(upstream, label))


def _modes(repository: Path) -> dict[str, int]:
    return {
        str(p.relative_to(repository)): stat.S_IMODE(p.stat().st_mode)
        for p in [repository, *repository.rglob("*")]
    }


def test_files_0644_and_directories_0755_whatever_the_umask(
    tiny_models: SyntheticModels, tmp_path: Path, umask_077: None
) -> None:
    repository = tmp_path / "new" / "repository"
    _install(repository, tiny_models)
    _install(repository, tiny_models)  # replacing files keeps the modes too
    modes = _modes(repository)
    written = {"MODELS.json"} | {
        f"{name}/{path}"
        for name in spec.ALL_MODELS
        for path in ("1/model.onnx", "1/model.py", "config.pbtxt", "configs/embedded.pbtxt")
    }
    assert written <= set(modes)
    for path, mode in modes.items():
        is_dir = (repository / path).is_dir()
        assert mode == (DIR_MODE if is_dir else FILE_MODE), f"{path}: {oct(mode)}"
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == DIR_MODE  # created by the install


def _as_nobody() -> list[str]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user")
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]


def _nobody_reads_all(repository: Path) -> subprocess.CompletedProcess[bytes]:
    files = [str(p) for p in repository.rglob("*") if p.is_file()]
    return subprocess.run(
        [*_as_nobody(), "cat", *files],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )


def test_another_user_reads_every_file(
    tiny_models: SyntheticModels, shared_dir: Path, umask_077: None
) -> None:
    repository = shared_dir / "repository"
    _install(repository, tiny_models)
    done = _nobody_reads_all(repository)
    assert done.returncode == 0, done.stderr.decode()
    # The check can fail: the mode mkstemp gives (0600) locks the other user out.
    os.chmod(repository / "detector" / "1" / "model.onnx", 0o600)
    assert _nobody_reads_all(repository).returncode != 0


def test_an_existing_closed_repository_is_left_alone_with_a_warning(
    tiny_models: SyntheticModels, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repository = tmp_path / "mine"
    repository.mkdir(mode=0o700)
    os.chmod(repository, 0o700)
    _install(repository, tiny_models)
    assert stat.S_IMODE(repository.stat().st_mode) == 0o700  # the operator's folder, not ours
    assert "not searchable by other users" in caplog.text
