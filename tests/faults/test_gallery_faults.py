"""`facegate serve` survives its own PostgreSQL crashing, hanging or running out of disk.

Real processes throughout: `facegate serve` with its embedded PostgreSQL as a child of the
test; client threads enrol (three embeddings per request: one transaction), identify and
detect back to back; the fault comes from a signal or a filled-up filesystem. For each: no
500, no request past its deadline, 503s carry Retry-After, detection never notices, and
the gallery comes back without restarting serve. Then every enrolment that was answered
2xx is read back (all its faces there), and no enrolment is half-written (a subject has
all three faces or none), whatever the clients were told.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest

from gateway.ops.servers.postgres import EmbeddedPostgres, PostgresOptions

from .test_supervision import (
    ENROLL_KEY,
    FACE,
    USER_KEY,
    Clients,
    Outcome,
    Serve,
    check_outcomes,
)

pytestmark = [pytest.mark.integration, pytest.mark.gallery]
FACES_PER_ENROLMENT = 3
GALLERY_ALLOWED = {200, 201, 503, 504}


def unit_vectors(rng: np.random.Generator, count: int) -> list[list[float]]:
    rows = rng.standard_normal((count, 512)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return [[float(v) for v in row] for row in rows]


@dataclass
class GalleryServe:
    serve: Serve
    data_dir: Path
    collection: str = field(default_factory=lambda: f"faults-{uuid.uuid4().hex[:8]}")

    def postmaster(self) -> int:
        """The live postmaster serve started (its child in the cluster); 0 if there is none."""
        for pid in self.cluster():
            with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as handle:
                if int(handle.read().rsplit(")", 1)[1].split()[1]) == self.serve.process.pid:
                    return pid
        return 0

    def cluster(self) -> list[int]:
        """Every live process of the cluster: postmaster, backends, auxiliary processes."""
        return EmbeddedPostgres(PostgresOptions(data_dir=self.data_dir)).server_pids()

    def stored_faces(self) -> dict[str, set[str]]:
        """Face ids per subject of the collection, read from the database itself."""
        url = EmbeddedPostgres(PostgresOptions(data_dir=self.data_dir)).url()
        with psycopg.connect(url, connect_timeout=10) as conn:
            rows = conn.execute(
                "SELECT f.subject, f.id::text FROM gallery_faces f JOIN gallery_collections c"
                " ON c.id = f.collection_id WHERE c.name = %s",
                (self.collection,),
            ).fetchall()
        stored: dict[str, set[str]] = {}
        for subject, face_id in rows:
            stored.setdefault(subject, set()).add(face_id)
        return stored


def wait_for_gallery(serve: Serve, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=serve.url, headers={"X-API-Key": USER_KEY}, timeout=10) as http:
        while http.get("/v1/collections").status_code != 200:
            assert serve.process.poll() is None, serve.log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "the gallery did not come up"
            time.sleep(0.1)


@pytest.fixture
def gallery_serve(tiny_repository: Path, tmp_path: Path) -> Iterator[GalleryServe]:
    """serve with its own embedded PostgreSQL; the data folder is not under tmp_path: as root,
    PostgreSQL runs as a system user that must traverse the folders above it."""
    folder = Path(tempfile.mkdtemp(prefix="facegate-pgfault-"))
    folder.chmod(0o755)
    repository = tmp_path / "repo"
    shutil.copytree(tiny_repository, repository)
    serve = Serve(
        repository,
        tmp_path / "serve.log",
        "--hang-timeout-s",
        "6",
        gallery_dir=folder / "data",
    )
    try:
        serve.wait_ready()
        wait_for_gallery(serve)
        yield GalleryServe(serve, folder / "data")
    finally:
        serve.close()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Enrolment:
    subject: str
    status: int
    face_ids: list[str]


class GalleryClients(Clients):
    """Threads enrolling, identifying and detecting back to back, recording every answer."""

    def __init__(self, url: str, collection: str, enrollers: int = 2, identifiers: int = 2):
        super().__init__(url, ["enrol"] * enrollers + ["identify"] * identifiers + ["detect"])
        self.collection = collection
        self.enrolments: list[Enrolment] = []

    def _client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, headers={"X-API-Key": key})

    def _record(self, route: str, started: float, response: httpx.Response | None) -> int:
        status = response.status_code if response is not None else -1
        retry_after = response.headers.get("retry-after") if response is not None else None
        self.outcomes.append(
            Outcome(started, route, status, time.monotonic() - started, retry_after)
        )
        if status not in (200, 201):
            time.sleep(0.05)
        return status

    def _request(
        self, http: httpx.Client, method: str, path: str, **kw: object
    ) -> httpx.Response | None:
        try:
            return http.request(method, path, **kw)  # type: ignore[arg-type]
        except httpx.HTTPError:
            return None

    def _enrol(self, worker: int) -> None:
        rng = np.random.default_rng(worker)
        with self._client(ENROLL_KEY) as http:
            number = 0
            while not self._stop.is_set():
                subject = f"w{worker}-{number}"
                number += 1
                started = time.monotonic()
                response = self._request(
                    http,
                    "POST",
                    f"/v1/collections/{self.collection}/subjects/{subject}/faces",
                    json={"embeddings": unit_vectors(rng, FACES_PER_ENROLMENT)},
                )
                status = self._record("enrol", started, response)
                ids = (
                    [face["id"] for face in response.json()["faces"]]
                    if response is not None and status == 201
                    else []
                )
                self.enrolments.append(Enrolment(subject, status, ids))

    def _identify(self, worker: int) -> None:
        rng = np.random.default_rng(100 + worker)
        with self._client(USER_KEY) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                response = self._request(
                    http,
                    "POST",
                    f"/v1/collections/{self.collection}/identify",
                    json={"embeddings": unit_vectors(rng, 1)},
                )
                self._record("identify", started, response)

    def _detect(self, worker: int) -> None:
        with self._client(USER_KEY) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                response = self._request(http, "POST", "/v1/detect", files={"image": FACE})
                self._record("/v1/detect", started, response)

    def __enter__(self) -> GalleryClients:
        work = {"enrol": self._enrol, "identify": self._identify, "detect": self._detect}
        self._running = [
            self._pool.submit(work[kind], worker) for worker, kind in enumerate(self._routes)
        ]
        return self

    def wait_for_success(self, route: str, since: float, timeout_s: float) -> float:
        """Seconds until a request of `route` started after `since` succeeded."""
        deadline = time.monotonic() + timeout_s
        while not any(
            o.route == route and o.status in (200, 201) and o.started >= since
            for o in list(self.outcomes)
        ):
            assert time.monotonic() < deadline, f"no successful {route} after the fault"
            time.sleep(0.05)
        return time.monotonic() - since


def create_collection(url: str, name: str) -> None:
    with httpx.Client(base_url=url, headers={"X-API-Key": ENROLL_KEY}, timeout=30) as http:
        response = http.post("/v1/collections", json={"name": name})
        assert response.status_code == 201, response.text


def check_no_lost_or_half_writes(gallery: GalleryServe, enrolments: list[Enrolment]) -> None:
    """Every 2xx enrolment is stored exactly as answered; every subject has all faces or none."""
    stored = gallery.stored_faces()
    answered = [e for e in enrolments if e.status == 201]
    failed = [e for e in enrolments if e.status != 201]
    print(
        f"enrolments: {len(answered)} answered 201, {len(failed)} failed; read back after recovery"
    )
    assert answered and failed, "the fault did not hit the enrolments"
    for enrolment in answered:
        assert stored.get(enrolment.subject) == set(enrolment.face_ids), enrolment.subject
    for subject, faces in stored.items():
        assert len(faces) == FACES_PER_ENROLMENT, f"{subject}: {len(faces)} faces (half-written)"


def check_gallery_outcomes(outcomes: list[Outcome]) -> None:
    check_outcomes(outcomes, GALLERY_ALLOWED)
    # Detection does not need the database: it never noticed.
    assert all(o.status == 200 for o in outcomes if o.route == "/v1/detect")


def test_sigkill_of_postgres_under_mixed_load(gallery_serve: GalleryServe) -> None:
    serve = gallery_serve.serve
    create_collection(serve.url, gallery_serve.collection)
    old = gallery_serve.postmaster()
    assert old
    with GalleryClients(serve.url, gallery_serve.collection) as clients:
        clients.wait_for(lambda seen: sum(o.status == 201 for o in seen) >= 20, 60)
        before = gallery_serve.cluster()
        killed_at = time.monotonic()
        os.kill(old, signal.SIGKILL)
        recovered_s = clients.wait_for_success("enrol", killed_at + 0.5, 120)
        clients.wait_for_success("identify", time.monotonic(), 60)
    print(f"\nPostgreSQL SIGKILL: enrolments succeed again {recovered_s:.1f} s after the kill")
    check_gallery_outcomes(clients.outcomes)
    assert serve.process.poll() is None
    assert gallery_serve.postmaster() not in (0, old)
    # Nothing of the dead cluster is left (its backends, which lead sessions of their own).
    assert set(before) & set(gallery_serve.cluster()) == set()
    assert "postgres exited unexpectedly (signal SIGKILL)" in serve.log_path.read_text()
    check_no_lost_or_half_writes(gallery_serve, clients.enrolments)


def test_sigstop_of_postgres_longer_than_the_deadline(gallery_serve: GalleryServe) -> None:
    serve = gallery_serve.serve
    create_collection(serve.url, gallery_serve.collection)
    old = gallery_serve.postmaster()
    with GalleryClients(serve.url, gallery_serve.collection) as clients:
        clients.wait_for(lambda seen: sum(o.status == 201 for o in seen) >= 20, 60)
        # The whole cluster hangs (postmaster and backends), as on a stalled disk.
        stopped = gallery_serve.cluster()
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            recovered_s = clients.wait_for_success("enrol", stopped_at + 0.5, 120)
            clients.wait_for_success("identify", time.monotonic(), 60)
        finally:
            for pid in stopped:  # never leave a stopped process behind
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    print(f"\nPostgreSQL SIGSTOP: enrolments succeed again {recovered_s:.1f} s after the stop")
    check_gallery_outcomes(clients.outcomes)
    stalled = [o for o in clients.outcomes if o.route != "/v1/detect" and o.status == 503]
    assert stalled, "the hang went unnoticed: was PostgreSQL really stopped?"
    assert serve.process.poll() is None and gallery_serve.postmaster() not in (0, old)
    assert "did not answer its liveness probe" in serve.log_path.read_text()
    check_no_lost_or_half_writes(gallery_serve, clients.enrolments)


@contextlib.contextmanager
def small_filesystem(folder: Path, size_mib: int) -> Iterator[None]:
    """A tmpfs of size_mib at folder (root only); skips the test where mounting is refused."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem for the gallery needs root")
    folder.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


