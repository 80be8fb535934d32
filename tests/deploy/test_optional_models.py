"""The cluster and compose installs load genderage and liveness as `facegate serve` does.

The embedded server (gateway/ops/servers/triton.py) adds --load-model for each optional model
the repository holds; the swapper stays on demand. The Helm chart and docker-compose.yml wrap
tritonserver in a small shell script that does the same. Here the rendered scripts run in the
real /bin/sh against real repositories, with a stand-in `tritonserver` on PATH that records the
arguments it was started with (the NGC image does not run here).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_container_files import COMPOSE_FILE, compose_config
from test_helm_chart import (
    container,
    load_values,
    one,
    render,
    triton_args,
    triton_spec,
)

from gateway.ops.servers.triton import TritonOptions, server_command
from gateway.triton import spec

CHART_CI = Path(__file__).resolve().parents[2] / "helm" / "facegate" / "ci"
RECORDER = '#!/bin/sh\nfor arg in "$@"; do echo "$arg"; done > "$RECORDED"\n'
# NGC's entrypoint sets up CUDA forward compatibility, then runs its arguments: its stand-in
# leaves a mark and does the second part.
NGC_ENTRYPOINT = "/opt/nvidia/nvidia_entrypoint.sh"
ENTRYPOINT_STAND_IN = '#!/bin/sh\ntouch "$RECORDED.entrypoint"\nexec "$@"\n'


def repository(root: Path, models: tuple[str, ...]) -> Path:
    """A repository holding these models' model file and config (contents do not matter)."""
    for name in models:
        (root / name / "1").mkdir(parents=True)
        (root / name / "1" / "model.onnx").write_bytes(b"onnx")
        (root / name / "config.pbtxt").write_text(f'name: "{name}"\n')
    return root


