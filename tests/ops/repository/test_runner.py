"""The embedded runner's session settings and the optimised model the install saves for it."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from gateway.ops.repository import runner
from gateway.ops.repository.install import install_models
from gateway.ops.repository.synthetic import NOT_A_FACE_MODEL, SyntheticModels
from gateway.triton import spec

# tests/fidelity's tolerances: embeddings within 1e-5 of InsightFace's, swapped pixels within 1.
EMBEDDING_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def installed(tiny_models: SyntheticModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repository = tmp_path_factory.mktemp("runner_repository")
    upstream = {spec.RECOGNIZER: tiny_models.recognizer, spec.SWAPPER: tiny_models.swapper}
    label = {"source": "synthetic-tiny", "synthetic": NOT_A_FACE_MODEL}
    install_models(repository, upstream, dict.fromkeys(upstream, label))
    return repository


def _sha(repository: Path, name: str) -> str:
    stamp = json.loads((repository / name / "1" / runner.OPTIMIZED_STAMP_FILE).read_text())
    return str(stamp["model_sha256"])


def test_the_runner_reads_the_parameter_install_writes() -> None:
    assert runner.MODEL_SHA256_PARAMETER == spec.MODEL_SHA256_PARAMETER


@pytest.mark.parametrize("spinning", ["0", "1"])
def test_spinning_reaches_both_thread_pools(spinning: str) -> None:
    options = runner.session_options(
        {"allow_spinning": spinning, "intra_op_num_threads": "1", "inter_op_num_threads": "2"}
    )
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == spinning
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == spinning
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 2)


def test_a_config_without_the_keys_gets_onnxruntimes_defaults() -> None:
    options = runner.session_options({})
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (0, 0)


def test_a_bad_spinning_value_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="allow_spinning"):
        runner.session_options({"allow_spinning": "yes"})


def test_install_saves_a_stamped_optimised_model(installed: Path) -> None:
    version_dir = installed / spec.SWAPPER / "1"
    for name in (runner.OPTIMIZED_FILE, runner.OPTIMIZED_DATA_FILE, runner.OPTIMIZED_STAMP_FILE):
        assert (version_dir / name).is_file(), name
    config = (installed / spec.SWAPPER / "configs" / "embedded.pbtxt").read_text()
    sha = _sha(installed, spec.SWAPPER)
    assert f'string_value: "{sha}"' in config
    assert runner.optimized_model_refusal(str(version_dir), sha) == ""


def _outputs(path: Path, level: ort.GraphOptimizationLevel, feeds: dict[str, np.ndarray]) -> list:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


def test_the_install_saves_no_optimised_recognizer(installed: Path) -> None:
    """The detect-path models load once, at start, and ran as fast or faster optimised at load."""
    version_dir = installed / spec.RECOGNIZER / "1"
    assert not any(p.name.startswith("model.opt") for p in version_dir.iterdir())
    config = (installed / spec.RECOGNIZER / "configs" / "embedded.pbtxt").read_text()
    assert 'key: "use_optimized_model" value: { string_value: "0" }' in config


def test_an_optimised_recognizer_gives_the_originals_embeddings(
    installed: Path, tmp_path: Path
) -> None:
    version_dir = tmp_path / "1"
    shutil.copytree(installed / spec.RECOGNIZER / "1", version_dir)
    runner.save_optimized_model(str(version_dir), "ab" * 32)
    rng = np.random.default_rng(5)
    feeds = {spec.RECOGNIZER_INPUT.name: rng.integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)}
    original = _outputs(
        version_dir / "model.onnx", ort.GraphOptimizationLevel.ORT_ENABLE_ALL, feeds
    )
    saved = _outputs(
        version_dir / runner.OPTIMIZED_FILE, ort.GraphOptimizationLevel.ORT_DISABLE_ALL, feeds
    )
    assert np.abs(original[0]).max() > 0
    np.testing.assert_allclose(saved[0], original[0], atol=EMBEDDING_TOLERANCE, rtol=0)


def test_the_optimised_swapper_gives_the_originals_pixels(installed: Path) -> None:
    version_dir = installed / spec.SWAPPER / "1"
    rng = np.random.default_rng(6)
    source = rng.standard_normal((1, 512)).astype(np.float32)
    feeds = {
        spec.SWAPPER_TARGET.name: rng.integers(0, 256, (1, 128, 128, 3), dtype=np.uint8),
        spec.SWAPPER_SOURCE.name: source / np.linalg.norm(source),
    }
    original = _outputs(
        version_dir / "model.onnx", ort.GraphOptimizationLevel.ORT_ENABLE_ALL, feeds
    )
    saved = _outputs(
        version_dir / runner.OPTIMIZED_FILE, ort.GraphOptimizationLevel.ORT_DISABLE_ALL, feeds
    )
    assert np.abs(saved[0].astype(int) - original[0].astype(int)).max() <= 1


@pytest.fixture
def copied(installed: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the swapper's version folder (tests below damage it) and its sha256."""
    folder = tmp_path / "1"
    folder.mkdir()
    for path in (installed / spec.SWAPPER / "1").iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return folder, _sha(installed, spec.SWAPPER)


