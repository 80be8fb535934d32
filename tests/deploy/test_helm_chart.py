"""The Helm chart renders, lints strictly and validates for every ci values file, and keeps
the properties issue 6 asks for. Offline: helm-python-sdk embeds Helm's engine (no helm
binary, no cluster), kubernetes-validate ships the Kubernetes schemas."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path
from typing import Any

# Test dependencies (pyproject's [test] extra): a missing one is an error, never a skip.
import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from gateway import auth
from gateway.triton.spec import OPTIONAL_STARTUP_MODELS

CHART_DIR = Path(__file__).resolve().parents[2] / "helm" / "facegate"
CI_VALUES = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
# The oldest Kubernetes the chart is validated against; Chart.yaml's kubeVersion allows it.
KUBE_VERSION = "1.30.0"
RELEASE = "facegate"
NAMESPACE = "faces"
# CRDs kubernetes-validate has no schema for; checked by hand below.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
SEVERITY_WARNING = 2

Manifest = dict[str, Any]


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def render(values: dict[str, Any] | None = None, chart_dir: Path = CHART_DIR) -> list[Manifest]:
    """All objects the chart renders for `values` (tests hooks included, NOTES excluded)."""
    with helm.Chart.load(chart_dir) as chart:
        rendered = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[Manifest] = []
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def render_notes(values: dict[str, Any] | None = None) -> str:
    with helm.Chart.load(CHART_DIR) as chart:
        rendered = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))


def by_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[Manifest], kind: str, component: str) -> Manifest:
    found = [
        o
        for o in by_kind(objects, kind)
        if o["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"expected one {kind} for {component}, got {len(found)}"
    return found[0]


def maybe(objects: list[Manifest], kind: str, component: str) -> Manifest | None:
    found = [
        o
        for o in by_kind(objects, kind)
        if o["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    return found[0] if found else None


def container(pod_spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod_spec["containers"] if c["name"] == name)


def triton_spec(objects: list[Manifest]) -> dict[str, Any]:
    return one(objects, "Deployment", "triton")["spec"]["template"]["spec"]


def triton_args(objects: list[Manifest]) -> list[str]:
    return container(triton_spec(objects), "triton")["args"]


def gateway_spec(objects: list[Manifest]) -> dict[str, Any]:
    return one(objects, "Deployment", "gateway")["spec"]["template"]["spec"]


def gateway_env(objects: list[Manifest]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(gateway_spec(objects), "gateway")["env"]}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def pod_specs(objects: list[Manifest]) -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for o in objects:
        if o["kind"] in {"Deployment", "Job"}:
            specs.append((f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]))
        elif o["kind"] == "Pod":
            specs.append((f"Pod/{o['metadata']['name']}", o["spec"]))
    return specs


@pytest.fixture(scope="module")
def default() -> list[Manifest]:
    return render()


@pytest.fixture(scope="module", params=CI_VALUES, ids=lambda p: p.name)
def ci_case(request: pytest.FixtureRequest) -> tuple[Path, list[Manifest]]:
    return request.param, render(load_values(request.param))


# --- every ci values file ---------------------------------------------------


def test_ci_values_cover_the_main_variants() -> None:
    names = {p.name for p in CI_VALUES}
    assert {
        "default-values.yaml",
        "cpu-values.yaml",
        "object-store-values.yaml",
        "ingress-values.yaml",
        "replicas-values.yaml",
    } <= names


def test_replicas_variant_fetches_once_for_both_triton_pods() -> None:
    objects = render(load_values(CHART_DIR / "ci" / "replicas-values.yaml"))
    assert one(objects, "Deployment", "triton")["spec"]["replicas"] == 2
    kind, _, _ = fetcher(objects)
    assert kind == "job"
    assert [c["name"] for c in triton_spec(objects)["initContainers"]] == ["wait-for-models"]


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_chart_lints_strictly(values_file: Path) -> None:
    report = helm.lint(
        CHART_DIR, load_values(values_file), strict=True, kube_version=f"v{KUBE_VERSION}"
    )
    problems = [m for m in report["messages"] if m["severity"] >= SEVERITY_WARNING]
    assert not problems and not report["errors"], (problems, report["errors"])


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_values_file_matches_schema(values_file: Path) -> None:
    with helm.Chart.load(CHART_DIR) as chart:
        chart.validate_schema(chart.merge_values(load_values(values_file)))


def test_every_manifest_validates_against_kubernetes_schemas(
    ci_case: tuple[Path, list[Manifest]],
) -> None:
    _, objects = ci_case
    assert objects
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_service_monitors_point_at_named_service_ports(
    ci_case: tuple[Path, list[Manifest]],
) -> None:
    _, objects = ci_case
    services = by_kind(objects, "Service")
    for monitor in by_kind(objects, "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        matched = [s for s in services if selects(selector, s["metadata"]["labels"])]
        port_names = {p["name"] for s in matched for p in s["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in port_names
            assert endpoint["path"] == "/metrics"


def test_objects_have_unique_names(ci_case: tuple[Path, list[Manifest]]) -> None:
    _, objects = ci_case
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys))
    assert all(o["metadata"]["namespace"] == NAMESPACE for o in objects)


def test_services_select_exactly_their_component(ci_case: tuple[Path, list[Manifest]]) -> None:
    _, objects = ci_case
    workloads = [*by_kind(objects, "Deployment"), *by_kind(objects, "StatefulSet")]
    pods = {
        o["metadata"]["labels"]["app.kubernetes.io/component"]: o["spec"]["template"]["metadata"][
            "labels"
        ]
        for o in workloads
    }
    for service in by_kind(objects, "Service"):
        component = service["metadata"]["labels"]["app.kubernetes.io/component"]
        selected = {
            name for name, labels in pods.items() if selects(service["spec"]["selector"], labels)
        }
        assert selected == {component}, service["metadata"]["name"]
        container_ports = set()
        (deployment,) = [
            o
            for o in workloads
            if o["metadata"]["labels"]["app.kubernetes.io/component"] == component
        ]
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            container_ports |= {p["name"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports


def test_every_pod_runs_non_root_with_read_only_root(ci_case: tuple[Path, list[Manifest]]) -> None:
    _, objects = ci_case
    for name, spec in pod_specs(objects):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (name, c["name"])
            assert "resources" in c, (name, c["name"])


def test_repository_key_reaches_only_triton_and_the_gateway(
    ci_case: tuple[Path, list[Manifest]],
) -> None:
    _, objects = ci_case
    secret = one(objects, "Secret", "repository-key")
    secret_name = secret["metadata"]["name"]
    holders = set()
    for name, spec in pod_specs(objects):
        for c in spec.get("initContainers", []) + spec["containers"]:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef", {})
                if ref.get("name") == secret_name:
                    holders.add(name.split("/")[1])
            assert all(
                e.get("secretRef", {}).get("name") != secret_name for e in c.get("envFrom", [])
            )
    assert holders == {f"{RELEASE}-triton", f"{RELEASE}-gateway"}


def test_triton_never_loads_the_swapper_at_start(ci_case: tuple[Path, list[Manifest]]) -> None:
    _, objects = ci_case
    args = triton_args(objects)
    assert "--model-control-mode=explicit" in args
    loaded = sorted(a.split("=", 1)[1] for a in args if a.startswith("--load-model="))
    # An object store gets the optional models as arguments; a claim through the start script
    # (tests/deploy/test_optional_models.py).
    assert (
        {"detector", "recognizer"}
        <= set(loaded)
        <= {"detector", "recognizer", *OPTIONAL_STARTUP_MODELS}
    )
    assert not any("swapper" in a for a in args)


# --- the default (GPU) install -----------------------------------------------


def test_default_requests_a_gpu_on_gpu_nodes(default: list[Manifest]) -> None:
    spec = triton_spec(default)
    limits = container(spec, "triton")["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1
    # The GPU limit alone steers the pod to GPU nodes: no GPU feature discovery label needed.
    assert "nodeSelector" not in spec
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    # The GPU config is config.pbtxt: no custom config name.
    assert not any(a.startswith("--model-config-name") for a in triton_args(default))


def test_default_triton_image_is_the_pinned_ngc_image(default: list[Manifest]) -> None:
    assert (
        container(triton_spec(default), "triton")["image"]
        == "nvcr.io/nvidia/tritonserver:24.10-py3"
    )


def test_triton_probes_and_ports(default: list[Manifest]) -> None:
    c = container(triton_spec(default), "triton")
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    # Ready = detector and recognizer READY (tests/triton/test_readiness.py runs this command
    # against the real Triton core); the on-demand swapper never takes the pod out.
    command = c["readinessProbe"]["exec"]["command"]
    assert command[:2] == ["/bin/bash", "-c"] and len(command) == 3
    assert "for model in detector recognizer;" in command[2]
    assert "/dev/tcp/127.0.0.1/8000" in command[2] and "/v2/models/%s/ready" in command[2]
    assert "--strict-readiness=false" in triton_args(default)
    assert not any(a.startswith("--strict-readiness=true") for a in triton_args(default))
    startup = c["startupProbe"]
    # Triton answers no health call before its startup models (and TensorRT engines) are built.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30 * 60
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {
        "http": 8000,
        "grpc": 8001,
        "metrics": 8002,
    }
    for probe in ("livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] == "http"


def test_triton_restricts_the_repository_api_with_the_secret_key(default: list[Manifest]) -> None:
    args = triton_args(default)
    c = container(triton_spec(default), "triton")
    env = {e["name"]: e for e in c["env"]}
    key_ref = env["FACEGATE_TRITON_REPOSITORY_KEY"]["valueFrom"]["secretKeyRef"]
    assert key_ref["name"] == f"{RELEASE}-repository-key"
    expected = "model-repository:facegate-repository-key=$(FACEGATE_TRITON_REPOSITORY_KEY)"
    assert f"--grpc-restricted-protocol={expected}" in args
    assert f"--http-restricted-api={expected}" in args


def test_graceful_drain(default: list[Manifest]) -> None:
    for component, expect_exit_timeout in (("triton", True), ("gateway", False)):
        spec = one(default, "Deployment", component)["spec"]["template"]["spec"]
        c = container(spec, component)
        command = c["lifecycle"]["preStop"]["exec"]["command"]
        # One shell string, so the sleep really runs (a bare `sleep` may not be on PATH alone).
        assert command[:2] == ["/bin/sh", "-c"] and len(command) == 3
        match = re.fullmatch(r"sleep (\d+)", command[2])
        assert match, command
        budget = int(match.group(1))
        if expect_exit_timeout:
            exit_timeout = [a for a in c["args"] if a.startswith("--exit-timeout-secs=")]
            assert len(exit_timeout) == 1
            budget += int(exit_timeout[0].split("=")[1])
        else:
            # The gateway refuses new requests for FACEGATE_DRAIN_S; a request admitted just
            # before SIGTERM may run until FACEGATE_REQUEST_TIMEOUT_S.
            env = {e["name"]: e.get("value") for e in c["env"]}
            budget += int(env["FACEGATE_DRAIN_S"]) + int(env["FACEGATE_REQUEST_TIMEOUT_S"])
        assert spec["terminationGracePeriodSeconds"] > budget


def test_grace_period_shorter_than_the_drain_is_refused() -> None:
    with pytest.raises(helm.HelmError, match="terminationGracePeriodSeconds"):
        render({"triton": {"terminationGracePeriodSeconds": 20, "exitTimeoutSeconds": 30}})


@pytest.mark.parametrize(
    "gateway",
    [
        {"terminationGracePeriodSeconds": 30},
        {"terminationGracePeriodSeconds": 70},  # exactly 5 + 5 + 60: no room left
        {"drainSeconds": 20},
        {"requestTimeoutSeconds": 120},
    ],
)
def test_gateway_grace_period_must_cover_prestop_drain_and_request_timeout(
    gateway: dict[str, Any],
) -> None:
    with pytest.raises(helm.HelmError, match=r"gateway\.terminationGracePeriodSeconds"):
        render({"gateway": gateway})


def test_gateway_drain_and_request_timeout_come_from_values(default: list[Manifest]) -> None:
    env = gateway_env(default)
    assert env["FACEGATE_DRAIN_S"]["value"] == "5"
    assert env["FACEGATE_REQUEST_TIMEOUT_S"]["value"] == "60"
    objects = render(
        {
            "gateway": {
                "drainSeconds": 15,
                "requestTimeoutSeconds": 30,
                "terminationGracePeriodSeconds": 60,
            }
        }
    )
    env = gateway_env(objects)
    assert env["FACEGATE_DRAIN_S"]["value"] == "15"
    assert env["FACEGATE_REQUEST_TIMEOUT_S"]["value"] == "30"
    assert gateway_spec(objects)["terminationGracePeriodSeconds"] == 60


@pytest.mark.parametrize(
    "name", ["FACEGATE_DRAIN_S", "FACEGATE_REQUEST_TIMEOUT_S", "FACEGATE_AUTH_DISABLED"]
)
def test_extra_env_cannot_override_the_chart_managed_settings(name: str) -> None:
    with pytest.raises(helm.HelmError, match=name):
        render({"gateway": {"extraEnv": [{"name": name, "value": "1"}]}})


def test_dev_shm_is_memory_backed(default: list[Manifest]) -> None:
    spec = triton_spec(default)
    mounts = {m["mountPath"]: m["name"] for m in container(spec, "triton")["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    shm = volumes[mounts["/dev/shm"]]
    assert shm["emptyDir"]["medium"] == "Memory"
    assert shm["emptyDir"]["sizeLimit"]


def fetcher(objects: list[Manifest]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Where the models are fetched: ("init"|"job", pod spec, container)."""
    spec = triton_spec(objects)
    init = [c for c in spec.get("initContainers", []) if c["name"] == "fetch-models"]
    if init:
        return "init", spec, init[0]
    job_spec = one(objects, "Job", "models")["spec"]["template"]["spec"]
    return "job", job_spec, container(job_spec, "fetch")