def start(argv: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> list[str]:
    """Run a container's command line with the recording tritonserver; its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    recorder = bin_dir / "tritonserver"
    recorder.write_text(RECORDER)
    recorder.chmod(0o755)
    recorded = tmp_path / "argv.txt"
    environment = {"PATH": f"{bin_dir}:/usr/bin:/bin", "RECORDED": str(recorded), **(env or {})}
    # The container starts through NGC's entrypoint, which keeps CUDA forward compatibility.
    # (Or, with triton.entrypoint empty, the start script or tritonserver itself.)
    assert argv[0] in (NGC_ENTRYPOINT, "/bin/sh", "tritonserver"), argv[:1]
    if argv[0] == NGC_ENTRYPOINT:
        entrypoint = bin_dir / "nvidia_entrypoint.sh"
        entrypoint.write_text(ENTRYPOINT_STAND_IN)
        entrypoint.chmod(0o755)
        argv = [str(entrypoint), *argv[1:]]
    result = subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert recorded.exists(), f"tritonserver was not started: {result.stdout}{result.stderr}"
    if argv[0].endswith("nvidia_entrypoint.sh"):
        assert Path(f"{recorded}.entrypoint").exists()
    return recorded.read_text().splitlines()


def loaded(args: list[str]) -> list[str]:
    return [a.split("=", 1)[1] for a in args if a.startswith("--load-model=")]


def helm_triton_argv(values: dict[str, Any]) -> list[str]:
    c = container(triton_spec(render(values)), "triton")
    argv: list[str] = c["command"] + c["args"]
    return argv


# --- Helm ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "present",
    [
        (spec.DETECTOR, spec.RECOGNIZER),
        (spec.DETECTOR, spec.RECOGNIZER, spec.GENDERAGE),
        (spec.DETECTOR, spec.RECOGNIZER, spec.SWAPPER, spec.GENDERAGE, spec.LIVENESS),
    ],
    ids=["neither", "genderage", "all"],
)
def test_chart_loads_the_optional_models_the_claim_holds(
    tmp_path: Path, present: tuple[str, ...]
) -> None:
    repo = repository(tmp_path / "models", present)
    args = start(helm_triton_argv({"models": {"mountPath": str(repo)}}), tmp_path)
    optional = [m for m in spec.OPTIONAL_STARTUP_MODELS if m in present]
    assert loaded(args) == [spec.DETECTOR, spec.RECOGNIZER, *optional]
    assert spec.SWAPPER not in loaded(args)
    # The same models as the embedded server loads from the same repository.
    embedded = server_command(TritonOptions(repository=repo), tmp_path, tmp_path)
    assert loaded(args) == loaded(embedded)
    # The chart's own arguments are all passed on, in order.
    assert args[: len(args) - len(optional)] == triton_args(
        render({"models": {"mountPath": str(repo)}})
    )


@pytest.mark.parametrize("off", [spec.GENDERAGE, spec.LIVENESS])
def test_chart_values_turn_an_optional_model_off(tmp_path: Path, off: str) -> None:
    repo = repository(tmp_path / "models", spec.ALL_MODELS)
    values = {"models": {"mountPath": str(repo), "optional": {off: False}}}
    args = start(helm_triton_argv(values), tmp_path)
    others = [m for m in spec.OPTIONAL_STARTUP_MODELS if m != off]
    assert loaded(args) == [spec.DETECTOR, spec.RECOGNIZER, *others]


def test_chart_with_all_off_runs_tritonserver_directly() -> None:
    values = {"models": {"optional": dict.fromkeys(spec.OPTIONAL_STARTUP_MODELS, False)}}
    c = container(triton_spec(render(values)), "triton")
    assert c["command"] == [NGC_ENTRYPOINT, "tritonserver"]
    assert loaded(c["args"]) == [spec.DETECTOR, spec.RECOGNIZER]


def test_chart_without_an_entrypoint_starts_the_same_server(tmp_path: Path) -> None:
    repo = repository(tmp_path / "models", spec.ALL_MODELS)
    values: dict[str, Any] = {"models": {"mountPath": str(repo)}}
    (tmp_path / "ngc").mkdir()
    (tmp_path / "plain").mkdir()
    with_ngc = start(helm_triton_argv(values), tmp_path / "ngc")
    argv = helm_triton_argv({**values, "triton": {"entrypoint": ""}})
    assert NGC_ENTRYPOINT not in argv and argv[0] == "/bin/sh"
    assert start(argv, tmp_path / "plain") == with_ngc
    custom = helm_triton_argv({**values, "triton": {"entrypoint": "/usr/local/bin/entry.sh"}})
    assert custom[0] == "/usr/local/bin/entry.sh" and custom[1:] == argv


def test_object_store_triton_starts_without_the_optional_models() -> None:
    """A --load-model the bucket lacks would stop Triton: only the startup pair is loaded at
    start, the optional ones by the postStart hook (test_helm_day2.py runs it)."""
    values = load_values(CHART_CI / "object-store-values.yaml")
    c = container(triton_spec(render(values)), "triton")
    assert c["command"] == [NGC_ENTRYPOINT, "tritonserver"]
    assert loaded(c["args"]) == [spec.DETECTOR, spec.RECOGNIZER]
    hook = c["lifecycle"]["postStart"]["exec"]["command"][2]
    assert f"for model in {' '.join(spec.OPTIONAL_STARTUP_MODELS)};" in hook
    values["models"]["optional"] = {"liveness": False}
    c = container(triton_spec(render(values)), "triton")
    others = " ".join(m for m in spec.OPTIONAL_STARTUP_MODELS if m != spec.LIVENESS)
    assert f"for model in {others};" in c["lifecycle"]["postStart"]["exec"]["command"][2]
    values["models"]["optional"] = dict.fromkeys(spec.OPTIONAL_STARTUP_MODELS, False)
    c = container(triton_spec(render(values)), "triton")
    assert "postStart" not in c["lifecycle"]


def test_chart_lists_the_optional_models_of_the_spec() -> None:
    values = yaml.safe_load((CHART_CI.parent / "values.yaml").read_text())
    assert tuple(values["models"]["optional"]) == (*spec.OPTIONAL_STARTUP_MODELS, spec.FACES)
    # The stock NGC image cannot load faces: it is off until triton.image is Dockerfile.triton's.
    assert values["models"]["optional"][spec.FACES] is False


def test_triton_waits_for_the_fetch_job_to_finish(tmp_path: Path) -> None:
    """With a Job filling the claim, Triton starts after the Job's marker, so it never looks for
    the optional models while the Job is still writing them."""
    repo = tmp_path / "models"
    repo.mkdir()
    values = {"models": {"mountPath": str(repo), "claim": {"accessModes": ["ReadWriteMany"]}}}
    objects = render(values)
    job = container(one(objects, "Job", "models")["spec"]["template"]["spec"], "fetch")
    (wait,) = triton_spec(objects)["initContainers"]
    wait_script = wait["command"][2]
    assert "exit 1" in wait_script, "the wait has a deadline"

    # The Job's script runs the facegate command it is given; a stand-in writes the models.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "facegate"
    fake.write_text(f'#!/bin/sh\ntest "$1 $2" = "models fetch" || exit 9\necho {repo}\n')
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}

    def waiting() -> bool:
        probe = wait_script.replace("sleep 10", "exit 1")
        return subprocess.run(["/bin/sh", "-c", probe], env=env, timeout=10).returncode != 0

    repository(repo, (spec.DETECTOR, spec.RECOGNIZER))
    assert waiting(), "Triton must not start before the Job has finished"
    done = subprocess.run(job["command"] + job["args"], env=env, timeout=30)
    assert done.returncode == 0
    assert not waiting()
    # A second run of the same Job finds its marker and does nothing.
    fake.write_text("#!/bin/sh\nexit 7\n")
    assert subprocess.run(job["command"] + job["args"], env=env, timeout=30).returncode == 0


# --- docker compose -------------------------------------------------------------


def compose_triton_argv(
    env: dict[str, str | None] | None = None, *overrides: Path
) -> tuple[list[str], dict[str, str]]:
    result = compose_config(COMPOSE_FILE, *overrides, env=env)
    assert result.returncode == 0, result.stderr
    triton = yaml.safe_load(result.stdout)["services"]["triton"]
    # `config` prints the file's $$ escapes back as they were written (Compose v1) or resolved.
    argv = [a.replace("$$", "$") for a in triton["entrypoint"] + triton["command"]]
    environment = {k: str(v) for k, v in (triton.get("environment") or {}).items()}
    return argv, environment


def _in_volume(argv: list[str], repo: Path) -> list[str]:
    """The compose command with the volume's /models at `repo` (the script names /models)."""
    return [a.replace("/models", str(repo)) for a in argv]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (None, list(spec.OPTIONAL_STARTUP_MODELS)),
        ("liveness", [spec.LIVENESS]),
        ("", []),
    ],
    ids=["default", "liveness-only", "none"],
)
def test_compose_loads_the_optional_models_the_volume_holds(
    tmp_path: Path, setting: str | None, expected: list[str]
) -> None:
    env = None if setting is None else {"FACEGATE_TRITON_OPTIONAL_MODELS": setting}
    argv, environment = compose_triton_argv(env)
    repo = repository(tmp_path / "models", spec.ALL_MODELS)
    args = start(_in_volume(argv, repo), tmp_path, environment)
    assert loaded(args) == [spec.DETECTOR, spec.RECOGNIZER, *expected]
    assert "--model-config-name=cpu" in args


