"""Day 2 of a cluster install (issue 23): upgrades, reinstalls, scale-out and drains.

Rendered with Helm's engine (helm-python-sdk) for the default values and every ci values file;
no cluster. What a render cannot show (a real upgrade, a drain, NFS ownership, NGC's
entrypoint on an old driver) is listed in docs/DEPLOY.md, "What is verified where".
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import helm_python as helm
import kubernetes_validate
import pytest
import test_helm_chart
import yaml
from test_helm_chart import (
    CHART_DIR,
    CI_VALUES,
    KUBE_VERSION,
    Manifest,
    by_kind,
    container,
    gateway_env,
    load_values,
    maybe,
    merged,
    one,
    render,
    triton_spec,
)

from gateway.config import Settings
from gateway.ops.servers.ports import free_port

DATA = Path(__file__).parent / "data"
VALUES_010 = DATA / "values-0.1.0.yaml"
DEPLOY_MD = CHART_DIR.parents[1] / "docs" / "DEPLOY.md"
CASES = [None, *CI_VALUES]
CASE_IDS = ["values.yaml", *(p.name for p in CI_VALUES)]
NGC_ENTRYPOINT = "/opt/nvidia/nvidia_entrypoint.sh"
MiB = 1024 * 1024
# The shared fixture: every ci values file, rendered once per module.
ci_case = test_helm_chart.ci_case


def case_values(case: Path | None) -> dict[str, Any]:
    return {} if case is None else load_values(case)


def chart_copy(
    tmp_path: Path, *, version: str | None = None, values_yaml: Path | None = None
) -> Path:
    """The chart in tmp_path, its version bumped and/or its values.yaml replaced."""
    copy = tmp_path / "facegate"
    shutil.copytree(CHART_DIR, copy)
    if version is not None:
        chart_yaml = copy / "Chart.yaml"
        text = chart_yaml.read_text()
        chart_yaml.write_text(re.sub(r"(?m)^version: .*$", f"version: {version}", text))
    if values_yaml is not None:
        shutil.copy(values_yaml, copy / "values.yaml")
    return copy


# --- upgrades keep every immutable field ---------------------------------------------------


def _pvc_spec(spec: dict[str, Any]) -> dict[str, Any]:
    # Only a claim's requested size may change (grow) after creation.
    return {k: v for k, v in spec.items() if k != "resources"}


IMMUTABLE: dict[str, Any] = {
    "Job": lambda s: {"template": s["template"], "completions": s.get("completions")},
    "StatefulSet": lambda s: {
        "selector": s["selector"],
        "volumeClaimTemplates": s.get("volumeClaimTemplates"),
        "serviceName": s.get("serviceName"),
        "podManagementPolicy": s.get("podManagementPolicy"),
    },
    "Deployment": lambda s: {"selector": s["selector"]},
    "PersistentVolumeClaim": _pvc_spec,
}

# What day 2 changes besides the chart version (issue 23's list).
DAY2_CHANGES: dict[str, Any] = {
    "commonLabels": {"team": "vision", "cost-centre": "faces"},
    "imagePullSecrets": [{"name": "registry-pull"}],
    "models": {"mountPath": "/srv/models"},
    "gateway": {
        "nodeSelector": {"pool": "cpu"},
        "tolerations": [{"key": "cpu-only", "operator": "Exists", "effect": "NoSchedule"}],
    },
    "triton": {
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "a100", "operator": "Exists", "effect": "NoSchedule"}],
    },
}


def recreated(obj: Manifest) -> bool:
    """A Helm hook deleted before it is created again: it keeps no field across upgrades."""
    annotations = obj["metadata"].get("annotations") or {}
    return "before-hook-creation" in annotations.get("helm.sh/hook-delete-policy", "")


def immutable_fields(objects: list[Manifest]) -> dict[tuple[str, str], Any]:
    return {
        (o["kind"], o["metadata"]["name"]): IMMUTABLE[o["kind"]](o["spec"])
        for o in objects
        if o["kind"] in IMMUTABLE and not recreated(o)
    }


def assert_upgradable(before: list[Manifest], after: list[Manifest]) -> None:
    old, new = immutable_fields(before), immutable_fields(after)
    for key in old.keys() & new.keys():
        assert old[key] == new[key], f"{key[0]}/{key[1]} keeps its name but changes {old[key]}"


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_a_version_bump_keeps_every_immutable_field(tmp_path: Path, case: Path | None) -> None:
    values = case_values(case)
    before = render(values)
    after = render(values, chart_copy(tmp_path, version="9.9.9"))
    assert_upgradable(before, after)
    # A bare version bump re-runs nothing: the Jobs keep their names.
    jobs = {o["metadata"]["name"] for o in by_kind(before, "Job")}
    assert jobs == {o["metadata"]["name"] for o in by_kind(after, "Job")}
    # ... and restarts nothing: a new Triton pod template is an outage with Recreate.
    for name in ("triton", "gateway"):
        assert (
            one(after, "Deployment", name)["spec"]["template"]
            == (one(before, "Deployment", name)["spec"]["template"])
        ), name


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_day2_changes_keep_every_immutable_field(tmp_path: Path, case: Path | None) -> None:
    values = case_values(case)
    before = render(values)
    after = render(merged(values, DAY2_CHANGES), chart_copy(tmp_path, version="9.9.9"))
    assert_upgradable(before, after)


def test_the_upgrade_diff_sees_the_fetch_job() -> None:
    """The diff above would pass vacuously without a Job: the ReadWriteMany variant has one,
    and changing any of its template's inputs gives it a new name."""
    values = load_values(CHART_DIR / "ci" / "replicas-values.yaml")
    name = one(render(values), "Job", "models")["metadata"]["name"]
    for key, change in DAY2_CHANGES.items():
        if key == "triton":
            continue
        changed = one(render(merged(values, {key: change})), "Job", "models")
        assert changed["metadata"]["name"] != name, key