def claim_mount(pod_spec: dict[str, Any], c: dict[str, Any], claim_name: str) -> dict[str, Any]:
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    return next(
        m
        for m in c["volumeMounts"]
        if volumes[m["name"]].get("persistentVolumeClaim", {}).get("claimName") == claim_name
    )


def fetch_argv(c: dict[str, Any]) -> list[str]:
    """The facegate command line of the fetch container (after the init container's wrapper)."""
    argv: list[str] = c["command"] + c.get("args", [])
    return argv[argv.index("facegate") :]


def test_claim_is_wired_to_the_model_repository(default: list[Manifest]) -> None:
    claim = one(default, "PersistentVolumeClaim", "models")
    claim_name = claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    spec = triton_spec(default)
    mount = claim_mount(spec, container(spec, "triton"), claim_name)
    assert mount["readOnly"] is True
    assert f"--model-repository={mount['mountPath']}" in triton_args(default)

    # ReadWriteOnce: the fetch runs in the Triton pod (same node, same zone), not in a Job.
    kind, fetch_spec, fetch = fetcher(default)
    assert kind == "init" and fetch_spec is spec
    assert maybe(default, "Job", "models") is None
    fetch_mount = claim_mount(spec, fetch, claim_name)
    assert fetch_mount.get("readOnly") is not True
    assert fetch_mount["mountPath"] == mount["mountPath"]
    gateway = container(
        one(default, "Deployment", "gateway")["spec"]["template"]["spec"], "gateway"
    )
    assert fetch["image"] == gateway["image"]
    # As Triton's user (the pod's), so Triton reads what it writes whatever the file modes.
    assert "runAsUser" not in fetch["securityContext"]
    assert spec["securityContext"]["runAsUser"] == 1000
    argv = fetch_argv(fetch)
    assert argv[:3] == ["facegate", "models", "fetch"]
    # NGC Triton reads model.onnx: the embedded runner's optimised copy would be dead weight.
    assert "--no-optimize" in argv
    argv.remove("--no-optimize")
    options = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert options == {
        "--pack": "buffalo_l",
        "--swapper": "inswapper_128",
        "--source": "hf",
        "--repository": mount["mountPath"],
    }
    # The script runs the command it is given ("$@") once per fetch settings.
    assert '"$@" && touch "$marker"' in fetch["command"][2]
    assert "/models/.facegate-fetched-" in fetch["command"][2]


