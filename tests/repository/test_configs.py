"""Every config parses with Triton's own protobuf schema and matches the ONNX file it serves."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from gateway.ops.repository import configs
from gateway.triton import spec

REPO_ROOT = Path(__file__).resolve().parents[2]
ONNX_TO_TRITON = {
    onnx.TensorProto.UINT8: model_config_pb2.TYPE_UINT8,
    onnx.TensorProto.FLOAT: model_config_pb2.TYPE_FP32,
}


def parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.mark.parametrize("variant", configs.VARIANTS)
@pytest.mark.parametrize("name", spec.ALL_MODELS)
def test_config_matches_prepared_onnx(
    tiny_repository: Path, name: str, variant: configs.Variant
) -> None:
    config = parse(tiny_repository / name / configs.config_path(variant))
    model = onnx.load(str(tiny_repository / name / "1" / "model.onnx"))
    assert config.name == name
    batch = 1 if config.max_batch_size > 0 else 0
    for tensors, config_tensors in (
        (model.graph.input, config.input),
        (model.graph.output, config.output),
    ):
        assert [t.name for t in tensors] == [c.name for c in config_tensors]
        for tensor, config_tensor in zip(tensors, config_tensors, strict=True):
            dims = [d.dim_value or -1 for d in tensor.type.tensor_type.shape.dim]
            assert list(config_tensor.dims) == dims[batch:], tensor.name
            assert ONNX_TO_TRITON[tensor.type.tensor_type.elem_type] == config_tensor.data_type
    if variant == "embedded":
        assert config.backend == "python"
    else:
        assert config.platform == "onnxruntime_onnx"
    if name in (spec.DETECTOR, spec.RECOGNIZER):
        assert config.max_batch_size > 0 and config.HasField("dynamic_batching")
    if name == spec.RECOGNIZER:
        assert config.max_batch_size >= 32


@pytest.mark.parametrize("variant", configs.VARIANTS)
@pytest.mark.parametrize("name", spec.ALL_MODELS)
def test_committed_configs_are_what_the_generator_writes(
    name: str, variant: configs.Variant
) -> None:
    committed = REPO_ROOT / "model_repository" / name / configs.config_path(variant)
    expected = configs.render_config(configs.layouts()[name], variant)
    assert committed.read_text() == expected, (
        f"regenerate {committed} with facegate's configs module"
    )
    parse(committed)


def test_tensorrt_variant_enables_fp16() -> None:
    config = parse(REPO_ROOT / "model_repository" / "detector" / "configs" / "tensorrt.pbtxt")
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == "FP16"