def fill_up(folder: Path) -> Path:
    """A file that takes every free byte of folder's filesystem."""
    filler = folder / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096):
            with contextlib.suppress(OSError):  # ENOSPC: full at this block size
                while True:
                    os.write(descriptor, b"\0" * size)
    finally:
        os.close(descriptor)
    return filler


def test_full_disk_for_the_gallery(tiny_repository: Path, tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="facegate-pgfull-"))
    folder.chmod(0o755)
    data_dir = folder / "data"
    repository = tmp_path / "repo"
    shutil.copytree(tiny_repository, repository)
    try:
        with small_filesystem(data_dir, 512):
            serve = Serve(repository, tmp_path / "serve.log", gallery_dir=data_dir)
            try:
                serve.wait_ready()
                wait_for_gallery(serve)
                _fill_the_disk_and_free_it(GalleryServe(serve, data_dir))
            finally:
                serve.close()  # before the filesystem goes
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _fill_the_disk_and_free_it(gallery: GalleryServe) -> None:
    serve = gallery.serve
    create_collection(serve.url, gallery.collection)
    postmaster = gallery.postmaster()
    rng = np.random.default_rng(0)
    enroller = httpx.Client(base_url=serve.url, headers={"X-API-Key": ENROLL_KEY}, timeout=30)
    reader = httpx.Client(base_url=serve.url, headers={"X-API-Key": USER_KEY}, timeout=30)

    def enrol(subject: str) -> httpx.Response:
        return enroller.post(
            f"/v1/collections/{gallery.collection}/subjects/{subject}/faces",
            json={"embeddings": unit_vectors(rng, FACES_PER_ENROLMENT)},
        )

    with enroller, reader:
        assert enrol("before").status_code == 201
        free = shutil.disk_usage(gallery.data_dir).free
        print(f"\nfree before filling: {free / 2**20:.0f} MiB")
        filler = fill_up(gallery.data_dir)
        # Rows fit into the free space of existing pages for a while; then a page must be
        # added and the disk refuses it.
        refused = None
        answered: list[str] = []
        for number in range(2000):
            response = enrol(f"full-{number}")
            if response.status_code != 201:
                refused = response
                break
            answered.append(f"full-{number}")
        assert refused is not None, "the full disk never refused a write"
        print(f"\nfull disk: {len(answered)} enrolments fitted, then: {refused.text}")
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "gallery_storage_full"
        assert "free space" in refused.json()["error"]["message"]
        assert refused.headers.get("retry-after")
        # Reads keep working on the full disk.
        identified = reader.post(
            f"/v1/collections/{gallery.collection}/identify",
            json={"embeddings": unit_vectors(rng, 1)},
        )
        assert identified.status_code == 200, identified.text
        assert reader.get(f"/v1/collections/{gallery.collection}").status_code == 200
        filler.unlink()
        # Space is back: writes work again, without restarting serve or PostgreSQL.
        again = enrol("after")
        assert again.status_code == 201, again.text
    assert serve.process.poll() is None and gallery.postmaster() == postmaster
    stored = gallery.stored_faces()
    for subject in ["before", "after", *answered]:
        assert len(stored[subject]) == FACES_PER_ENROLMENT, subject
    assert f"full-{len(answered)}" not in stored  # the refused one left nothing
