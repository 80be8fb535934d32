"""Replicas and restarts: two gateway processes on one database, a database restart with the
data intact, and the recognizer guard (409) between gateways serving different recognizers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from gateway.ops.servers.postgres import EmbeddedPostgres
from gateway.ops.servers.triton import EmbeddedTriton

from ..api.conftest import ServerThread
from ..conftest import REPOSITORY_KEY, free_port
from .conftest import (
    ENROLL_KEY,
    USER_KEY,
    client_for,
    gallery_settings,
    started_postgres,
    wait_for_gallery,
)
from .people import SAME_PERSON, person_png
from .test_gallery_api import enrol, identify, new_collection

pytestmark = [pytest.mark.gallery, pytest.mark.integration]


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test alone (it gets stopped and restarted)."""
    with started_postgres() as server:
        yield server


def _gateway_process(
    triton: EmbeddedTriton, gallery_url: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "FACEGATE_TRITON_URL": triton.grpc_url,
        "FACEGATE_TRITON_REPOSITORY_KEY": REPOSITORY_KEY,
        "FACEGATE_GALLERY_URL": gallery_url,
        "FACEGATE_API_KEYS": f"user:{USER_KEY},enroll:{ENROLL_KEY}",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.ops.cli", "gateway", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return process, f"http://127.0.0.1:{port}"


def _wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            wait_for_gallery(url, timeout_s=1)
            return
        except (httpx.HTTPError, RuntimeError):
            time.sleep(0.2)
    raise AssertionError("the gateway process did not start")


def test_two_gateway_processes_share_one_database(
    triton: EmbeddedTriton, postgres: EmbeddedPostgres
) -> None:
    started = [_gateway_process(triton, postgres.url()) for _ in range(2)]
    try:
        for process, url in started:
            _wait_up(url, process)
        (_, url_a), (_, url_b) = started
        with client_for(url_a, ENROLL_KEY) as a, client_for(url_b, USER_KEY) as b:
            collection = new_collection(a)
            enrol(a, collection, "frank", person_png(51))
            # Answered 2xx by one replica: found by the other at once.
            (face,) = identify(b, collection, person_png(51, centre=(192, 256)))
            assert face["matches"][0]["subject"] == "frank"
            assert a.delete(f"/v1/collections/{collection}/subjects/frank").status_code == 204
            (face,) = identify(b, collection, person_png(51, centre=(192, 256)))
            assert face["matches"] == []
    finally:
        for process, _ in started:
            process.terminate()
            process.wait(timeout=60)


def test_database_restart_keeps_the_gallery(
    triton: EmbeddedTriton, own_postgres: EmbeddedPostgres
) -> None:
    with ServerThread(gallery_settings(triton, own_postgres)) as server:
        wait_for_gallery(server.url)
        with client_for(server.url, ENROLL_KEY) as http:
            collection = new_collection(http)
            enrol(http, collection, "grace", person_png(61))
            own_postgres.stop()
            down = http.get("/v1/collections")
            assert down.status_code == 503, down.text
            assert down.json()["error"]["code"] == "gallery_unavailable"
            own_postgres.start()
            (face,) = identify(http, collection, person_png(61, centre=(192, 256)))
            assert face["matches"][0]["subject"] == "grace"
            # A crash (SIGKILL) is recovered from too: committed enrolments survive.
            enrol(http, collection, "heidi", person_png(62))
            own_postgres.kill()
            own_postgres.start()
            (face,) = identify(http, collection, person_png(62, centre=(192, 256)))
            assert face["matches"][0]["subject"] == "heidi"


def test_another_recognizer_gets_409(
    triton: EmbeddedTriton, postgres: EmbeddedPostgres, enroller: httpx.Client
) -> None:
    collection = new_collection(enroller)
    enrol(enroller, collection, "ivan", person_png(71))
    other = gallery_settings(triton, postgres, recognizer_sha256="0" * 64)
    with ServerThread(other) as server:
        wait_for_gallery(server.url)
        with client_for(server.url, ENROLL_KEY) as http:
            for response in (
                http.post(
                    f"/v1/collections/{collection}/identify",
                    files={"image": person_png(71)},
                    params={"threshold": SAME_PERSON},
                ),
                http.post(
                    f"/v1/collections/{collection}/subjects/ivan/faces",
                    files={"image": person_png(72)},
                ),
                http.post(
                    f"/v1/collections/{collection}/subjects/ivan/verify",
                    files={"image": person_png(71)},
                ),
            ):
                assert response.status_code == 409, response.text
                error = response.json()["error"]
                assert error["code"] == "recognizer_mismatch"
                assert "re-enrol" in error["message"]
            # Reading still works, and a new collection binds to the recognizer loaded now.
            assert http.get(f"/v1/collections/{collection}/subjects/ivan").status_code == 200
            fresh = new_collection(http)
            assert http.get(f"/v1/collections/{fresh}").json()["recognizer_sha256"] == "0" * 64
    # Nothing was mixed in: the original collection still has its one face.
    assert enroller.get(f"/v1/collections/{collection}/subjects/ivan").json()["faces"] == 1