def test_read_write_many_claim_is_filled_by_a_job_that_triton_waits_for() -> None:
    objects = render({"models": {"claim": {"accessModes": ["ReadWriteMany"]}}})
    claim_name = one(objects, "PersistentVolumeClaim", "models")["metadata"]["name"]
    kind, job_spec, fetch = fetcher(objects)
    assert kind == "job"
    assert claim_mount(job_spec, fetch, claim_name).get("readOnly") is not True
    assert (
        job_spec["securityContext"]["runAsUser"]
        == triton_spec(objects)["securityContext"]["runAsUser"]
    )
    spec = triton_spec(objects)
    (wait,) = spec["initContainers"]
    assert wait["name"] == "wait-for-models"
    claim_mount(spec, wait, claim_name)
    # Readable, not merely present: a file Triton cannot read would crash-loop it.
    assert "[ -r /models/detector/1/model.onnx ]" in wait["command"][-1]
    assert "[ -r /models/recognizer/config.pbtxt ]" in wait["command"][-1]
    assert fetch_argv(fetch)[:3] == ["facegate", "models", "fetch"]


def test_new_fetch_settings_run_a_new_job_or_a_new_fetch(default: list[Manifest]) -> None:
    rwx = {"models": {"claim": {"accessModes": ["ReadWriteMany"]}}}
    rwx_small = {
        "models": {"claim": {"accessModes": ["ReadWriteMany"]}, "fetch": {"pack": "buffalo_s"}}
    }
    assert (
        one(render(rwx_small), "Job", "models")["metadata"]["name"]
        != one(render(rwx), "Job", "models")["metadata"]["name"]
    )
    small = render({"models": {"fetch": {"pack": "buffalo_s"}}})
    assert fetcher(small)[2]["command"][2] != fetcher(default)[2]["command"][2]
    annotation = "checksum/models"
    old = one(default, "Deployment", "triton")["spec"]["template"]["metadata"]["annotations"]
    new = one(small, "Deployment", "triton")["spec"]["template"]["metadata"]["annotations"]
    assert old[annotation] != new[annotation]