def test_compose_skips_an_optional_model_the_volume_lacks(tmp_path: Path) -> None:
    argv, environment = compose_triton_argv()
    repo = repository(tmp_path / "models", (spec.DETECTOR, spec.RECOGNIZER, spec.LIVENESS))
    args = start(_in_volume(argv, repo), tmp_path, environment)
    assert loaded(args) == [spec.DETECTOR, spec.RECOGNIZER, spec.LIVENESS]


def test_compose_gpu_override_keeps_the_optional_models(tmp_path: Path) -> None:
    from test_container_files import gpu_override_from_docs

    override = tmp_path / "docker-compose.override.yml"
    override.write_text(gpu_override_from_docs())
    argv, environment = compose_triton_argv(None, override)
    repo = repository(tmp_path / "models", spec.ALL_MODELS)
    args = start(_in_volume(argv, repo), tmp_path, environment)
    assert loaded(args) == [spec.DETECTOR, spec.RECOGNIZER, *spec.OPTIONAL_STARTUP_MODELS]
    assert "--model-config-name=cpu" not in args


def test_recorder_sees_what_it_is_given(tmp_path: Path) -> None:
    # The stand-in itself: without the scripts, it records exactly its arguments.
    assert start(["tritonserver", "--a=1", "b c"], tmp_path) == ["--a=1", "b c"]
    assert os.access(tmp_path / "bin" / "tritonserver", os.X_OK)


# --- the in-server faces model ------------------------------------------------------


def with_faces(repo: Path) -> Path:
    """Add the faces model as the install writes it: model.py and config, no model.onnx."""
    (repo / spec.FACES / "1").mkdir(parents=True)
    (repo / spec.FACES / "1" / "model.py").write_text("from gateway.inserver.faces import *\n")
    (repo / spec.FACES / "config.pbtxt").write_text(f'name: "{spec.FACES}"\n')
    return repo


def test_compose_loads_the_faces_model_the_volume_holds(tmp_path: Path) -> None:
    argv, environment = compose_triton_argv()
    repo = with_faces(repository(tmp_path / "models", spec.ALL_MODELS))
    args = start(_in_volume(argv, repo), tmp_path, environment)
    assert loaded(args) == [
        spec.DETECTOR,
        spec.RECOGNIZER,
        *spec.OPTIONAL_STARTUP_MODELS,
        spec.FACES,
    ]
    # The embedded server loads the same models from the same repository.
    embedded = server_command(TritonOptions(repository=repo), tmp_path, tmp_path)
    assert sorted(loaded(args)) == sorted(loaded(embedded))


def test_chart_loads_faces_when_asked_and_readiness_waits_for_it(tmp_path: Path) -> None:
    repo = with_faces(repository(tmp_path / "models", spec.ALL_MODELS))
    off = {"models": {"mountPath": str(repo)}}
    on = {"models": {"mountPath": str(repo), "optional": {spec.FACES: True}}}

    assert spec.FACES not in loaded(start(helm_triton_argv(off), tmp_path))
    assert loaded(start(helm_triton_argv(on), tmp_path))[-1] == spec.FACES
    probes = [
        container(triton_spec(render(values)), "triton")["readinessProbe"]["exec"]["command"][2]
        for values in (off, on)
    ]
    assert "for model in detector recognizer;" in probes[0]
    assert "for model in detector recognizer faces;" in probes[1]
