"""Every config parses with Triton's own protobuf schema and matches the ONNX file it serves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from gateway.ops.repository import configs
from gateway.triton import spec

REPO_ROOT = Path(__file__).resolve().parents[3]
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


def _dims(shape: list[object]) -> list[int]:
    """ONNX Runtime's reported shape with symbolic dimensions (names or None) as -1."""
    return [d if isinstance(d, int) else -1 for d in shape]


@pytest.mark.parametrize("name", spec.ALL_MODELS)
def test_onnxruntime_reports_exactly_the_config_dims(tiny_repository: Path, name: str) -> None:
    """Triton's ONNX Runtime backend compares the config's dims with the shapes ONNX Runtime
    reports for the model, exactly; a mismatch fails the load on the GPU image, which the
    embedded (Python backend) server would never notice."""
    session = ort.InferenceSession(
        str(tiny_repository / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    for variant in configs.VARIANTS:
        config = parse(tiny_repository / name / configs.config_path(variant))
        batched = config.max_batch_size > 0
        for reported, declared in (
            (session.get_inputs(), config.input),
            (session.get_outputs(), config.output),
        ):
            assert [t.name for t in reported] == [t.name for t in declared]
            for tensor, config_tensor in zip(reported, declared, strict=True):
                expected = ([-1] if batched else []) + list(config_tensor.dims)
                assert _dims(tensor.shape) == expected, (variant, tensor.name)
    # What a run returns has the same shapes (batch 2 where batched; a variable frame side,
    # the detector's, at 128 px: its variable outputs then have 128 px anchor counts).
    config = parse(tiny_repository / name / "config.pbtxt")
    batch = [2] if config.max_batch_size > 0 else []
    numpy_types = {model_config_pb2.TYPE_UINT8: np.uint8, model_config_pb2.TYPE_FP32: np.float32}
    feeds = {
        t.name: np.zeros(batch + [d if d >= 0 else 128 for d in t.dims], numpy_types[t.data_type])
        for t in config.input
    }
    outputs = session.run([t.name for t in config.output], feeds)
    anchors_at_128 = {t.name: t.shape for t in spec.detector_outputs(128)}
    for array, config_tensor in zip(outputs, config.output, strict=True):
        dims = list(config_tensor.dims)
        if -1 in dims:
            dims = list(anchors_at_128[config_tensor.name])
        assert list(array.shape) == batch + dims, config_tensor.name


@pytest.mark.parametrize("name", spec.ALL_MODELS)
def test_tensorrt_config_warms_up_and_keeps_caches_relative(name: str) -> None:
    config = parse(REPO_ROOT / "model_repository" / name / "configs" / "tensorrt.pbtxt")
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    for key in ("trt_engine_cache_path", "trt_timing_cache_path"):
        # Relative to Triton's working directory, which the chart sets to the cache mount.
        assert accelerator.parameters[key] == name
    sizes = sorted({w.batch_size for w in config.model_warmup})
    assert sizes == ([1, config.max_batch_size] if config.max_batch_size > 1 else [1])
    if any(d < 0 for t in config.input for d in t.dims):
        # Each batch size at both default frame sizes, so TensorRT's range covers 128 to 640.
        frames = {(w.batch_size, tuple(w.inputs["images"].dims)) for w in config.model_warmup}
        assert frames == {(b, (s, s, 3)) for b in sizes for s in (128, 640)}
    for warmup in config.model_warmup:
        assert set(warmup.inputs) == {t.name for t in config.input}
        for tensor in config.input:
            sample = warmup.inputs[tensor.name]
            # A variable side (-1, the detector's frame) is warmed at concrete sizes.
            assert len(sample.dims) == len(tensor.dims) and sample.zero_data
            assert all(
                s == d if d >= 0 else s > 0 for s, d in zip(sample.dims, tensor.dims, strict=True)
            )
            assert sample.data_type == tensor.data_type