def test_existing_claim_is_used_instead_of_a_new_one() -> None:
    for modes in (["ReadWriteOnce"], ["ReadWriteMany"]):
        objects = render(
            {"models": {"claim": {"existingClaim": "my-models", "accessModes": modes}}}
        )
        assert maybe(objects, "PersistentVolumeClaim", "models") is None
        _, fetch_spec, _ = fetcher(objects)
        for spec in (triton_spec(objects), fetch_spec):
            claims = {
                v["persistentVolumeClaim"]["claimName"]
                for v in spec["volumes"]
                if "persistentVolumeClaim" in v
            }
            assert claims == {"my-models"}


def test_gateway_reaches_triton_through_the_headless_service(default: list[Manifest]) -> None:
    headless = next(s for s in by_kind(default, "Service") if s["spec"].get("clusterIP") == "None")
    assert {p["port"] for p in headless["spec"]["ports"]} >= {8001}
    gateway = container(
        one(default, "Deployment", "gateway")["spec"]["template"]["spec"], "gateway"
    )
    env = {e["name"]: e for e in gateway["env"]}
    # dns:///: gRPC resolves every pod behind the name (round_robin over them).
    assert env["FACEGATE_TRITON_URL"]["value"] == (
        f"dns:///{headless['metadata']['name']}.{NAMESPACE}.svc:8001"
    )
    assert env["FACEGATE_TRITON_REPOSITORY_KEY"]["valueFrom"]["secretKeyRef"]["name"] == (
        f"{RELEASE}-repository-key"
    )
    assert gateway["args"] == ["gateway", "--host", "0.0.0.0", "--port", "8080"]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/health/live"


