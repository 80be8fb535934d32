"""docker-compose.yml passes the compatibility, gallery and admission settings on to the gateway.

Each is listed without a value, Compose's pass-through: set in the shell (or .env) it reaches
the gateway; unset, it is absent in the container and the gateway keeps its own default.
"""

from __future__ import annotations

import yaml
from test_container_files import COMPOSE_FILE, compose_config

from gateway.config import Settings

PASSED_ON = {
    "FACEGATE_COMPAT": "ifr,immich",
    "FACEGATE_COMPAT_NETWORKS": "172.18.0.0/16",
    "FACEGATE_COMPAT_URL_HOSTS": "photos.example.com",
    "FACEGATE_COMPAT_MAX_IMAGES": "32",
    "FACEGATE_COMPAT_MAX_REQUEST_BYTES": "536870912",
    "FACEGATE_COMPAT_IMMICH_MODELS": "buffalo_l,antelopev2",
    "FACEGATE_COMPAT_IMMICH_PREFIX": "/immich",
    "FACEGATE_GALLERY_POOL_SIZE": "4",
    "FACEGATE_GALLERY_TIMEOUT_S": "5",
    "FACEGATE_GALLERY_STATEMENT_TIMEOUT_S": "3",
    "FACEGATE_GALLERY_MIGRATE": "false",
    "FACEGATE_GALLERY_EF_SEARCH": "200",
    "FACEGATE_MAX_IN_FLIGHT_PER_KEY": "4",
    "FACEGATE_KEY_RATE_LIMITS": "*=20,scope:enroll=5:10",
    "FACEGATE_BODY_TIMEOUT_S": "10",
    "FACEGATE_AUDIT_TABLE": "true",
    "FACEGATE_AUDIT_RETENTION_DAYS": "90",
    "FACEGATE_DET_SIZES_ALLOWED": "128,640",
}


def gateway_environment(env: dict[str, str | None]) -> dict[str, str | None]:
    result = compose_config(COMPOSE_FILE, env=env)
    assert result.returncode == 0, result.stderr
    environment: dict[str, str | None] = yaml.safe_load(result.stdout)["services"]["gateway"][
        "environment"
    ]
    return environment


def test_compat_and_gallery_settings_reach_the_gateway_when_set() -> None:
    environment = gateway_environment(dict(PASSED_ON))
    assert {k: environment.get(k) for k in PASSED_ON} == PASSED_ON


def test_unset_ones_stay_unset_in_the_container() -> None:
    environment = gateway_environment({})
    assert all(environment[k] is None for k in PASSED_ON)  # null: not set in the container


def test_every_passed_on_name_is_a_setting() -> None:
    environment = gateway_environment({})
    names = {f"FACEGATE_{field.upper()}" for field in Settings.model_fields}
    assert set(environment) <= names
    assert set(PASSED_ON) <= set(environment)
