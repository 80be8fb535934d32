"""The embedded PostgreSQL launcher: private by default, restartable, data kept."""

from __future__ import annotations

import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from gateway.ops.servers.postgres import EmbeddedPostgres, EmbeddedPostgresError, PostgresOptions

pytestmark = [pytest.mark.gallery, pytest.mark.integration]


@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="facegate-pg-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_private_restartable_and_persistent(folder: Path) -> None:
    server = EmbeddedPostgres(PostgresOptions(data_dir=folder / "data"))
    server.start()
    try:
        assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
        with psycopg.connect(server.url(), autocommit=True) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
            assert conn.execute(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
            conn.execute("CREATE TABLE kept (v int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        # The generated password is required, even on the socket.
        wrong = server.url().replace(server.password_file.read_text().strip(), "wrong")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(wrong).close()
        first_pid = server.pid
        server.stop()
        assert not server.running
        server.start()  # start() after an exit: same folder, same password, same data
        assert server.pid != first_pid
        with psycopg.connect(server.url()) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == (42,)
    finally:
        server.stop()
    # A second launcher object on the folder (e.g. after a gateway restart) finds it all.
    again = EmbeddedPostgres(PostgresOptions(data_dir=folder / "data"))
    again.start()
    try:
        with psycopg.connect(again.url()) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == (42,)
    finally:
        again.stop()


def test_too_long_socket_path_is_a_clear_error(folder: Path) -> None:
    deep = folder / ("d" * 120)
    with pytest.raises(EmbeddedPostgresError, match="shorter data folder"):
        EmbeddedPostgres(PostgresOptions(data_dir=deep)).start()
