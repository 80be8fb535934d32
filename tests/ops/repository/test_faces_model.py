"""The faces model's directory: configs in sync, Triton's schema, written with its models."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from gateway.inserver import faces
from gateway.inserver.parameters import InvalidRequest, parse_parameters
from gateway.ops.repository import configs
from gateway.ops.repository.faces_model import render_faces_config, write_faces_model
from gateway.triton import spec

REPO_ROOT = Path(__file__).resolve().parents[3]


def parse(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


@pytest.mark.parametrize("variant", configs.VARIANTS)
def test_committed_configs_are_what_the_generator_writes(variant: configs.Variant) -> None:
    committed = REPO_ROOT / "model_repository" / spec.FACES / configs.config_path(variant)
    assert committed.read_text() == render_faces_config(variant, 8, spec.RECOGNIZER_MAX_BATCH)


@pytest.mark.parametrize("variant", configs.VARIANTS)
def test_config_declares_the_contract(variant: configs.Variant) -> None:
    config = parse(render_faces_config(variant, 0, 32))
    assert config.name == spec.FACES and config.backend == "python"
    assert config.max_batch_size == spec.FACES_MAX_BATCH and config.HasField("dynamic_batching")
    assert [(i.name, list(i.dims)) for i in config.input] == [("IMAGE", [1])]
    assert config.input[0].data_type == model_config_pb2.TYPE_STRING
    assert [(o.name, tuple(o.dims)) for o in config.output] == [
        (t.name, t.shape) for t in spec.FACES_OUTPUTS
    ]
    params = {k: v.string_value for k, v in config.parameters.items()}
    pipeline = faces.pipeline_config(params)
    assert (pipeline.detector_max_batch, pipeline.recognizer_max_batch) == (0, 32)
    assert pipeline.fallback.det_sizes_px == (128, 640)


@pytest.mark.parametrize("variant", configs.VARIANTS)
def test_tensorrt_serves_only_its_warmed_detector_sizes(variant: configs.Variant) -> None:
    config = parse(render_faces_config(variant, 8, 32))
    fallback = faces.pipeline_config(
        {k: v.string_value for k, v in config.parameters.items()}
    ).fallback
    if variant != "tensorrt":
        assert fallback.det_sizes_allowed_px == ()
        assert parse_parameters({"det_sizes": "320"}, fallback).det_sizes_px == (320,)
        return
    assert fallback.det_sizes_allowed_px == configs.WARMUP_FRAME_SIZES_PX
    assert parse_parameters({}, fallback).det_sizes_px == (128, 640)
    assert parse_parameters({"det_sizes": "640"}, fallback).det_sizes_px == (640,)
    with pytest.raises(InvalidRequest, match="det_sizes: 320 is not served here"):
        parse_parameters({"det_sizes": "320,640"}, fallback)


def test_written_with_both_models_it_calls(tmp_path: Path) -> None:
    written: dict[Path, bytes] = {}

    def write(path: Path, data: bytes) -> None:
        written[path] = data

    assert not write_faces_model(tmp_path, {spec.DETECTOR: {"max_batch_size": 8}}, write)
    assert not written
    manifest = {spec.DETECTOR: {"max_batch_size": 0}, spec.RECOGNIZER: {"max_batch_size": 32}}
    assert write_faces_model(tmp_path, manifest, write)

    folder = tmp_path / spec.FACES
    assert set(written) == {folder / "1" / "model.py"} | {
        folder / configs.config_path(v) for v in configs.VARIANTS
    }
    config = parse(written[folder / "config.pbtxt"].decode())
    assert config.parameters["detector_max_batch"].string_value == "0"
    namespace: dict[str, object] = {}
    exec(compile(written[folder / "1" / "model.py"], "model.py", "exec"), namespace)
    assert namespace["TritonPythonModel"] is faces.TritonPythonModel


def test_tiny_repository_holds_the_faces_model(tiny_repository: Path) -> None:
    assert (tiny_repository / spec.FACES / "1" / "model.py").is_file()
    assert (tiny_repository / spec.FACES / "configs" / "embedded.pbtxt").is_file()
