"""The install's choice between onnxruntime's CPU provider and OpenVINO's, and the runner's fallback."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from gateway.ops.repository import configs, runner
from gateway.ops.repository.install import install_models, model_session, read_manifest
from gateway.ops.repository.providers import (
    OPENVINO_FOLDER,
    OPENVINO_MARGIN,
    PROBE_MAX_BATCH,
    BatchTimes,
    ProbeResult,
    ProviderChoice,
    choose_provider,
    output_difference,
    pick_provider,
    probe_feeds,
)
from gateway.ops.repository.selfcheck import FLOAT_TOLERANCE, PIXEL_TOLERANCE
from gateway.ops.repository.synthetic import NOT_A_FACE_MODEL, SyntheticModels
from gateway.triton import spec

HAVE_OPENVINO = (OPENVINO_FOLDER / "onnxruntime" / "__init__.py").is_file()
needs_openvino = pytest.mark.skipif(
    not HAVE_OPENVINO,
    reason=f"no onnxruntime-openvino in {OPENVINO_FOLDER}: run scripts/bootstrap.sh",
)
LABEL = {"source": "synthetic-tiny", "synthetic": NOT_A_FACE_MODEL}


# --- the rule -----------------------------------------------------------------------------


def test_openvino_is_kept_only_when_faster_by_the_margin() -> None:
    assert pick_provider(100.0, 80.0, 0.0, FLOAT_TOLERANCE, "auto").provider == "openvino"
    edge = pick_provider(100.0, 100.0 * OPENVINO_MARGIN, 0.0, FLOAT_TOLERANCE, "auto")
    assert edge.provider == "cpu"
    assert pick_provider(100.0, 120.0, 0.0, FLOAT_TOLERANCE, "auto").provider == "cpu"


@pytest.mark.parametrize("mode", ["auto", "openvino"])
@pytest.mark.parametrize("diff", [2e-3, float("nan"), float("inf")])
def test_different_outputs_keep_the_cpu_provider_however_fast(mode: str, diff: float) -> None:
    choice = pick_provider(100.0, 10.0, diff, FLOAT_TOLERANCE, mode)  # type: ignore[arg-type]
    assert choice.provider == "cpu"
    assert "differ" in choice.reason


def test_openvino_faster_on_a_full_batch_is_kept_if_as_fast_on_one() -> None:
    # The recognizer here: 1.01x on one face, 0.93x on 32.
    full = BatchTimes(32, cpu_ms=770.0, openvino_ms=720.0)
    choice = pick_provider(28.0, 28.3, 0.0, FLOAT_TOLERANCE, "auto", full)
    assert choice.provider == "openvino" and "batch of 32" in choice.reason
    assert choice.batched == BatchTimes(32, cpu_ms=770.0, openvino_ms=720.0)
    assert "batch of 32: CPU 770 ms, OpenVINO 720 ms (0.94x)" in choice.describe()
    # Slower than the margin allows on one: the CPU provider stays.
    slower_single = pick_provider(28.0, 30.0, 0.0, FLOAT_TOLERANCE, "auto", full)
    assert slower_single.provider == "cpu"
    # Not faster by the margin on the batch either: the CPU provider stays.
    close = BatchTimes(32, cpu_ms=770.0, openvino_ms=770.0 * OPENVINO_MARGIN)
    assert pick_provider(28.0, 28.0, 0.0, FLOAT_TOLERANCE, "auto", close).provider == "cpu"


def _fake_probe(
    seen: list[list[dict[str, Any]]], cpu: tuple[float, ...], openvino: tuple[float, ...]
) -> object:
    def probe(
        model_path: Path, params: dict[str, str], feed_sets: list[dict[str, Any]], _: Path
    ) -> ProbeResult:
        seen.append(feed_sets)
        if params["execution_provider"] == "cpu":
            return ProbeResult((runner.CPU,), cpu, {"0/0": np.zeros(3, np.float32)}, "")
        if not openvino:
            return ProbeResult((), (), {}, "RuntimeException: ...Failed to allocate 40 GB")
        outputs = {"0/0": np.zeros(3, np.float32)}
        return ProbeResult((runner.OPENVINO, runner.CPU), openvino, outputs, "")

    return probe


def test_a_batched_model_is_timed_on_a_full_batch_too(
    tiny_models: SyntheticModels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.ops.repository import providers
    from gateway.ops.repository.prepare import PREPARERS

    seen: list[list[dict[str, Any]]] = []
    monkeypatch.setattr(providers, "run_probe", _fake_probe(seen, (28.0, 770.0), (28.3, 720.0)))
    (tmp_path / "onnxruntime").mkdir()
    (tmp_path / "onnxruntime" / "__init__.py").write_text("")
    recognizer = PREPARERS[spec.RECOGNIZER](tiny_models.recognizer).model
    choice = choose_provider(
        spec.RECOGNIZER, tmp_path / "m.onnx", recognizer, {}, "auto", tmp_path, max_batch=64
    )
    assert choice.provider == "openvino"
    assert choice.batched is not None and choice.batched.batch == PROBE_MAX_BATCH
    shapes = [[f[spec.RECOGNIZER_INPUT.name].shape[0] for f in sets] for sets in seen]
    assert shapes == [[1, PROBE_MAX_BATCH]] * 2  # the same feeds on both providers
    # OpenVINO's probe failing (a compile that asks for tens of GB): the CPU provider, and why.
    monkeypatch.setattr(providers, "run_probe", _fake_probe(seen, (28.0, 770.0), ()))
    failed = choose_provider(
        spec.RECOGNIZER, tmp_path / "m.onnx", recognizer, {}, "auto", tmp_path, max_batch=64
    )
    assert failed.provider == "cpu" and "OpenVINO failed" in failed.reason
    assert failed.cpu_ms == 28.0


def test_asking_for_openvino_keeps_it_when_equal_even_if_slower() -> None:
    choice = pick_provider(100.0, 150.0, 0.0, FLOAT_TOLERANCE, "openvino")
    assert choice.provider == "openvino"


def test_the_report_line_says_provider_times_and_difference() -> None:
    line = ProviderChoice("openvino", "faster here", 10.0, 5.0, 1e-6, 1e-3).describe()
    assert line.startswith("execution provider: openvino (faster here")
    assert "CPU 10 ms, OpenVINO 5 ms (0.50x)" in line
    assert "differ by 1e-06 (tolerance 0.001)" in line


def test_output_difference_scales_floats_and_counts_pixel_levels() -> None:
    big = np.array([[100.0, -50.0]], np.float32)
    diff, tolerance = output_difference({"0/0": big}, {"0/0": big + 0.05})
    assert tolerance == FLOAT_TOLERANCE
    assert diff == pytest.approx(0.05 / 100.0, rel=1e-3)
    pixels = np.array([[0, 200, 255]], np.uint8)
    moved = np.array([[1, 200, 254]], np.uint8)
    assert output_difference({"0/0": pixels}, {"0/0": moved}) == (1.0, PIXEL_TOLERANCE)
    assert output_difference({"0/0": big}, {"0/1": big})[0] == float("inf")
    assert output_difference({"0/0": big}, {"0/0": big[:, :1]})[0] == float("inf")


def test_feeds_follow_the_served_contract(tiny_models: SyntheticModels) -> None:
    from gateway.ops.repository.prepare import PREPARERS

    detector = PREPARERS[spec.DETECTOR](tiny_models.detector).model
    sets = probe_feeds(detector)
    shapes = [s[spec.DETECTOR_INPUT.name].shape for s in sets]
    assert shapes == [(1, 128, 128, 3), (1, 640, 640, 3)]
    assert all(s[spec.DETECTOR_INPUT.name].dtype == np.uint8 for s in sets)
    swapper = PREPARERS[spec.SWAPPER](tiny_models.swapper).model
    (feeds,) = probe_feeds(swapper)
    assert feeds[spec.SWAPPER_TARGET.name].shape == (1, 128, 128, 3)
    source = feeds[spec.SWAPPER_SOURCE.name]
    assert source.dtype == np.float32
    assert float(np.linalg.norm(source)) == pytest.approx(1.0, rel=1e-5)


# --- configs ------------------------------------------------------------------------------


def test_an_openvino_choice_reaches_the_embedded_and_cpu_configs_only() -> None:
    choice = ProviderChoice("openvino", "faster here")
    session = model_session(spec.SWAPPER, choice)
    assert session.execution_provider == "openvino"
    assert session.openvino_path == str(OPENVINO_FOLDER)
    # OpenVINO compiles its own graph: the CPU-optimised file would be refused anyway.
    assert not session.use_optimized_model
    layout = configs.layouts()[spec.RECOGNIZER]
    embedded = configs.render_config(layout, "embedded", session=session)
    assert 'key: "execution_provider" value: { string_value: "openvino" }' in embedded
    assert f'key: "openvino_path" value: {{ string_value: "{OPENVINO_FOLDER}" }}' in embedded
    accelerator = 'cpu_execution_accelerator: [ { name: "openvino" } ]'
    assert accelerator in configs.render_config(layout, "cpu", session=session)
    for variant in ("gpu", "tensorrt"):
        assert "openvino" not in configs.render_config(layout, variant, session=session)
    cpu_session = model_session(spec.RECOGNIZER, ProviderChoice("cpu", "asked for"))
    for variant in configs.VARIANTS:
        text = configs.render_config(layout, variant, session=cpu_session)
        assert 'string_value: "openvino"' not in text and accelerator not in text


def test_asking_for_the_cpu_provider_compares_nothing(tmp_path: Path) -> None:
    choice = choose_provider(
        spec.RECOGNIZER, tmp_path / "absent.onnx", onnx.ModelProto(), {}, "cpu"
    )
    assert choice == ProviderChoice("cpu", "asked for")


def test_without_openvinos_onnxruntime_the_install_keeps_cpu_and_says_why(
    tiny_models: SyntheticModels, tmp_path: Path
) -> None:
    choice = choose_provider(
        spec.RECOGNIZER,
        tmp_path / "model.onnx",
        tiny_models.recognizer,
        {},
        "auto",
        openvino_folder=tmp_path / "nowhere",
    )
    assert choice.provider == "cpu"
    assert "not installed" in choice.reason and "bootstrap.sh" in choice.reason


# --- the A/B and the runner on both providers (processes of their own) ------------------


@pytest.fixture(scope="module")
def openvino_repository(
    tiny_models: SyntheticModels, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    repository = tmp_path_factory.mktemp("openvino_repository")
    upstream = {
        spec.DETECTOR: tiny_models.detector,
        spec.RECOGNIZER: tiny_models.recognizer,
        spec.SWAPPER: tiny_models.swapper,
    }
    install_models(
        repository, upstream, dict.fromkeys(upstream, LABEL), execution_provider="openvino"
    )
    return repository


@pytest.mark.slow
@needs_openvino
def test_the_install_records_each_models_choice_and_why(openvino_repository: Path) -> None:
    manifest = read_manifest(openvino_repository)
    recognizer = manifest[spec.RECOGNIZER]
    assert recognizer["execution_provider"] == "openvino"
    assert float(recognizer["execution_provider_max_abs_diff"]) <= FLOAT_TOLERANCE  # type: ignore[arg-type]
    assert recognizer["execution_provider_cpu_ms"] and recognizer["execution_provider_openvino_ms"]
    embedded = (openvino_repository / spec.RECOGNIZER / "configs" / "embedded.pbtxt").read_text()
    assert 'string_value: "openvino"' in embedded
    # Both batched models were also timed on a full batch (capped at PROBE_MAX_BATCH).
    assert recognizer["execution_provider_batch"] == min(32, PROBE_MAX_BATCH)
    detector = manifest[spec.DETECTOR]
    assert detector["execution_provider"] == "openvino"
    assert detector["execution_provider_batch"] == detector["max_batch_size"]
    assert detector["execution_provider_cpu_batch_ms"]
    assert detector["execution_provider_openvino_batch_ms"]
    assert float(detector["execution_provider_max_abs_diff"]) <= FLOAT_TOLERANCE  # type: ignore[arg-type]


# The runner as Triton's stub runs it: a fake triton_python_backend_utils, a fresh process
# (OpenVINO's onnxruntime can only be imported where no onnxruntime was imported yet).
STUB_SCRIPT = textwrap.dedent(
    """
    import json, sys, types
    import numpy as np

    warnings = []
    fake = types.ModuleType("triton_python_backend_utils")
    fake.Logger = types.SimpleNamespace(log_warn=warnings.append)
    sys.modules["triton_python_backend_utils"] = fake
    sys.path.insert(0, sys.argv[1])
    import model

    config = json.loads(sys.argv[2])
    stub = model.TritonPythonModel()
    stub.initialize({
        "model_config": json.dumps(config),
        "model_repository": sys.argv[3],
        "model_version": "1",
        "model_instance_kind": "CPU",
    })
    crops = np.random.default_rng(5).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    (embeddings,) = stub._run({"faces": crops})
    np.save(sys.argv[4], embeddings)
    print(json.dumps({"providers": stub._session.get_providers(), "warnings": warnings}))
    """
)


def _run_stub(repository: Path, params: dict[str, str], out: Path) -> dict[str, list[str]]:
    model_dir = repository / spec.RECOGNIZER
    config = {
        "name": spec.RECOGNIZER,
        "max_batch_size": 32,
        "input": [{"name": spec.RECOGNIZER_INPUT.name}],
        "output": [{"name": spec.RECOGNIZER_OUTPUT.name}],
        "parameters": {k: {"string_value": v} for k, v in params.items()},
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            STUB_SCRIPT,
            str(model_dir / "1"),
            json.dumps(config),
            str(model_dir),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
@needs_openvino
def test_the_runner_serves_on_openvino_with_the_cpu_providers_answers(
    openvino_repository: Path, tmp_path: Path
) -> None:
    base = {"intra_op_num_threads": "1", "allow_spinning": "0"}
    cpu = _run_stub(openvino_repository, base, tmp_path / "cpu.npy")
    openvino = _run_stub(
        openvino_repository,
        {**base, "execution_provider": "openvino", "openvino_path": str(OPENVINO_FOLDER)},
        tmp_path / "openvino.npy",
    )
    assert cpu["providers"] == [runner.CPU] and not cpu["warnings"]
    assert openvino["providers"][0] == runner.OPENVINO and not openvino["warnings"]
    # tests/fidelity's embedding tolerance against InsightFace
    np.testing.assert_allclose(
        np.load(tmp_path / "openvino.npy"), np.load(tmp_path / "cpu.npy"), atol=1e-5, rtol=0
    )


@pytest.mark.slow
def test_the_runner_falls_back_to_the_cpu_provider_when_openvino_is_missing(
    openvino_repository: Path, tmp_path: Path
) -> None:
    params = {"execution_provider": "openvino", "openvino_path": str(tmp_path / "nowhere")}
    seen = _run_stub(openvino_repository, params, tmp_path / "fallback.npy")
    assert seen["providers"] == [runner.CPU]
    (warning,) = seen["warnings"]
    assert "the CPU provider instead of OpenVINO" in warning and "not installed" in warning
