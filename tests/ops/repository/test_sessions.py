"""Embedded runner settings: chosen from the host's cores, written only where the runner reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from gateway.ops.repository import configs, sessions
from gateway.ops.repository.configs import EmbeddedSession
from gateway.ops.repository.runner import DEFAULT_PARAMETERS
from gateway.triton import spec


def _parse(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


@pytest.mark.parametrize("name", spec.ALL_MODELS)
def test_the_embedded_config_carries_every_runner_setting(name: str) -> None:
    session = EmbeddedSession(
        intra_op_threads=3, inter_op_threads=1, instances=2, use_optimized_model=True
    )
    config = _parse(configs.render_config(configs.layouts()[name], "embedded", "ab" * 32, session))
    parameters = {key: value.string_value for key, value in config.parameters.items()}
    assert set(DEFAULT_PARAMETERS) <= set(parameters)
    assert parameters["intra_op_num_threads"] == "3"
    assert parameters["allow_spinning"] == "0"
    assert parameters["use_optimized_model"] == "1"
    assert [group.count for group in config.instance_group] == [2]
    assert parameters["execution_provider"] == "cpu"
    assert parameters["openvino_path"] == ""


def test_the_openvino_choice_and_its_folder_reach_the_runner() -> None:
    session = EmbeddedSession(
        intra_op_threads=2, execution_provider="openvino", openvino_path="/ov"
    )
    config = _parse(
        configs.render_config(configs.layouts()[spec.RECOGNIZER], "embedded", "", session)
    )
    parameters = {key: value.string_value for key, value in config.parameters.items()}
    assert (parameters["execution_provider"], parameters["openvino_path"]) == ("openvino", "/ov")
    cpu = _parse(configs.render_config(configs.layouts()[spec.RECOGNIZER], "cpu", "", session))
    assert [a.name for a in cpu.optimization.execution_accelerators.cpu_execution_accelerator] == [
        "openvino"
    ]


@pytest.mark.parametrize("variant", [v for v in configs.VARIANTS if v != "embedded"])
@pytest.mark.parametrize("name", spec.ALL_MODELS)
def test_the_onnx_runtime_backend_keeps_its_own_settings(
    name: str, variant: configs.Variant
) -> None:
    """The NGC image's ONNX Runtime backend reads none of the runner's keys, nor its instances."""
    session = EmbeddedSession(intra_op_threads=3, allow_spinning=True, instances=4)
    config = _parse(configs.render_config(configs.layouts()[name], variant, "", session))
    assert not set(DEFAULT_PARAMETERS) & set(config.parameters)
    assert [group.count for group in config.instance_group] == [1]


def test_host_cores_is_the_affinity_capped_by_the_cgroup_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    affinity = len(sessions.os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(sessions, "CGROUP_CPU_MAX", quota)
    quota.write_text("max 100000\n")
    assert sessions.host_cores() == affinity
    quota.write_text("150000 100000\n")
    assert sessions.host_cores() == min(affinity, 2)
    quota.write_text("50000 100000\n")
    assert sessions.host_cores() == 1
    quota.unlink()
    assert sessions.host_cores() == affinity


@pytest.mark.parametrize("cores", [1, 2, 4, 16])
@pytest.mark.parametrize("name", spec.ALL_MODELS)
def test_every_model_gets_threads_within_the_host(name: str, cores: int) -> None:
    session = sessions.embedded_session(name, cores)
    assert 1 <= session.intra_op_threads <= cores
    assert session.inter_op_threads >= 1
    assert not session.allow_spinning
    assert session.use_optimized_model == (name == spec.SWAPPER)


@pytest.mark.parametrize("cores", [1, 2, 3, 8])
def test_every_model_gets_all_the_cores_with_spin_wait_off(cores: int) -> None:
    # Idle pools cost nothing with spin-wait off, so the detect path's models share the cores.
    for name in spec.ALL_MODELS:
        session = sessions.embedded_session(name, cores)
        assert session.intra_op_threads == cores
        assert not session.allow_spinning


def test_the_embedded_delay_is_the_sessions_and_the_ngc_delay_stays() -> None:
    layout = configs.layouts()[spec.DETECTOR]
    session = sessions.embedded_session(spec.DETECTOR, 2)
    assert session.queue_delay_us is not None
    assert session.queue_delay_us < layout.queue_delay_us
    for variant in configs.VARIANTS:
        config = _parse(configs.render_config(layout, variant, "", session))
        expected = session.queue_delay_us if variant == "embedded" else layout.queue_delay_us
        assert config.dynamic_batching.max_queue_delay_microseconds == expected
