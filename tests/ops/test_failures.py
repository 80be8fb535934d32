"""No traceback for an expected failure: each says what to do and exits with its documented code."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest

from gateway.ops.cli import main
from gateway.ops.failures import ExitCode, ModelRefused, run_reported
from gateway.ops.repository.synthetic import SyntheticModels

from .repository.variants import DETECTOR_VARIANTS, drop_landmarks, input_dims

FACEGATE = [sys.executable, "-m", "gateway.ops.cli"]


def _pack(folder: Path, tiny_models: SyntheticModels, detector: bytes | None = None) -> Path:
    """A buffalo_l-named folder (no swapper) holding the tiny models, detector replaceable."""
    folder.mkdir(parents=True, exist_ok=True)
    det = detector if detector is not None else tiny_models.detector.SerializeToString()
    (folder / "det_10g.onnx").write_bytes(det)
    (folder / "w600k_r50.onnx").write_bytes(tiny_models.recognizer.SerializeToString())
    return folder


def _import(folder: Path, repository: Path, *extra: str) -> list[str]:
    return [
        "models", "import", str(folder), "--swapper", "none", "--no-verify",
        "--repository", str(repository), *extra,
    ]  # fmt: skip


def _assert_explained(err: str, *words: str) -> None:
    assert "Traceback" not in err, err
    assert "error: " in err, err
    paragraph = err[err.index("error: ") :]
    assert paragraph.count("\n") == 1, err  # one paragraph, the last thing printed
    for word in words:
        assert word in err, err


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"this is not an ONNX file\n", ("det_10g.onnx", "not a complete ONNX model")),
        (None, ("det_10g.onnx", "truncated")),
    ],
    ids=["not-onnx", "truncated"],
)
def test_unreadable_model_file_is_refused_plainly(
    content: bytes | None,
    words: tuple[str, ...],
    tiny_models: SyntheticModels,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    whole = tiny_models.detector.SerializeToString()
    folder = _pack(tmp_path / "pack", tiny_models, content or whole[: len(whole) // 2])
    assert main(_import(folder, tmp_path / "repo")) == ExitCode.MODEL_REFUSED
    _assert_explained(capsys.readouterr().err, *words)
    assert not (tmp_path / "repo").exists()  # nothing installed


@pytest.mark.parametrize(
    ("transform", "words"),
    [
        (drop_landmarks, ("6 outputs", "landmarks", "expected 9 outputs")),
        (input_dims([1, 3, 320, 320]), ("320", "640")),
    ],
    ids=["no-landmarks", "fixed-320-input"],
)
def test_wrong_contract_is_refused_plainly(
    transform: object,
    words: tuple[str, ...],
    tiny_models: SyntheticModels,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert callable(transform)
    broken: onnx.ModelProto = transform(tiny_models.detector)
    folder = _pack(tmp_path / "pack", tiny_models, broken.SerializeToString())
    assert main(_import(folder, tmp_path / "repo")) == ExitCode.MODEL_REFUSED
    _assert_explained(capsys.readouterr().err, "detector", "det_10g.onnx", *words)
    assert not (tmp_path / "repo" / "MODELS.json").exists()


@pytest.mark.parametrize(
    ("variant_id", "batched"),
    [("served-names", True), ("residual-branch-computed", False)],
)
def test_the_issues_two_crashes_now_install(
    variant_id: str,
    batched: bool,
    tiny_models: SyntheticModels,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 1. outputs already called score_8 ... kps_32; 2. a batch rewrite that does not run.
    variant = next(v for v in DETECTOR_VARIANTS if v.id == variant_id)
    detector = variant.transform(tiny_models.detector).SerializeToString()
    folder = _pack(tmp_path / "pack", tiny_models, detector)
    assert main(_import(folder, tmp_path / "repo")) == 0
    out = capsys.readouterr().out
    assert "sha256" in out and "self-check" in out
    assert ("batched (max_batch_size 8)" in out) is batched
    assert ("served unbatched" in out) is not batched


def test_debug_shows_the_traceback(
    tmp_path: Path,
    tiny_models: SyntheticModels,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = _pack(tmp_path / "pack", tiny_models, b"not onnx")
    assert main(["--debug", *_import(folder, tmp_path / "a")]) == ExitCode.MODEL_REFUSED
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("FACEGATE_DEBUG", "1")
    assert main(_import(folder, tmp_path / "b")) == ExitCode.MODEL_REFUSED
    assert "Traceback" in capsys.readouterr().err


def test_an_unexpected_error_says_it_is_a_bug(capsys: pytest.CaptureFixture[str]) -> None:
    def broken() -> int:
        raise KeyError("surprise")

    assert run_reported(broken) == ExitCode.UNEXPECTED
    _assert_explained(capsys.readouterr().err, "unexpected", "--debug", "KeyError")


def test_model_refusals_keep_their_paragraph(capsys: pytest.CaptureFixture[str]) -> None:
    def refused() -> int:
        raise ModelRefused("which file, which step, what was expected, what to do")

    assert run_reported(refused) == ExitCode.MODEL_REFUSED
    _assert_explained(capsys.readouterr().err, "what to do")


@contextlib.contextmanager
def _tiny_tmpfs(size: str) -> Iterator[Path]:
    """A real small file system that fills up (root only), or skip."""
    mount = Path(tempfile.mkdtemp(prefix="facegate-full-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


def test_disk_full_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    with _tiny_tmpfs("256k") as mount:
        code = main(["models", "synthetic", "--repository", str(mount / "repo")])
        leftovers = [p.name for p in mount.rglob(".*") if p.is_file()]
    assert code == ExitCode.STORAGE
    _assert_explained(capsys.readouterr().err, "No space left", "--repository")
    assert leftovers == []  # no temporary file left behind


def _as_nobody() -> list[str]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a command as another user")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def test_no_permission_says_what_to_do(tmp_path: Path) -> None:
    owned_by_root = Path(tempfile.mkdtemp(prefix="facegate-root-"))
    os.chmod(owned_by_root, 0o755)  # others may look, not write
    try:
        done = subprocess.run(
            [*_as_nobody(), *FACEGATE, "models", "synthetic", "--repository",
             str(owned_by_root / "repo")],
            capture_output=True, text=True, check=False, cwd=Path(__file__).parents[2],
        )  # fmt: skip
    finally:
        shutil.rmtree(owned_by_root)
    assert done.returncode == ExitCode.STORAGE, done.stderr
    _assert_explained(done.stderr, "Permission denied", "--repository")


@pytest.mark.parametrize(
    "command",
    [["gateway", "--no-auth", "--port"], ["triton", "--grpc-port"]],
    ids=["gateway", "triton"],
)
def test_port_in_use_says_what_to_do(command: list[str], tiny_repository: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = str(holder.getsockname()[1])
        done = subprocess.run(
            [*FACEGATE, *command, port, *(["--repository", str(tiny_repository)] if "triton" in command else [])],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
    assert done.returncode == ExitCode.PORT_IN_USE, done.stderr
    assert "Traceback" not in done.stderr
    assert port in done.stderr and "port" in done.stderr.lower()