def test_triton_grpc_service_for_in_cluster_clients(default: list[Manifest]) -> None:
    services = [
        s
        for s in by_kind(default, "Service")
        if s["metadata"]["labels"]["app.kubernetes.io/component"] == "triton"
        and s["spec"].get("clusterIP") != "None"
    ]
    assert len(services) == 1
    ports = {p["name"]: p["port"] for p in services[0]["spec"]["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}


def test_gateway_autoscaling_and_disruption_budget(default: list[Manifest]) -> None:
    hpa = one(default, "HorizontalPodAutoscaler", "gateway")
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert (
        hpa["spec"]["scaleTargetRef"]["name"]
        == one(default, "Deployment", "gateway")["metadata"]["name"]
    )
    assert "replicas" not in one(default, "Deployment", "gateway")["spec"]
    pdb = one(default, "PodDisruptionBudget", "gateway")
    labels = one(default, "Deployment", "gateway")["spec"]["template"]["metadata"]["labels"]
    assert selects(pdb["spec"]["selector"]["matchLabels"], labels)


def test_triton_autoscaling_is_off_by_default(default: list[Manifest]) -> None:
    assert maybe(default, "HorizontalPodAutoscaler", "triton") is None
    assert maybe(default, "Ingress", "gateway") is None
    assert not by_kind(default, "ServiceMonitor")


def test_network_policies_let_the_gateway_reach_triton(default: list[Manifest]) -> None:
    policy = one(default, "NetworkPolicy", "triton")
    triton_labels = one(default, "Deployment", "triton")["spec"]["template"]["metadata"]["labels"]
    gateway_labels = one(default, "Deployment", "gateway")["spec"]["template"]["metadata"]["labels"]
    assert selects(policy["spec"]["podSelector"]["matchLabels"], triton_labels)
    grpc_rules = [
        r for r in policy["spec"]["ingress"] if any(p["port"] == "grpc" for p in r.get("ports", []))
    ]
    peers = [peer for r in grpc_rules for peer in r.get("from", [])]
    assert all("from" in r for r in grpc_rules), "gRPC must not be open to everyone by default"
    assert any(selects(p["podSelector"]["matchLabels"], gateway_labels) for p in peers)
    assert not any(selects(p["podSelector"]["matchLabels"], triton_labels) for p in peers)


def test_helm_test_pod_calls_gateway_readiness(default: list[Manifest]) -> None:
    pod = next(
        o for o in by_kind(default, "Pod") if o["metadata"]["annotations"]["helm.sh/hook"] == "test"
    )
    service = one(default, "Service", "gateway")
    script = pod["spec"]["containers"][0]["command"][-1]
    assert f"http://{service['metadata']['name']}.{NAMESPACE}.svc:8080/health/ready" in script
    # /health/ready needs no API key: the pod gets none.
    assert "volumes" not in pod["spec"] and "env" not in pod["spec"]["containers"][0]
    assert "api-key" not in script.lower()


def test_notes_print_rest_and_grpc_addresses() -> None:
    notes = render_notes()
    assert f"port-forward svc/{RELEASE}-gateway 8080:8080" in notes
    assert f"{RELEASE}-triton.{NAMESPACE}.svc:8001" in notes
    assert f"dns:///{RELEASE}-triton-headless.{NAMESPACE}.svc:8001" in notes
    assert "https://faces.example.com/" in render_notes(
        load_values(CHART_DIR / "ci" / "ingress-values.yaml")
    )
    # Where to watch the models arrive: the init container, or the Job on a shared claim.
    assert f"logs -f deployment/{RELEASE}-triton -c fetch-models" in notes
    rwx = render_notes({"models": {"claim": {"accessModes": ["ReadWriteMany"]}}})
    assert f"logs -f job/{RELEASE}-models-" in rwx


# --- API keys ----------------------------------------------------------------------


def api_keys_volume(objects: list[Manifest]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The gateway's API keys volume and its mount, or None."""
    spec = gateway_spec(objects)
    volumes = {v["name"]: v for v in spec["volumes"] if "secret" in v}
    mounts = [m for m in container(spec, "gateway")["volumeMounts"] if m["name"] in volumes]
    if not mounts:
        return None
    (mount,) = mounts
    return volumes[mount["name"]], mount


def test_api_keys_reach_only_the_gateway(ci_case: tuple[Path, list[Manifest]]) -> None:
    _, objects = ci_case
    env = gateway_env(objects)
    assert "FACEGATE_AUTH_DISABLED" not in env
    volume, mount = api_keys_volume(objects)
    assert mount["readOnly"] is True
    secret_name = volume["secret"]["secretName"]
    (item,) = volume["secret"]["items"]
    assert env["FACEGATE_API_KEYS_FILE"]["value"] == f"{mount['mountPath']}/{item['path']}"
    holders = {
        name.split("/")[1]
        for name, spec in pod_specs(objects)
        if any(
            v.get("secret", {}).get("secretName") == secret_name for v in spec.get("volumes", [])
        )
    }
    assert holders == {f"{RELEASE}-gateway"}


def test_default_install_creates_and_mounts_random_api_keys(
    default: list[Manifest], tmp_path: Path
) -> None:
    secret = one(default, "Secret", "api-keys")
    assert secret["metadata"]["name"] == f"{RELEASE}-api-keys"
    text = base64.b64decode(secret["data"]["api-keys"]).decode()
    keys = dict(
        line.split(":", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert set(keys) == {"user", "admin"}
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", key) for key in keys.values())
    assert keys["user"] != keys["admin"]
    # The gateway accepts the file as it is written.
    keys_file = tmp_path / "api-keys"
    keys_file.write_text(text)
    api_keys = auth.load_api_keys("", keys_file, disabled=False)
    assert api_keys.scope_of(keys["user"]) == "user"
    assert api_keys.scope_of(keys["admin"]) == "admin"

    volume, _ = api_keys_volume(default)
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert volume["secret"]["items"] == [{"key": "api-keys", "path": "api-keys"}]
    # A fresh install draws new keys; upgrades keep them (next test).
    assert one(render(), "Secret", "api-keys")["data"] != secret["data"]


def test_api_keys_are_kept_across_upgrades(tmp_path: Path) -> None:
    """`helm upgrade` reuses the live Secret's file; lookup returns nothing offline, so the
    live Secret is put in its place in a copy of the chart."""
    chart = tmp_path / "facegate"
    shutil.copytree(CHART_DIR, chart)
    template = chart / "templates" / "secret-api-keys.yaml"
    lookup = 'lookup "v1" "Secret" .Release.Namespace $name'
    assert lookup in template.read_text()
    live = base64.b64encode(b"user:live-user-key-0123456789\nadmin:live-admin-key-012345\n")
    template.write_text(
        template.read_text().replace(lookup, f'dict "data" (dict "api-keys" "{live.decode()}")')
    )
    secret = one(render(chart_dir=chart), "Secret", "api-keys")
    assert secret["data"]["api-keys"] == live.decode()


def test_existing_api_keys_secret_is_mounted_instead_of_a_chart_secret() -> None:
    objects = render({"gateway": {"apiKeys": {"existingSecret": "my-keys", "secretKey": "k.txt"}}})
    assert maybe(objects, "Secret", "api-keys") is None
    volume, mount = api_keys_volume(objects)
    assert volume["secret"] == {
        "secretName": "my-keys",
        "items": [{"key": "k.txt", "path": "k.txt"}],
    }
    assert gateway_env(objects)["FACEGATE_API_KEYS_FILE"]["value"] == f"{mount['mountPath']}/k.txt"
    notes = render_notes({"gateway": {"apiKeys": {"existingSecret": "my-keys"}}})
    assert "get secret my-keys -o jsonpath='{.data.api-keys}' | base64 -d" in notes


@pytest.mark.parametrize("existing_secret", ["", "my-keys"])
def test_auth_disabled_mounts_no_keys(existing_secret: str) -> None:
    values = {
        "gateway": {"auth": {"disabled": True}, "apiKeys": {"existingSecret": existing_secret}}
    }
    objects = render(values)
    env = gateway_env(objects)
    assert env["FACEGATE_AUTH_DISABLED"]["value"] == "true"
    assert "FACEGATE_API_KEYS_FILE" not in env
    assert maybe(objects, "Secret", "api-keys") is None
    assert api_keys_volume(objects) is None
    for obj in objects:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    notes = render_notes(values)
    assert "API keys: OFF" in notes and "trusted network" in notes
    assert "jsonpath" not in notes


def test_notes_tell_how_to_read_the_user_key_and_send_it() -> None:
    notes = render_notes()
    assert (
        f"kubectl -n {NAMESPACE} get secret {RELEASE}-api-keys "
        "-o jsonpath='{.data.api-keys}' | base64 -d | sed -n 's/^user://p'"
    ) in notes
    assert 'curl -H "X-API-Key: $FACEGATE_API_KEY" http://127.0.0.1:8080/v1/models' in notes
    ingress_notes = render_notes(load_values(CHART_DIR / "ci" / "ingress-values.yaml"))
    assert "https://faces.example.com/v1/models" in ingress_notes


# --- variants -------------------------------------------------------------------


def test_cpu_variant_has_no_gpu_and_uses_the_cpu_config() -> None:
    objects = render(load_values(CHART_DIR / "ci" / "cpu-values.yaml"))
    spec = triton_spec(objects)
    resources = container(spec, "triton")["resources"]
    assert "nvidia.com/gpu" not in resources.get("limits", {})
    assert "nvidia.com/gpu" not in resources.get("requests", {})
    assert "nvidia.com/gpu.present" not in spec.get("nodeSelector", {})
    assert "tolerations" not in spec
    assert "--model-config-name=cpu" in triton_args(objects)
    assert fetch_argv(fetcher(objects)[2])[:5] == [
        "facegate",
        "models",
        "synthetic",
        "--profile",
        "tiny",
    ]


def test_object_store_variant_reads_the_bucket_directly() -> None:
    objects = render(load_values(CHART_DIR / "ci" / "object-store-values.yaml"))
    assert "--model-repository=s3://facegate-models/repository" in triton_args(objects)
    assert maybe(objects, "PersistentVolumeClaim", "models") is None
    assert maybe(objects, "Job", "models") is None
    spec = triton_spec(objects)
    assert "initContainers" not in spec
    assert not any("persistentVolumeClaim" in v for v in spec.get("volumes", []))
    triton = container(spec, "triton")
    assert triton["envFrom"] == [{"secretRef": {"name": "facegate-s3-credentials"}}]


def test_object_store_gcs_key_file_is_mounted() -> None:
    objects = render(
        {
            "models": {
                "source": "objectStore",
                "objectStore": {
                    "url": "gs://bucket/repo",
                    "credentialsSecret": "gcs",
                    "gcsCredentialsKey": "key.json",
                },
            }
        }
    )
    triton = container(triton_spec(objects), "triton")
    env = {e["name"]: e.get("value") for e in triton["env"]}
    mount = next(m for m in triton["volumeMounts"] if m["name"] == "object-store-credentials")
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == f"{mount['mountPath']}/key.json"


def test_ingress_variant_routes_to_the_gateway_service() -> None:
    objects = render(load_values(CHART_DIR / "ci" / "ingress-values.yaml"))
    ingress = one(objects, "Ingress", "gateway")
    service = one(objects, "Service", "gateway")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert ingress["spec"]["tls"][0]["hosts"] == ["faces.example.com"]
    gateway = container(
        one(objects, "Deployment", "gateway")["spec"]["template"]["spec"], "gateway"
    )
    env = {e["name"]: e.get("value") for e in gateway["env"]}
    mount = next(m for m in gateway["volumeMounts"] if m["name"] == "api-keys")
    assert env["FACEGATE_API_KEYS_FILE"].startswith(mount["mountPath"] + "/")


def test_scale_variant_tensorrt_cache_and_queue_time_autoscaling() -> None:
    objects = render(load_values(CHART_DIR / "ci" / "scale-values.yaml"))
    args = triton_args(objects)
    assert "--model-config-name=tensorrt" in args
    spec = triton_spec(objects)
    cache = one(objects, "PersistentVolumeClaim", "tensorrt-cache")
    volume = next(
        v["name"]
        for v in spec["volumes"]
        if v.get("persistentVolumeClaim", {}).get("claimName") == cache["metadata"]["name"]
    )
    mount = next(m for m in container(spec, "triton")["volumeMounts"] if m["name"] == volume)
    assert mount["mountPath"] == "/cache/tensorrt" and not mount.get("readOnly")

    hpa = one(objects, "HorizontalPodAutoscaler", "triton")
    assert hpa["apiVersion"] == "autoscaling/v2"
    metric = hpa["spec"]["metrics"][0]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"].startswith("nv_inference_queue_duration_us")
    behavior = hpa["spec"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] > 0
    assert (
        behavior["scaleDown"]["stabilizationWindowSeconds"]
        > behavior["scaleUp"]["stabilizationWindowSeconds"]
    )
    assert "replicas" not in one(objects, "Deployment", "triton")["spec"]
    # A pre-filled claim: no fetch Job, no wait.
    assert maybe(objects, "Job", "models") is None
    assert "initContainers" not in spec

    monitors = {
        m["metadata"]["labels"]["app.kubernetes.io/component"]
        for m in by_kind(objects, "ServiceMonitor")
    }
    assert monitors == {"gateway", "triton"}
    policy = one(objects, "NetworkPolicy", "triton")
    peers = [p for r in policy["spec"]["ingress"] for p in r.get("from", [])]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "batch"}}} in peers


# --- values.yaml and schema -------------------------------------------------------


def test_values_yaml_has_schema_modeline_and_a_comment_on_every_key() -> None:
    """Every setting carries a `# --` comment, on itself or on the block it belongs to
    (resources, securityContext, ... are documented as a whole)."""
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    assert lines[0] == "# yaml-language-server: $schema=values.schema.json"
    key = re.compile(r"^( *)([A-Za-z][\w.]*):(.*)$")
    stack: list[tuple[int, bool]] = []
    undocumented = []
    for n, line in enumerate(lines):
        match = key.match(line)
        if not match:
            continue
        indent, name, rest = len(match.group(1)), match.group(2), match.group(3).strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        comments = []
        above = n - 1
        while above >= 0 and lines[above].strip().startswith("#"):
            comments.append(lines[above].strip())
            above -= 1
        documented = any(c.startswith("# --") for c in comments) or any(d for _, d in stack)
        following = next(
            (x for x in lines[n + 1 :] if x.strip() and not x.strip().startswith("#")), ""
        )
        following_indent = len(following) - len(following.lstrip())
        is_leaf = bool(rest) or following_indent <= indent or following.lstrip().startswith("- ")
        if is_leaf and not documented:
            undocumented.append(f"{n + 1}: {name}")
        stack.append((indent, documented))
    assert not undocumented, undocumented


@pytest.mark.parametrize(
    "bad",
    [
        {"tritonn": {}},
        {"triton": {"gpu": {"count": "one"}}},
        {"triton": {"image": {"tag": ""}}},
        {"models": {"source": "nfs"}},
        {"models": {"objectStore": {"url": "http://bucket/repo"}}},
        {"models": {"fetch": {"pack": "antelopev2"}}},
        {"gateway": {"ingress": {"hosts": [{"host": "x", "paths": [{"path": "api"}]}]}}},
        {"gateway": {"auth": {"disabled": "yes"}}},
        {"gateway": {"auth": {"enabled": False}}},
        {"gateway": {"apiKeys": {"secretKey": "a/b"}}},
        {"gateway": {"drainSeconds": -1}},
        {"gateway": {"requestTimeoutSeconds": 0}},
    ],
)
def test_schema_rejects_bad_values(bad: dict[str, Any]) -> None:
    with helm.Chart.load(CHART_DIR) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema(chart.merge_values(bad))


# --- a cluster install that serves on its first install (issue 16) -------------------


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into a copy of `base`, maps key by key, as Helm merges values."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def effective_values(values_file: Path) -> dict[str, Any]:
    """values.yaml with the ci file merged over it, as Helm merges them."""
    return merged(load_values(CHART_DIR / "values.yaml"), load_values(values_file))


def claim_access_modes(objects: list[Manifest], values: dict[str, Any]) -> dict[str, list[str]]:
    """Claim name -> access modes: the chart's claims, and existing ones as values declare them."""
    modes = {
        o["metadata"]["name"]: o["spec"]["accessModes"]
        for o in by_kind(objects, "PersistentVolumeClaim")
    }
    if values["models"]["claim"]["existingClaim"]:
        modes[values["models"]["claim"]["existingClaim"]] = values["models"]["claim"]["accessModes"]
    cache = values["triton"]["tensorrt"]["cache"]
    if cache["existingClaim"]:
        modes[cache["existingClaim"]] = cache["accessModes"]
    return modes


def may_run_several_pods(objects: list[Manifest], owner: str) -> bool:
    kind, name = owner.split("/", 1)
    if kind != "Deployment":
        return False
    deployment = next(o for o in by_kind(objects, "Deployment") if o["metadata"]["name"] == name)
    scaled = any(
        o["spec"]["scaleTargetRef"]["name"] == name
        for o in by_kind(objects, "HorizontalPodAutoscaler")
    )
    return scaled or deployment["spec"].get("replicas", 1) > 1


def test_no_read_write_once_claim_is_shared_by_pods_on_different_nodes(
    ci_case: tuple[Path, list[Manifest]],
) -> None:
    """A ReadWriteOnce volume attaches to one node: two pods that may be scheduled apart (a
    Job and Triton, or two Triton replicas) would wait on each other forever (Multi-Attach)."""
    path, objects = ci_case
    modes = claim_access_modes(objects, effective_values(path))
    users: dict[str, list[str]] = {}
    for owner, spec in pod_specs(objects):
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                users.setdefault(volume["persistentVolumeClaim"]["claimName"], []).append(owner)
    if effective_values(path)["models"]["source"] == "claim":
        assert users, "the model claim is mounted by no pod"
    for claim, owners in users.items():
        shared = {"ReadWriteMany", "ReadOnlyMany"} & set(modes[claim])
        if shared:
            continue
        assert len(owners) == 1, f"{claim} ({modes[claim]}) is mounted by {owners}"
        assert not may_run_several_pods(objects, owners[0]), f"{claim} by replicas of {owners[0]}"


@pytest.mark.parametrize(
    "values",
    [
        {"triton": {"replicaCount": 2}},
        {"triton": {"autoscaling": {"enabled": True}}},
        {"models": {"claim": {"existingClaim": "mine"}}, "triton": {"replicaCount": 3}},
        {
            "models": {"claim": {"accessModes": ["ReadWriteMany"]}},
            "triton": {"replicaCount": 2, "tensorrt": {"enabled": True}},
        },
    ],
)
def test_several_tritons_on_a_read_write_once_claim_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError, match="ReadWriteOnce"):
        render(values)


def test_fetch_into_a_read_only_many_claim_is_refused() -> None:
    with pytest.raises(helm.HelmError, match="ReadOnlyMany"):
        render({"models": {"claim": {"accessModes": ["ReadOnlyMany"]}}})


def test_every_path_triton_and_the_fetch_use_comes_from_values(
    ci_case: tuple[Path, list[Manifest]],
) -> None:
    path, objects = ci_case
    values = effective_values(path)
    spec = triton_spec(objects)
    triton = container(spec, "triton")
    mounts = {m["name"]: m["mountPath"] for m in triton["volumeMounts"]}
    args = triton_args(objects)
    if values["models"]["source"] == "claim":
        assert mounts["models"] == values["models"]["mountPath"]
        assert f"--model-repository={values['models']['mountPath']}" in args
        if values["models"]["fetch"]["enabled"]:
            _, _, fetch = fetcher(objects)
            argv = fetch_argv(fetch)
            assert argv[argv.index("--repository") + 1] == values["models"]["mountPath"]
    port = values["triton"]["service"]["httpPort"]
    assert f"/dev/tcp/127.0.0.1/{port}" in triton["readinessProbe"]["exec"]["command"][2]
    if values["triton"]["tensorrt"]["enabled"]:
        # configs/tensorrt.pbtxt names the caches relative to the working directory.
        assert triton["workingDir"] == mounts["tensorrt-cache"]
        assert mounts["tensorrt-cache"] == values["triton"]["tensorrt"]["cache"]["mountPath"]
    else:
        assert "workingDir" not in triton


def test_a_moved_tensorrt_cache_moves_the_working_directory() -> None:
    objects = render(
        {"triton": {"tensorrt": {"enabled": True, "cache": {"mountPath": "/var/trt"}}}}
    )
    triton = container(triton_spec(objects), "triton")
    assert triton["workingDir"] == "/var/trt"
    assert {"name": "tensorrt-cache", "mountPath": "/var/trt"} in triton["volumeMounts"]


def test_no_gpu_feature_discovery_label_is_required(ci_case: tuple[Path, list[Manifest]]) -> None:
    _, objects = ci_case
    for owner, spec in pod_specs(objects):
        selector = spec.get("nodeSelector", {})
        assert not any(key.startswith("nvidia.com/") for key in selector), (owner, selector)


def test_one_gpu_per_triton_pod_matches_the_swapper_arena(
    ci_case: tuple[Path, list[Manifest]],
) -> None:
    """The GPU configs name the swapper's arena gpu:0: valid only where the pod has one GPU."""
    _, objects = ci_case
    limits = container(triton_spec(objects), "triton")["resources"].get("limits", {})
    assert int(limits.get("nvidia.com/gpu", 0)) <= 1
    repository = CHART_DIR.parents[1] / "model_repository"
    for config in (repository / "swapper").rglob("*.pbtxt"):
        arenas = re.findall(r"\b(gpu):(\d+)", config.read_text())
        assert all(index == "0" for _, index in arenas), config


def test_more_than_one_gpu_per_triton_pod_is_refused() -> None:
    with helm.Chart.load(CHART_DIR) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema(chart.merge_values({"triton": {"gpu": {"count": 2}}}))


def test_tensorrt_warms_up_at_load_and_gives_the_swapper_time_to_build(
    ci_case: tuple[Path, list[Manifest]],
) -> None:
    path, objects = ci_case
    if not effective_values(path)["triton"]["tensorrt"]["enabled"]:
        assert "FACEGATE_SWAPPER_LOAD_TIMEOUT_S" not in gateway_env(objects)
        return
    assert "--model-config-name=tensorrt" in triton_args(objects)
    repository = CHART_DIR.parents[1] / "model_repository"
    for model in ("detector", "recognizer", "swapper"):
        text = (repository / model / "configs" / "tensorrt.pbtxt").read_text()
        max_batch = int(re.search(r"max_batch_size: (\d+)", text).group(1))  # type: ignore[union-attr]
        sizes = {int(b) for b in re.findall(r"batch_size: (\d+)", text.split("model_warmup")[1])}
        assert sizes == {1, max(max_batch, 1)}, model
    # With an empty cache the swapper's load builds its engine; 120 s is not enough.
    timeout = gateway_env(objects)["FACEGATE_SWAPPER_LOAD_TIMEOUT_S"]["value"]
    assert int(timeout) >= 600


def test_gateway_dials_every_triton_pod_round_robin(ci_case: tuple[Path, list[Manifest]]) -> None:
    from gateway.triton.client import channel_args
    from gateway.triton.replicas import split_target

    _, objects = ci_case
    url = gateway_env(objects)["FACEGATE_TRITON_URL"]["value"]
    headless = next(s for s in by_kind(objects, "Service") if s["spec"].get("clusterIP") == "None")
    assert url == f"dns:///{headless['metadata']['name']}.{NAMESPACE}.svc:8001"
    assert ("grpc.lb_policy_name", "round_robin") in channel_args(url)
    # ... and the swapper is loaded and unloaded on every pod the name resolves to.
    assert split_target(url) == ("dns", url.removeprefix("dns:///"))
