"""docker-compose.yml's gallery database: pgvector, private to the compose network, wired."""

from __future__ import annotations

import yaml
from test_container_files import COMPOSE_FILE, compose_config


def test_compose_gallery_database_is_private_and_wired() -> None:
    result = compose_config(COMPOSE_FILE, env={"FACEGATE_GALLERY_PASSWORD": "pw-0123456789abcdef"})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    db = services["gallery-db"]
    assert db["image"].startswith("pgvector/pgvector:")
    assert "ports" not in db  # reachable only from the compose network
    assert db["environment"]["POSTGRES_PASSWORD"] == "pw-0123456789abcdef"
    gateway = services["gateway"]
    url = gateway["environment"]["FACEGATE_GALLERY_URL"]
    assert url == "postgresql://facegate:pw-0123456789abcdef@gallery-db:5432/facegate"
    assert gateway["depends_on"]["gallery-db"]["condition"] == "service_healthy"


def test_compose_gallery_database_has_shared_memory_and_time_to_recover() -> None:
    result = compose_config(COMPOSE_FILE, env={"FACEGATE_GALLERY_PASSWORD": "pw-0123456789abcdef"})
    assert result.returncode == 0, result.stderr
    db = yaml.safe_load(result.stdout)["services"]["gallery-db"]
    assert str(db["shm_size"]).lower() in ("1gb", str(1 << 30))
    assert db["healthcheck"]["start_period"] in ("10m", "10m0s")
    # A gateway that finds no database tables migrates them (FACEGATE_GALLERY_MIGRATE unset: on).
    assert not yaml.safe_load(result.stdout)["services"]["gateway"]["environment"].get(
        "FACEGATE_GALLERY_MIGRATE"
    )
