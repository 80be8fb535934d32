"""The gallery in the load test: enrol and identify kinds, the collection, PostgreSQL faults.

Used by the fault-schedule run (`facegate loadtest --faults ...`), which drives `facegate
serve` with its embedded PostgreSQL. Every enrolment names a new subject and sends the
benchmark photo (its most prominent face is enrolled: one face per answer); identify sends
the same photo and expects one entry per planted face.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
import uuid
from pathlib import Path

import httpx

from gateway.ops.bench.images import BenchImage
from gateway.ops.bench.options import BenchError
from gateway.ops.loadtest.kinds import RequestKind
from gateway.ops.servers.postgres import EmbeddedPostgres, PostgresOptions

GALLERY_KINDS = ("enrol", "identify")
FIND_TIMEOUT_S = 30.0


def new_collection_name() -> str:
    return f"loadtest-{uuid.uuid4().hex[:8]}"


def gallery_kinds(collection: str, image: BenchImage) -> dict[str, RequestKind]:
    """enrol and identify against `collection`, by name."""
    numbers = itertools.count()
    files = {"image": ("image.jpg", image.jpeg, "image/jpeg")}

    async def enrol(client: httpx.AsyncClient) -> httpx.Response:
        subject = f"s{next(numbers)}"
        return await client.post(
            f"/v1/collections/{collection}/subjects/{subject}/faces", files=files
        )

    def enrolled(response: httpx.Response) -> str:
        faces = response.json().get("faces", [])
        return "" if len(faces) == 1 else f"{len(faces)} faces enrolled, expected 1"

    async def identify(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(f"/v1/collections/{collection}/identify", files=files)

    def identified(response: httpx.Response) -> str:
        faces = response.json().get("faces", [])
        found = len(faces)
        return "" if found == image.planted else f"{found} faces, expected {image.planted}"

    return {
        "enrol": RequestKind(
            "enrol", "POST .../subjects/{new}/faces, 640x480 (one face)", enrol, enrolled
        ),
        "identify": RequestKind(
            "identify", "POST .../identify, 640x480 (every face)", identify, identified
        ),
    }


async def create_collection(url: str, api_key: str, name: str) -> None:
    """The run's collection (needs an enroll-scope key)."""
    async with httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": api_key}, timeout=60
    ) as client:
        response = await client.post("/v1/collections", json={"name": name})
    if response.status_code != 201:
        raise BenchError(f"could not create the collection {name}: {response.text[:300]}")


def cluster_pids(data_dir: Path) -> list[int]:
    """Every live process of the embedded PostgreSQL in data_dir."""
    return EmbeddedPostgres(PostgresOptions(data_dir=data_dir)).server_pids()


def postmaster_of(parent: int, data_dir: Path) -> int:
    """The postmaster `parent` started on data_dir; 0 if none is running."""
    for pid in cluster_pids(data_dir):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent:
            return pid
    return 0


def inject_postgres_fault(kind: str, serve_pid: int, data_dir: Path) -> int:
    """pgkill: SIGKILL the postmaster; pgstop: SIGSTOP the whole cluster. Returns the postmaster.

    A stopped cluster stays stopped until the supervisor's hang timeout kills it. While the
    server is being restarted (no postmaster yet) this waits for it, up to FIND_TIMEOUT_S.
    """
    deadline = time.monotonic() + FIND_TIMEOUT_S
    postmaster = postmaster_of(serve_pid, data_dir)
    while not postmaster and time.monotonic() < deadline:
        time.sleep(0.2)
        postmaster = postmaster_of(serve_pid, data_dir)
    if not postmaster:
        return 0
    if kind == "pgkill":
        os.kill(postmaster, signal.SIGKILL)
        return postmaster
    for pid in cluster_pids(data_dir):
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            continue
    return postmaster
