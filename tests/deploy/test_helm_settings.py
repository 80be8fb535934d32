"""Every gateway setting an operator would set is reachable from the chart's values.

Each field of gateway.config.Settings is either rendered into the gateway's environment by
some value (checked by rendering helm/facegate/ci/compat-values.yaml, which turns them on, with
TensorRT for the swapper's load timeout, and once with gateway.auth.disabled), or listed in NOT_FROM_VALUES with the reason. A new
setting fails here until it gets a value or a reason. The rendered environment is read back by
Settings itself, so a value that renders but does not parse (a float for an integer, a YAML list
for a comma list) fails too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_helm_chart import CHART_DIR, container, gateway_env, gateway_spec, load_values, render

from gateway.config import Settings
from gateway.triton import spec

COMPAT_VALUES = CHART_DIR / "ci" / "compat-values.yaml"
# Settings the chart leaves to gateway.extraEnv (or sets otherwise), and why.
NOT_FROM_VALUES = {
    "api_keys": "the chart mounts the keys as a file: FACEGATE_API_KEYS_FILE (gateway.apiKeys)",
    "detector_model": "the chart's Triton serves the standard model names",
    "recognizer_model": "the chart's Triton serves the standard model names",
    "swapper_model": "the chart's Triton serves the standard model names",
    "genderage_model": "the chart's Triton serves the standard model names",
    "liveness_model": "the chart's Triton serves the standard model names",
    "landmark_2d_106_model": "the chart's Triton serves the standard model names",
    "landmark_3d_68_model": "the chart's Triton serves the standard model names",
    "triton_timeout_s": "Triton call tuning: gateway.extraEnv",
    "triton_unavailable_retries": "Triton call tuning: gateway.extraEnv",
    "detect_threshold": "a request default clients override per call: gateway.extraEnv",
    "nms_iou": "a request default clients override per call: gateway.extraEnv",
    "det_sizes": "a request default clients override per call: gateway.extraEnv",
    "liveness_threshold": "a request default clients override per call: gateway.extraEnv",
    "verify_threshold": "a request default clients override per call: gateway.extraEnv",
    "cpu_threads": "follows the pod's CPU; tuning: gateway.extraEnv",
    "reduced_decode": "an opt-in speed/fidelity trade-off (docs/BENCHMARKS.md): gateway.extraEnv",
    "models_label": "labels synthetic models in `facegate serve`; the chart serves what it fetched",
    "json_logs": "the chart keeps JSON log lines, which log collectors parse",
    "audit_log_file": "in a cluster the audit records go to stdout with the logs (logger "
    "facegate.audit), where the log collector routes them; a file needs a volume: gateway.extraEnv",
    "recognizer_sha256": "`facegate models` writes it into the recognizer's Triton config; a "
    "hand-made repository sets it with gateway.extraEnv",
}


def env_name(field: str) -> str:
    return f"FACEGATE_{field.upper()}"


def rendered_settings_env(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in gateway_env(render(values)).items() if k.startswith("FACEGATE_")}


@pytest.fixture(scope="module")
def full_values() -> dict[str, Any]:
    values = load_values(COMPAT_VALUES)
    values["triton"] = {"tensorrt": {"enabled": True}}
    return values


def test_every_setting_is_reachable_from_values_or_listed(full_values: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    # gateway.auth.disabled replaces the keys file: the two are rendered one at a time.
    no_auth = {**full_values, "gateway": {**full_values["gateway"], "auth": {"disabled": True}}}
    rendered = set(rendered_settings_env(full_values)) | set(rendered_settings_env(no_auth))
    from_values = {f for f in fields if env_name(f) in rendered}
    assert not set(NOT_FROM_VALUES) - fields, "NOT_FROM_VALUES names settings that are gone"
    assert not from_values & set(NOT_FROM_VALUES), "a listed setting now comes from values"
    missing = fields - from_values - set(NOT_FROM_VALUES)
    assert not missing, f"settings with no chart value and no reason: {sorted(missing)}"
    # Nothing rendered that Settings does not read (a typo would be ignored silently).
    assert rendered - {env_name(f) for f in fields} == set()


def test_rendered_settings_parse_to_the_values_given(
    full_values: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = rendered_settings_env(full_values)
    for name, entry in env.items():
        if "value" in entry:  # the rest come from Secrets (URL, keys)
            monkeypatch.setenv(name, entry["value"])
    settings = Settings()
    gw, gallery = full_values["gateway"], full_values["gallery"]
    compat = gw["compat"]
    assert settings.max_in_flight == gw["maxInFlight"]
    assert settings.cors_origins == gw["corsOrigins"]
    assert settings.max_image_bytes == gw["limits"]["maxImageBytes"]
    assert settings.max_image_pixels == gw["limits"]["maxImagePixels"]
    assert settings.max_batch_images == gw["limits"]["maxBatchImages"]
    assert settings.swapper_preload is True
    assert settings.swapper_idle_ttl_s == gw["swapper"]["idleTtlSeconds"] == 0
    assert settings.swapper_wait_s == gw["swapper"]["waitSeconds"]
    assert settings.compat == ",".join(compat["protocols"])
    assert settings.compat_networks == ",".join(compat["networks"])
    assert settings.compat_images_dir == Path(compat["imagesDir"])
    assert settings.compat_url_hosts == ",".join(compat["urlHosts"])
    assert settings.compat_max_images == compat["maxImages"]
    assert settings.compat_max_request_bytes == compat["maxRequestBytes"]
    assert settings.compat_immich_models == ",".join(compat["immichModels"])
    assert settings.compat_immich_prefix == compat["immichPrefix"]
    assert settings.gallery_timeout_s == gallery["timeoutSeconds"]
    assert settings.gallery_statement_timeout_s == gallery["statementTimeoutSeconds"]
    assert settings.gallery_migrate is False
    assert settings.gallery_ef_search == gallery["efSearch"]


def test_unset_values_leave_the_gateway_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """null / empty values render nothing, so the chart never repeats (or pins) a default."""
    env = rendered_settings_env({"gallery": {"enabled": True, "postgres": {"enabled": True}}})
    for name in list(env):
        monkeypatch.delenv(name, raising=False)
    for name, entry in env.items():
        if "value" in entry:
            monkeypatch.setenv(name, entry["value"])
    settings, defaults = Settings(), Settings.model_construct()
    tuned = [f for f in Settings.model_fields if f not in NOT_FROM_VALUES]
    for field in tuned:
        if env_name(field) not in env:
            assert getattr(settings, field) == getattr(defaults, field), field
    assert not any(name.startswith("FACEGATE_COMPAT") for name in env)


def test_compat_without_networks_is_refused() -> None:
    with pytest.raises(Exception, match=r"gateway\.compat\.networks must list"):
        render({"gateway": {"compat": {"protocols": ["immich"]}}})


def test_extra_volumes_reach_the_gateway_container() -> None:
    objects = render(load_values(COMPAT_VALUES))
    spec = gateway_spec(objects)
    assert {
        "name": "images",
        "nfs": {"server": "nfs.example.com", "path": "/export/images", "readOnly": True},
    } in spec["volumes"]
    mounts = container(spec, "gateway")["volumeMounts"]
    assert {"name": "images", "mountPath": "/srv/images", "readOnly": True} in mounts


def test_notes_name_the_optional_models_and_the_compat_networks() -> None:
    from test_helm_chart import render_notes

    notes = render_notes(load_values(COMPAT_VALUES))
    optional = " ".join(spec.OPTIONAL_STARTUP_MODELS)
    assert f"when the repository holds them: {optional} (models.optional)" in notes
    assert "Compatibility routes (ifr, immich" in notes and "10.244.0.0/16 get in" in notes
    plain = render_notes(
        {"models": {"optional": dict.fromkeys(spec.OPTIONAL_STARTUP_MODELS, False)}}
    )
    assert "models.optional" not in plain and "Compatibility routes" not in plain
