"""`facegate serve` with its embedded PostgreSQL: up with the gateway, stopped with it, and
the gallery still there at the next start."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..conftest import free_port
from ..ops.test_cli_processes import _ports, _wait
from .people import person_png

pytestmark = [pytest.mark.gallery, pytest.mark.integration]
KEY = "serve-gallery-key-0123456789"


def _postgres_serving(data_dir: Path) -> list[int]:
    """Pids of postgres processes on this data folder (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (
            state != "Z"
            and args[0].endswith(b"postgres")
            and str(data_dir).encode() in b" ".join(args)
        ):
            found.append(int(entry))
    return found


@pytest.fixture
def gallery_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="facegate-serve-"))
    folder.chmod(0o755)
    yield folder / "gallery"
    shutil.rmtree(folder, ignore_errors=True)


def _serve(repository: Path, gallery_dir: Path, port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "gateway.ops.cli", "serve", "--models", "synthetic",
        "--repository", str(repository), "--port", str(port), *_ports(),
        "--gallery-dir", str(gallery_dir),
    ]  # fmt: skip
    env = {**os.environ, "FACEGATE_API_KEYS": f"admin:{KEY}"}
    env.pop("FACEGATE_GALLERY_URL", None)
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _gallery_up(url: str) -> bool:
    try:
        return (
            httpx.get(f"{url}/v1/collections", headers={"X-API-Key": KEY}, timeout=2).status_code
            == 200
        )
    except httpx.HTTPError:
        return False


def test_serve_runs_and_stops_the_embedded_postgres(
    tiny_repository: Path, tmp_path: Path, gallery_dir: Path
) -> None:
    repository = tmp_path / "repo"
    shutil.copytree(tiny_repository, repository)
    for attempt in range(2):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        child = _serve(repository, gallery_dir, port)
        try:
            assert _wait(lambda url=url: _gallery_up(url), 120)
            assert _postgres_serving(gallery_dir)
            with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=60) as http:
                if attempt == 0:
                    assert http.post("/v1/collections", json={"name": "kept"}).status_code == 201
                    enrolled = http.post(
                        "/v1/collections/kept/subjects/lena/faces", files={"image": person_png(7)}
                    )
                    assert enrolled.status_code == 201, enrolled.text
                else:  # the next start finds the gallery where it was
                    found = http.post(
                        "/v1/collections/kept/identify",
                        files={"image": person_png(7, centre=(192, 256))},
                        params={"threshold": 0.995},
                    ).json()
                    assert found["faces"][0]["matches"][0]["subject"] == "lena"
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=90)
            assert _wait(lambda: not _postgres_serving(gallery_dir), 30)
        finally:
            if child.poll() is None:
                child.kill()
        time.sleep(0.5)
    assert (gallery_dir / "pgdata" / "PG_VERSION").exists()