def test_fixed_pod_templates_carry_no_version(ci_case: tuple[Path, list[Manifest]]) -> None:
    _, objects = ci_case
    for obj in [*by_kind(objects, "Job"), *by_kind(objects, "StatefulSet")]:
        labels = obj["spec"]["template"]["metadata"]["labels"]
        assert "helm.sh/chart" not in labels and "app.kubernetes.io/version" not in labels


# --- an old release's values (helm upgrade --reuse-values) ---------------------------------


@pytest.fixture(scope="module")
def chart_010(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart as `helm upgrade --reuse-values` renders it for a 0.1.0 release: the new
    templates with the old chart's values.yaml as its defaults."""
    return chart_copy(tmp_path_factory.mktemp("chart010"), values_yaml=VALUES_010)


# Two 0.1.0 defaults the chart now refuses, each with a message naming the key: the gateway's
# grace period (30 s) predates the request deadline it must cover, its memory limit (1Gi) the
# check against its body limits. `--reset-then-reuse-values` takes the new defaults instead.
GRACE_010 = {
    "gateway": {"terminationGracePeriodSeconds": 75, "resources": {"limits": {"memory": "8Gi"}}}
}


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_reused_0_1_0_values_still_render(chart_010: Path, case: Path | None) -> None:
    objects = render(merged(GRACE_010, case_values(case)), chart_010)
    for obj in objects:
        if obj["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    assert one(objects, "Deployment", "triton")


def test_reused_0_1_0_values_fail_only_with_a_clear_message(chart_010: Path) -> None:
    with pytest.raises(helm.HelmError, match=r"gateway\.terminationGracePeriodSeconds must exceed"):
        render({}, chart_010)
    grace_only = {"gateway": {"terminationGracePeriodSeconds": 75}}
    with pytest.raises(helm.HelmError, match=r"gateway\.resources\.limits\.memory \(1Gi\)"):
        render(grace_only, chart_010)


def _key_paths(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in tree.items():
        yield (*prefix, key)
        if isinstance(value, dict) and value:
            yield from _key_paths(value, (*prefix, key))


def _lookup(tree: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


@pytest.fixture(scope="module")
def later_defaults() -> dict[str, Any]:
    text = (CHART_DIR / "templates" / "_defaults.tpl").read_text()
    block = text.split('{{- define "facegate.defaultsSince010" -}}\n', 1)[1].split("{{- end }}", 1)
    later: dict[str, Any] = yaml.safe_load(block[0])
    return later


def test_every_key_added_after_0_1_0_has_its_default_in_the_templates(
    later_defaults: dict[str, Any],
) -> None:
    """A key in values.yaml is either in 0.1.0's values or in _defaults.tpl with the same
    default (add a new key to both), so `--reuse-values` from 0.1.0 never meets a nil map."""
    now = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    old = set(_key_paths(load_values(VALUES_010)))
    guarded = set(_key_paths(later_defaults))
    missing = [".".join(p) for p in _key_paths(now) if p not in old and p not in guarded]
    assert not missing, f"add these to templates/_defaults.tpl: {missing}"
    for path in guarded - old:
        assert _lookup(later_defaults, path) == _lookup(now, path), ".".join(path)


def test_every_template_fills_the_later_defaults_first() -> None:
    templates = CHART_DIR / "templates"
    for path in [
        *templates.glob("*.yaml"),
        *templates.glob("tests/*.yaml"),
        templates / "NOTES.txt",
    ]:
        first = path.read_text().splitlines()[0]
        assert first.startswith('{{- include "facegate.defaults" . '), path.name


def test_filled_defaults_never_replace_a_value_that_is_there(chart_010: Path) -> None:
    off = {"models": {"optional": {"genderage": False, "liveness": False}}, **GRACE_010}
    c = container(triton_spec(render(off, chart_010)), "triton")
    assert not any("genderage" in a or "liveness" in a for a in c["command"] + c["args"])


def test_docs_upgrade_with_reset_then_reuse_values() -> None:
    """Every `helm upgrade` command in the docs keeps the new chart's defaults."""
    commands = [
        line
        for doc in (
            DEPLOY_MD,
            DEPLOY_MD.parents[1] / "README.md",
            DEPLOY_MD.parent / "OPERATIONS.md",
        )
        if doc.exists()
        for line in doc.read_text().splitlines()
        if "helm upgrade " in line and line.lstrip().startswith("helm upgrade")
    ]
    assert commands
    for line in commands:
        assert "--reset-then-reuse-values" in line and " --reuse-values" not in line, line


# --- reinstalls: generated secrets that unlock lasting data are kept -------------------------


def test_generated_secrets_outliving_the_release_are_kept() -> None:
    objects = render({"gallery": {"enabled": True, "postgres": {"enabled": True}}})
    for component in ("gallery", "api-keys"):
        secret = one(objects, "Secret", component)
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", component


def test_gitops_brings_its_own_gallery_secret() -> None:
    """Tools that render without lookup (Argo CD) would generate a new password every sync:
    with gallery.existingSecret the chart generates none and PostgreSQL reads that Secret."""
    values = {
        "gallery": {"enabled": True, "existingSecret": "gallery-db", "postgres": {"enabled": True}}
    }
    objects = render(values)
    assert maybe(objects, "Secret", "gallery") is None
    pod = one(objects, "StatefulSet", "gallery-postgres")["spec"]["template"]["spec"]
    env = {e["name"]: e for e in container(pod, "postgres")["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "gallery-db"
    url = gateway_env(objects)["FACEGATE_GALLERY_URL"]["valueFrom"]["secretKeyRef"]
    assert url["name"] == "gallery-db"


# --- optional models, NGC entrypoint, waits --------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_triton_starts_through_ngc_entrypoint(case: Path | None) -> None:
    c = container(triton_spec(render(case_values(case))), "triton")
    assert c["command"][0] == NGC_ENTRYPOINT


class _FakeTriton(http.server.BaseHTTPRequestHandler):
    """Triton's HTTP health and repository-load endpoints; genderage is in the bucket."""

    seen: ClassVar[list[tuple[str, str, str | None]]] = []

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path, None))
        self.send_response(200 if self.path == "/v2/health/live" else 404)
        self.end_headers()

    def do_POST(self) -> None:
        self.seen.append(("POST", self.path, self.headers.get("facegate-repository-key")))
        self.send_response(200 if "/genderage/" in self.path else 400)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_object_store_hook_loads_the_optional_models_the_bucket_has() -> None:
    port = free_port()
    values = load_values(CHART_DIR / "ci" / "object-store-values.yaml")
    values["triton"] = {"service": {"httpPort": port}}
    c = container(triton_spec(render(values)), "triton")
    hook = c["lifecycle"]["postStart"]["exec"]["command"]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _FakeTriton)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {"PATH": "/usr/bin:/bin", "FACEGATE_TRITON_REPOSITORY_KEY": "k" * 48}
        result = subprocess.run(hook, env=env, capture_output=True, text=True, timeout=30)
    finally:
        server.shutdown()
    # A model the bucket lacks fails its load, never the hook (that would kill Triton).
    assert result.returncode == 0, result.stderr
    posts = [s for s in _FakeTriton.seen if s[0] == "POST"]
    assert posts == [
        ("POST", f"/v2/repository/models/{name}/load", "k" * 48)
        for name in ("genderage", "liveness", "landmark_2d_106", "landmark_3d_68")
    ]
    assert "load liveness: HTTP/1.0 400" in result.stdout


class _SilentLoads(_FakeTriton):
    """Live, but a model load that never answers (a hung load, a wedged process)."""

    def do_POST(self) -> None:
        time.sleep(60)


class _Silent(_FakeTriton):
    """Accepts and never answers."""

    def do_GET(self) -> None:
        time.sleep(60)


@pytest.mark.parametrize(
    ("handler", "said"),
    [
        (_SilentLoads, "load genderage: no answer in 2s: gave up"),
        (_Silent, "Triton not live after 2s: optional models not loaded"),
    ],
    ids=["load", "live"],
)
def test_object_store_hook_gives_up_on_a_triton_that_never_answers(
    handler: type[_FakeTriton], said: str
) -> None:
    port = free_port()
    values = load_values(CHART_DIR / "ci" / "object-store-values.yaml")
    values["triton"] = {
        "service": {"httpPort": port},
        "startupProbe": {"periodSeconds": 1, "failureThreshold": 2},
    }
    values["models"]["optional"] = {"liveness": False, "landmark_2d_106": False}
    values["models"]["optional"]["landmark_3d_68"] = False
    hook = container(triton_spec(render(values)), "triton")["lifecycle"]["postStart"]["exec"]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {"PATH": "/usr/bin:/bin", "FACEGATE_TRITON_REPOSITORY_KEY": "k" * 48}
        result = subprocess.run(
            hook["command"], env=env, capture_output=True, text=True, timeout=30
        )
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    assert said in result.stdout


def test_waiting_for_the_fetch_job_has_a_deadline(tmp_path: Path) -> None:
    values = {
        "models": {
            "mountPath": str(tmp_path),
            "claim": {"accessModes": ["ReadWriteMany"]},
            "fetch": {"activeDeadlineSeconds": 60},
        }
    }
    (wait,) = triton_spec(render(values))["initContainers"]
    script = wait["command"][2].replace("sleep 10", "true")
    result = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "after 660s" in result.stderr and "kubectl logs" in result.stderr


def fetch_job(values: dict[str, Any]) -> dict[str, Any]:
    return one(render(values), "Job", "models")["spec"]["template"]["spec"]


def test_fetch_refuses_a_share_it_cannot_write_and_says_what_to_do(tmp_path: Path) -> None:
    # A folder that is not there is not writable, whoever runs the test (root writes any).
    share = tmp_path / "not-writable"
    values = {"models": {"mountPath": str(share), "claim": {"accessModes": ["ReadWriteMany"]}}}
    fetch = container(fetch_job(values), "fetch")
    result = subprocess.run(
        fetch["command"] + fetch["args"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "models.fetch.fixOwnership=true" in result.stderr and "fsGroupPolicy" in result.stderr


def test_fix_ownership_hands_the_share_to_triton_with_chown_only() -> None:
    spec = fetch_job(
        {"models": {"claim": {"accessModes": ["ReadWriteMany"]}, "fetch": {"fixOwnership": True}}}
    )
    (init,) = spec["initContainers"]
    assert init["command"] == ["chown", "1000:1000", "/models"]
    assert init["securityContext"]["runAsUser"] == 0
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert init["securityContext"]["allowPrivilegeEscalation"] is False
    assert "initContainers" not in fetch_job(
        {"models": {"claim": {"accessModes": ["ReadWriteMany"]}}}
    )


def marker_010(values: dict[str, Any]) -> str:
    """The marker name chart 0.1.0 wrote: its formula (sha256 of Helm's toJson of every
    models.fetch key, the gateway image and layout 2), checked against that chart's render."""
    fetch = values["models"]["fetch"]
    image = f"{values['gateway']['image']['repository']}:{values['gateway']['image']['tag']}"
    text = json.dumps(
        {"fetch": fetch, "image": image, "layout": 2}, sort_keys=True, separators=(",", ":")
    )
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f".facegate-fetched-{digest[:8]}"


def fetch_marker(objects: list[Manifest]) -> str:
    (wait,) = triton_spec(objects)["initContainers"]
    return re.search(r"\.facegate-fetched-[0-9a-f]{8}", wait["command"][2]).group()  # type: ignore[union-attr]


def test_an_upgrade_from_0_1_0_keeps_the_models_it_fetched(chart_010: Path, tmp_path: Path) -> None:
    old = yaml.safe_load(VALUES_010.read_text())
    old["gateway"]["image"]["tag"] = old["gateway"]["image"]["tag"] or "0.1.0"
    shared = {"models": {"mountPath": str(tmp_path), "claim": {"accessModes": ["ReadWriteMany"]}}}
    objects = render(merged(GRACE_010, shared), chart_010)
    (tmp_path / marker_010(old)).touch()
    fetch = container(one(objects, "Job", "models")["spec"]["template"]["spec"], "fetch")
    # No facegate on this PATH: a download attempt would fail.
    result = subprocess.run(
        fetch["command"] + fetch["args"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "fetched by an earlier chart" in result.stdout
    # The marker Triton waits for is there.
    assert (tmp_path / fetch_marker(objects)).is_file()


def test_only_what_decides_the_files_renames_the_marker() -> None:
    shared = {"models": {"claim": {"accessModes": ["ReadWriteMany"]}}}
    marker = fetch_marker(render(shared))
    how = {
        "fixOwnership": True,
        "resources": {"limits": {"memory": "8Gi"}},
        "backoffLimit": 9,
        "activeDeadlineSeconds": 99,
        "envFromSecret": "hf-token",
    }
    for key, change in how.items():
        assert fetch_marker(render(merged(shared, {"models": {"fetch": {key: change}}}))) == marker
    assert fetch_marker(render(merged(shared, {"models": {"fetch": {"pack": "buffalo_s"}}}))) != (
        marker
    )


# --- gateway memory against its body limits ---------------------------------------------------


def _quantity_bytes(text: str) -> float:
    factors = {"Ki": 1024, "Mi": MiB, "Gi": 1024 * MiB, "k": 1e3, "M": 1e6, "G": 1e9, "": 1}
    number, suffix = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", text).groups()  # type: ignore[union-attr]
    return float(number) * factors[suffix]


# Peak memory of one /v1/detect/batch of 2, then 6 PNG images (the format whose decoder copies
# most) of 12 MP (36 MB as BGR: above glibc's largest mmap threshold, as the largest images
# are), in a fresh process: the fake backend, the real decoding and request handling.
_MEASURE_BATCH = """
import resource, sys
import cv2, numpy as np
from fastapi.testclient import TestClient
from gateway.app import create_app
from gateway.config import Settings
from tests.fakes import FakeBackend
height, width = 3000, 4000
png = cv2.imencode(".png", np.full((height, width, 3), (240, 128, 64), np.uint8))[1].tobytes()
app = create_app(Settings(auth_disabled=True, json_logs=False), models=FakeBackend())
n = int(sys.argv[1])
with TestClient(app) as http:
    files = [("images", (f"{i}.png", png, "image/png")) for i in range(n)]
    assert http.post("/v1/detect/batch", files=files).status_code == 200
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


# The highest of three runs of _MEASURE_BATCH (6.3, 6.6, 7.2 bytes a pixel; load average 17);
# the slow test below measures it again.
MEASURED_BYTES_PER_PIXEL = 7.2


def bytes_per_decoded_pixel() -> float:
    """What one more decoded pixel in a batch costs the gateway, measured (bytes).

    Each batch size runs in a fresh process (CI at b24dcc6 saw a second, larger batch in the
    same process reuse the first one's freed memory and measure 0 bytes a pixel).
    """
    peaks = []
    for images in (2, 6):
        result = subprocess.run(
            [sys.executable, "-c", _MEASURE_BATCH, str(images)],
            cwd=CHART_DIR.parents[1],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        peaks.append(int(result.stdout.strip()))
    return (peaks[1] - peaks[0]) / (4 * 3000 * 4000)


def memory_needed(values: dict[str, Any], per_pixel: float) -> float:
    """What one request at the effective gateway limits (Settings' defaults where the values
    leave them null) holds: the process, the body twice (parsed, then as image bytes), a full
    batch of the largest images decoded at the measured cost per pixel."""
    fields = Settings.model_fields
    gw = merged(
        yaml.safe_load((CHART_DIR / "values.yaml").read_text())["gateway"],
        values.get("gateway", {}),
    )
    image = gw["limits"]["maxImageBytes"] or fields["max_image_bytes"].default
    batch = gw["limits"]["maxBatchImages"] or fields["max_batch_images"].default
    pixels = gw["limits"]["maxImagePixels"] or fields["max_image_pixels"].default
    largest = image * batch * 4 / 3
    if "ifr" in gw["compat"]["protocols"]:
        largest = max(
            largest, gw["compat"]["maxRequestBytes"] or fields["compat_max_request_bytes"].default
        )
    return 384 * MiB + 2 * largest + batch * pixels * per_pixel


def chart_memory_refusal(values: dict[str, Any]) -> str:
    tiny = {"gateway": {"resources": {"limits": {"memory": "1Mi"}}}}
    with pytest.raises(helm.HelmError, match=r"gateway\.resources\.limits\.memory") as refused:
        render(merged(values, tiny))
    return str(refused.value)


@pytest.mark.slow
def test_a_decoded_pixel_costs_no_more_than_the_chart_counts() -> None:
    counted = re.search(r"at (\d+) bytes a pixel", chart_memory_refusal({}))
    measured = bytes_per_decoded_pixel()
    # The chart's floor counts at least what was measured. No lower bound: how many decoded
    # images overlap depends on scheduling, and on a loaded machine (CI at b24dcc6 and fe9ec8d,
    # other sessions running) the larger batch's peak can equal the smaller one's.
    assert measured <= int(counted.group(1))  # type: ignore[union-attr]
    assert measured <= MEASURED_BYTES_PER_PIXEL * 1.25


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gateway_memory_limit_holds_a_request_at_its_limits(case: Path | None) -> None:
    values = case_values(case)
    needed = memory_needed(values, MEASURED_BYTES_PER_PIXEL)
    limit = container(
        one(render(values), "Deployment", "gateway")["spec"]["template"]["spec"], "gateway"
    )
    assert _quantity_bytes(limit["resources"]["limits"]["memory"]) >= needed
    # The chart refuses less than what one request holds, and names its floor.
    floor = int(re.search(r"hold, (\d+) MiB", chart_memory_refusal(values)).group(1))  # type: ignore[union-attr]
    below = f"{floor - 1}Mi"
    with pytest.raises(helm.HelmError, match=r"gateway\.resources\.limits\.memory"):
        render(merged(values, {"gateway": {"resources": {"limits": {"memory": below}}}}))
    assert needed <= floor * MiB <= 2 * needed
    render(merged(values, {"gateway": {"resources": {"limits": {"memory": f"{floor}Mi"}}}}))


# --- drains, scale-out, the bundled database ------------------------------------------------


def test_every_disruption_budget_lets_unready_pods_go(ci_case: tuple[Path, list[Manifest]]) -> None:
    _, objects = ci_case
    for pdb in by_kind(objects, "PodDisruptionBudget"):
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def assert_budget_leaves_one(objects: list[Manifest]) -> None:
    pdb = maybe(objects, "PodDisruptionBudget", "gateway")
    if pdb is not None:
        hpa = maybe(objects, "HorizontalPodAutoscaler", "gateway")
        deployment = one(objects, "Deployment", "gateway")
        fewest = hpa["spec"]["minReplicas"] if hpa else deployment["spec"]["replicas"]
        assert fewest > pdb["spec"]["minAvailable"]


def test_the_gateway_budget_always_leaves_a_pod_to_evict(
    ci_case: tuple[Path, list[Manifest]],
) -> None:
    assert_budget_leaves_one(ci_case[1])


def test_a_single_gateway_has_no_budget_that_would_keep_it_for_ever() -> None:
    single = {"gateway": {"autoscaling": {"enabled": False}, "replicaCount": 1}}
    assert maybe(render(single), "PodDisruptionBudget", "gateway") is None
    two = render(merged(single, {"gateway": {"replicaCount": 2}}))
    assert_budget_leaves_one(two)
    assert one(two, "PodDisruptionBudget", "gateway")["spec"]["minAvailable"] == 1
    assert one(render({}), "PodDisruptionBudget", "gateway")


def test_a_database_the_chart_creates_is_always_migrated(
    ci_case: tuple[Path, list[Manifest]],
) -> None:
    _, objects = ci_case
    if maybe(objects, "StatefulSet", "gallery-postgres") is None:
        return
    migrates = gateway_env(objects)["FACEGATE_GALLERY_MIGRATE"]["value"] == "true"
    job = maybe(objects, "Job", "gallery-migrate")
    assert migrates != (job is not None), "exactly one migrate step"
    if job is None:
        return
    c = container(job["spec"]["template"]["spec"], "migrate")
    assert c["command"] == ["facegate", "gallery", "migrate"]
    env = {e["name"]: e for e in c["env"]}
    assert env["FACEGATE_GALLERY_URL"] == gateway_env(objects)["FACEGATE_GALLERY_URL"]
    # The database's NetworkPolicy lets the Job in.
    policy = one(objects, "NetworkPolicy", "gallery-postgres")
    peers = [p["podSelector"]["matchLabels"] for p in policy["spec"]["ingress"][0]["from"]]
    assert any(
        all(job["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in peer.items())
        for peer in peers
    )


def test_compat_variant_creates_the_database_and_migrates_it_with_a_job() -> None:
    objects = render(load_values(CHART_DIR / "ci" / "compat-values.yaml"))
    job = one(objects, "Job", "gallery-migrate")
    # Before new gateways start: after install creates the database, before an upgrade
    # changes anything; recreated each time (a Job's pod template is immutable).
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"


def test_bundled_postgres_has_shared_memory_and_a_startup_probe(
    ci_case: tuple[Path, list[Manifest]],
) -> None:
    _, objects = ci_case
    statefulset = maybe(objects, "StatefulSet", "gallery-postgres")
    if statefulset is None:
        return
    pod = statefulset["spec"]["template"]["spec"]
    postgres = container(pod, "postgres")
    shm = next(m for m in postgres["volumeMounts"] if m["mountPath"] == "/dev/shm")
    volume = next(v for v in pod["volumes"] if v["name"] == shm["name"])
    assert volume["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    probe = postgres["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 600


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_triton_on_a_read_write_once_claim_is_recreated_not_rolled(case: Path | None) -> None:
    values = case_values(case)
    objects = render(values)
    deployment = one(objects, "Deployment", "triton")
    pod = deployment["spec"]["template"]["spec"]
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    ]
    modes = {
        o["metadata"]["name"]: o["spec"]["accessModes"]
        for o in by_kind(objects, "PersistentVolumeClaim")
    }
    declared = merged(yaml.safe_load((CHART_DIR / "values.yaml").read_text()), values)
    if declared["models"]["claim"]["existingClaim"]:
        modes[declared["models"]["claim"]["existingClaim"]] = declared["models"]["claim"][
            "accessModes"
        ]
    rwo = any("ReadWriteMany" not in modes[c] and "ReadOnlyMany" not in modes[c] for c in claims)
    assert deployment["spec"]["strategy"]["type"] == ("Recreate" if rwo else "RollingUpdate")
    if rwo:
        assert deployment["spec"]["replicas"] == 1


# --- TensorRT: the gateway asks only for the warmed-up detector sizes ---------------------


def test_tensorrt_gateway_serves_only_the_warmed_up_detector_sizes() -> None:
    from gateway.ops.repository.configs import WARMUP_FRAME_SIZES_PX

    config = CHART_DIR.parents[1] / "model_repository" / "detector" / "configs" / "tensorrt.pbtxt"
    warmed = {int(side) for side in re.findall(r"dims: \[ (\d+), \1, 3 \]", config.read_text())}
    assert warmed == set(WARMUP_FRAME_SIZES_PX)
    env = gateway_env(render(load_values(CHART_DIR / "ci" / "scale-values.yaml")))
    allowed = env["FACEGATE_DET_SIZES_ALLOWED"]["value"]
    assert allowed == ",".join(map(str, WARMUP_FRAME_SIZES_PX))
    # The gateway's default sizes are among them, so default requests are served.
    settings = Settings(det_sizes_allowed=allowed)  # type: ignore[call-arg]
    assert set(settings.det_sizes_px) <= set(settings.det_sizes_allowed_px)
    assert "FACEGATE_DET_SIZES_ALLOWED" not in gateway_env(render({}))
