"""`facegate bench --cold`: the variants it switches between, its table, a run on tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from gateway.ops.bench import cold
from gateway.ops.cli import main
from gateway.ops.repository import configs
from gateway.ops.repository.install import install_models
from gateway.ops.repository.synthetic import NOT_A_FACE_MODEL, SyntheticModels
from gateway.triton import spec


def _parameters(repository: Path, name: str) -> dict[str, str]:
    path = repository / name / configs.config_path("embedded")
    config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    return {key: value.string_value for key, value in config.parameters.items()}


def test_variants_switch_the_runner_and_installed_restores_the_install(
    tiny_models: SyntheticModels, tmp_path: Path
) -> None:
    upstream = {name: getattr(tiny_models, name) for name in cold.MODELS}
    label = {"source": "synthetic-tiny", "synthetic": NOT_A_FACE_MODEL}
    install_models(tmp_path, upstream, dict.fromkeys(upstream, label))
    written = {
        name: (tmp_path / name / configs.config_path("embedded")).read_text() for name in upstream
    }
    shas = {name: _parameters(tmp_path, name)[spec.MODEL_SHA256_PARAMETER] for name in upstream}
    cold.use_variant(tmp_path, "before")
    for name in upstream:
        parameters = _parameters(tmp_path, name)
        assert parameters["use_optimized_model"] == "0"
        assert parameters["allow_spinning"] == "1"
        assert parameters[spec.MODEL_SHA256_PARAMETER] == shas[name] != ""
    cold.use_variant(tmp_path, "installed")
    for name, text in written.items():
        assert (tmp_path / name / configs.config_path("embedded")).read_text() == text


def test_the_table_gives_medians_and_the_ratio() -> None:
    results = cold.ColdResults(
        serve_ready_s={"before": [10.0, 12.0, 11.0], "installed": [5.0, 6.0, 5.5]},
        swapper_load_s={"before": [4.0], "installed": [1.0]},
    )
    text = cold.format_cold(results, "1 / 1 / 1", "2 / 2 / 2")
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "| 11.00 | 5.50 | 0.50x |" in rows["facegate serve to ready"]
    assert "| 4.00 | 1.00 | 0.25x |" in rows["swapper cold load (load call to ready)"]
    assert "swapper first call after the load" not in rows  # no figures: no row
    assert "1 / 1 / 1" in text and "2 / 2 / 2" in text


def test_the_report_block_is_replaced_in_place(tmp_path: Path) -> None:
    report = tmp_path / "BENCH.md"
    report.write_text("# Bench\n\nhand-written\n")
    start = {"load average at start (1/5/15 min)": "1.00 / 2.00 / 3.00"}
    cold.write_cold_report(report, "| first |\n", "facegate bench --cold", start)
    cold.write_cold_report(report, "| second |\n", "facegate bench --cold --rounds 5", start)
    text = report.read_text()
    # The machine line is the one read before the run, not one read while writing.
    assert "load average at start (1/5/15 min): 1.00 / 2.00 / 3.00" in text
    assert text.count(cold.BEGIN) == 1 and text.count(cold.HEADING) == 1
    assert "| second |" in text and "| first |" not in text and "--rounds 5" in text
    assert text.startswith("# Bench\n\nhand-written\n")


@pytest.mark.integration
def test_cold_run_on_tiny_models_measures_both_variants(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "--cold", "--profile", "tiny", "--rounds", "1", "--cache-dir", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| ") and "x |" in line]
    assert [row[1].strip() for row in rows] == [
        "facegate serve to ready",
        "swapper cold load (load call to ready)",
        "swapper first call after the load",
    ]
    for row in rows:
        before, installed = float(row[2]), float(row[3])
        assert before > 0 and installed > 0
    repository = tmp_path / "tiny" / "cold" / "repository"
    assert _parameters(repository, spec.SWAPPER)["use_optimized_model"] == "1"
