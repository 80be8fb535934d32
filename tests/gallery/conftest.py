"""Session fixtures: the real embedded PostgreSQL (pgvector) and gateways in front of it."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from gateway.config import Settings
from gateway.ops.servers.postgres import EmbeddedPostgres, PostgresOptions
from gateway.ops.servers.triton import EmbeddedTriton

from ..api.conftest import ADMIN_KEY, USER_KEY, ServerThread, gateway_settings

ENROLL_KEY = "test-enroll-key-0123456789"


@contextmanager
def started_postgres() -> Iterator[EmbeddedPostgres]:
    """An embedded PostgreSQL 18 + pgvector in a fresh folder, removed afterwards.

    Not under pytest's tmp_path: as root, PostgreSQL runs as a system user that must be able
    to traverse the folders above its data folder (pytest's are 0700).
    """
    folder = Path(tempfile.mkdtemp(prefix="facegate-pg-"))
    folder.chmod(0o755)
    server = EmbeddedPostgres(PostgresOptions(data_dir=folder / "data"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    """The session's embedded PostgreSQL, started once."""
    with started_postgres() as server:
        yield server


@pytest.fixture
def fresh_database(postgres: EmbeddedPostgres) -> Iterator[str]:
    """A new empty database on the session's server; its URL."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres.url(name)
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def gallery_settings(
    triton: EmbeddedTriton, postgres: EmbeddedPostgres, **extra: object
) -> Settings:
    return gateway_settings(
        triton,
        gallery_url=postgres.url(),
        api_keys=f"user:{USER_KEY},enroll:{ENROLL_KEY},admin:{ADMIN_KEY}",
        **extra,
    )


def wait_for_gallery(url: str, timeout_s: float = 60) -> None:
    """Until the gateway's gallery answers (it connects in the background)."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=url, headers={"X-API-Key": USER_KEY}) as http:
        while True:
            status = http.get("/v1/collections").status_code
            if status == 200:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"gallery not ready: {status}")
            time.sleep(0.1)


@pytest.fixture(scope="session")
def gallery_gateway(triton: EmbeddedTriton, postgres: EmbeddedPostgres) -> Iterator[str]:
    """A gateway with the gallery on the session's PostgreSQL; yields its base URL."""
    with ServerThread(gallery_settings(triton, postgres)) as server:
        wait_for_gallery(server.url)
        yield server.url


def client_for(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=120, headers={"X-API-Key": key})


@pytest.fixture
def enroller(gallery_gateway: str) -> Iterator[httpx.Client]:
    with client_for(gallery_gateway, ENROLL_KEY) as http:
        yield http


@pytest.fixture
def reader(gallery_gateway: str) -> Iterator[httpx.Client]:
    with client_for(gallery_gateway, USER_KEY) as http:
        yield http