def test_a_stamp_for_another_model_is_refused(copied: tuple[Path, str]) -> None:
    folder, sha = copied
    assert "model_sha256" in runner.optimized_model_refusal(str(folder), "0" * 64)
    with (folder / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    assert "model_bytes" in runner.optimized_model_refusal(str(folder), sha)


def test_a_stamp_from_another_host_or_onnxruntime_is_refused(copied: tuple[Path, str]) -> None:
    folder, sha = copied
    stamp_path = folder / runner.OPTIMIZED_STAMP_FILE
    stamp = json.loads(stamp_path.read_text())
    stamp_path.write_text(json.dumps({**stamp, "host": "elsewhere", "onnxruntime": "0.1"}))
    refusal = runner.optimized_model_refusal(str(folder), sha)
    assert "host" in refusal and "onnxruntime" in refusal


def test_missing_pieces_are_refused(copied: tuple[Path, str]) -> None:
    folder, sha = copied
    assert runner.optimized_model_refusal(str(folder), "") != ""
    (folder / runner.OPTIMIZED_DATA_FILE).unlink()
    assert "incomplete" in runner.optimized_model_refusal(str(folder), sha)
    (folder / runner.OPTIMIZED_STAMP_FILE).write_text("{not json")
    assert "stamp" in runner.optimized_model_refusal(str(folder), sha)
    runner.remove_optimized_model(str(folder))
    assert not any(p.name.startswith("model.opt") for p in folder.iterdir())
    assert "stamp" in runner.optimized_model_refusal(str(folder), sha)


def test_a_reinstall_never_leaves_the_old_stamp(
    tiny_models: SyntheticModels, tmp_path: Path
) -> None:
    label = {"source": "synthetic-tiny", "synthetic": NOT_A_FACE_MODEL}
    install_models(tmp_path, {spec.SWAPPER: tiny_models.swapper}, {spec.SWAPPER: label})
    first = _sha(tmp_path, spec.SWAPPER)
    other = {**label, "file": "again.onnx"}
    install_models(tmp_path, {spec.SWAPPER: tiny_models.swapper}, {spec.SWAPPER: other})
    second = _sha(tmp_path, spec.SWAPPER)
    # Different provenance metadata, so a different file: the stamp follows it.
    assert first != second
    version_dir = tmp_path / spec.SWAPPER / "1"
    assert runner.optimized_model_refusal(str(version_dir), second) == ""
    assert "model_sha256" in runner.optimized_model_refusal(str(version_dir), first)


def test_a_failed_optimisation_still_installs(
    tiny_models: SyntheticModels,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fail(version_dir: str, model_sha256: str, file_mode: int = 0o644) -> None:
        (Path(version_dir) / runner.OPTIMIZED_FILE).write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(runner, "save_optimized_model", fail)
    label = {"source": "synthetic-tiny", "synthetic": NOT_A_FACE_MODEL}
    with caplog.at_level(logging.WARNING):
        install_models(tmp_path, {spec.SWAPPER: tiny_models.swapper}, {spec.SWAPPER: label})
    version_dir = tmp_path / spec.SWAPPER / "1"
    assert (version_dir / "model.onnx").is_file()
    assert not any(p.name.startswith("model.opt") for p in version_dir.iterdir())
    assert "disk full" in caplog.text and "optimise model.onnx at each load" in caplog.text


def test_no_optimize_writes_no_optimised_model(
    tiny_models: SyntheticModels, tmp_path: Path
) -> None:
    """`facegate models ... --no-optimize` (the Helm chart's Job: its Triton reads model.onnx)."""
    label = {"source": "synthetic-tiny", "synthetic": NOT_A_FACE_MODEL}
    install_models(
        tmp_path, {spec.SWAPPER: tiny_models.swapper}, {spec.SWAPPER: label}, optimize=False
    )
    version_dir = tmp_path / spec.SWAPPER / "1"
    assert (version_dir / "model.onnx").is_file()
    assert not any(p.name.startswith("model.opt") for p in version_dir.iterdir())
