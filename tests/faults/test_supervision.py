"""`facegate serve` survives its own Triton crashing, hanging, or losing a backend process.

Real processes throughout: `facegate serve` as a child of the test, clients sending
/v1/detect and /v1/verify (and /v1/swap) back to back, and the fault injected with a signal.
For each fault: no 500, no request past the deadline, 503s carry Retry-After, and the
service comes back without restarting serve (the time to recover is printed). What the
dead Triton left behind (orphaned Python-backend stubs, /dev/shm files) must be gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.ops.procfs import descendants
from gateway.ops.servers.sessions import python_stubs, session_members
from gateway.ops.servers.triton import SHM_DIR

from ..conftest import free_port, free_ports
from ..images import encode, square_image
from ..ops.test_cli_processes import _tritons_serving

pytestmark = pytest.mark.integration
FACE = encode(square_image(640, 640, [(240, 128, 64)]))
USER_KEY = "supervision-test-key-0123456789"
ENROLL_KEY = "supervision-enroll-key-0123456789"
TRITON_TIMEOUT_S = 2.0
REQUEST_TIMEOUT_S = 4.0
# A gallery call's own bound, below the request's deadline.
GALLERY_TIMEOUT_S = 2.0
# A request may end a little after its deadline (the 504 still has to be written).
DEADLINE_SLACK_S = 3.0
ALLOWED = {200, 503, 504}


@dataclass(frozen=True)
class Outcome:
    started: float
    route: str
    status: int
    duration_s: float
    retry_after: str | None


def triton_under(parent: int) -> int:
    """The live tritonserver among `parent`'s descendants; 0 if there is none."""
    for pid in descendants(parent):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                program = handle.read().split(b"\0")[0]
            with open(f"/proc/{pid}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if pid != parent and program.endswith(b"/tritonserver") and state != "Z":
            return pid
    return 0


class Serve:
    """`facegate serve --models synthetic` in a child process, on free ports."""

    def __init__(
        self, repository: Path, log_path: Path, *options: str, gallery_dir: Path | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.repository = repository
        self.log_path = log_path
        env = {
            **os.environ,
            "FACEGATE_API_KEYS": f"user:{USER_KEY},enroll:{ENROLL_KEY}",
            "FACEGATE_TRITON_TIMEOUT_S": str(TRITON_TIMEOUT_S),
            "FACEGATE_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S),
            "FACEGATE_GALLERY_STATEMENT_TIMEOUT_S": str(GALLERY_TIMEOUT_S),
            "FACEGATE_DRAIN_S": "2",
            "FACEGATE_JSON_LOGS": "false",
        }
        triton_ports = free_ports()
        ports = [
            f"--grpc-port={triton_ports.grpc}",
            f"--http-port={triton_ports.http}",
            f"--metrics-port={triton_ports.metrics}",
        ]
        command = [
            sys.executable, "-m", "gateway.ops.cli", "serve", "--models", "synthetic",
            "--repository", str(repository), "--port", str(self.port), *ports,
            # The gallery's PostgreSQL is under test only where a test gives it a folder.
            *(["--gallery-dir", str(gallery_dir)] if gallery_dir else ["--no-gallery"]),
            *options,
        ]  # fmt: skip
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=self._log)

    def status(self, path: str) -> int:
        try:
            return httpx.get(f"{self.url}{path}", timeout=5).status_code
        except httpx.HTTPError:
            return -1

    def wait_ready(self, timeout_s: float = 180) -> float:
        started = time.monotonic()
        while self.status("/health/ready") != 200:
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            assert time.monotonic() - started < timeout_s, "serve did not become ready"
            time.sleep(0.1)
        return time.monotonic() - started

    def triton_pid(self) -> int:
        return triton_under(self.process.pid)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()


class Clients:
    """Threads sending requests back to back (one route each, round-robin), recording outcomes."""

    def __init__(self, url: str, routes: list[str]) -> None:
        self.url = url
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._routes = routes
        self._pool = ThreadPoolExecutor(len(routes), thread_name_prefix="client")

    def _send(self, http: httpx.Client, route: str) -> httpx.Response:
        if route == "/v1/detect":
            return http.post(route, files={"image": FACE})
        if route == "/v1/verify":
            return http.post(route, files={"image_a": FACE, "image_b": FACE})
        return http.post(route, files=[("source", FACE), ("target", FACE)])

    def _run(self, route: str) -> None:
        with httpx.Client(base_url=self.url, timeout=60, headers={"X-API-Key": USER_KEY}) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = self._send(http, route)
                    status, retry_after = response.status_code, response.headers.get("retry-after")
                except httpx.HTTPError:
                    status, retry_after = -1, None
                self.outcomes.append(
                    Outcome(started, route, status, time.monotonic() - started, retry_after)
                )
                if status != 200:
                    time.sleep(0.05)

    def __enter__(self) -> Clients:
        self._running = [self._pool.submit(self._run, route) for route in self._routes]
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for running in self._running:
            running.result(timeout=60)  # a client that crashed fails the test here
        self._pool.shutdown()

    def wait_for(self, condition: Callable[[list[Outcome]], bool], timeout_s: float) -> float:
        started = time.monotonic()
        while not condition(list(self.outcomes)):
            assert time.monotonic() - started < timeout_s, "timed out waiting on the clients"
            time.sleep(0.05)
        return time.monotonic() - started

    def ok_since(self, moment: float, route: str | None = None) -> bool:
        return any(
            o.status == 200 and o.started >= moment and route in (None, o.route)
            for o in self.outcomes
        )


def check_outcomes(outcomes: list[Outcome], allowed: set[int] = ALLOWED) -> None:
    """No 500 (nor any other surprise), no request past its deadline, Retry-After on 503."""
    statuses = {o.status for o in outcomes}
    counts = {status: sum(o.status == status for o in outcomes) for status in sorted(statuses)}
    print(f"responses by status: {counts}")
    assert statuses <= allowed, sorted(statuses)
    slowest = max(o.duration_s for o in outcomes)
    assert slowest < REQUEST_TIMEOUT_S + DEADLINE_SLACK_S, slowest
    assert all(o.retry_after for o in outcomes if o.status == 503)


def leftovers(session_id: int, shm_prefix: str) -> tuple[list[int], list[Path]]:
    return session_members(session_id), list(SHM_DIR.glob(f"{shm_prefix}*"))


def shm_prefix_of(triton_pid: int) -> str:
    """The shared-memory prefix of a running Triton, from a stub's command line."""
    stub = next(pid for pids in python_stubs(triton_pid).values() for pid in pids)
    with open(f"/proc/{stub}/cmdline", "rb") as handle:
        region = handle.read().split(b"\0")[2].decode()
    return region[: region.index("facegate_") + len("facegate_") + 13]


@pytest.fixture
def serve_factory(tiny_repository: Path, tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    import shutil

    started: list[Serve] = []

    def make(*options: str) -> Serve:
        repository = tmp_path / f"repo{len(started)}"
        shutil.copytree(tiny_repository, repository)
        serve = Serve(repository, tmp_path / f"serve{len(started)}.log", *options)
        started.append(serve)
        serve.wait_ready()
        return serve

    yield make
    for serve in started:
        serve.close()


def test_sigkill_of_triton_under_load(serve_factory: Callable[..., Serve]) -> None:
    serve = serve_factory()
    old = serve.triton_pid()
    prefix = shm_prefix_of(old)
    with Clients(serve.url, ["/v1/detect", "/v1/verify"] * 2) as clients:
        clients.wait_for(lambda seen: any(o.status == 200 for o in seen), 60)
        killed_at = time.monotonic()
        os.kill(old, signal.SIGKILL)
        recovered_s = serve.wait_ready(120)
        back = time.monotonic()
        clients.wait_for(lambda _: clients.ok_since(back), 60)
    print(f"\nSIGKILL: /health/ready back {recovered_s:.1f} s after the kill")
    check_outcomes(clients.outcomes)
    during = [o for o in clients.outcomes if o.started > killed_at + 0.5 and o.status != 200]
    assert during, "the outage went unnoticed: was Triton really killed?"
    assert serve.process.poll() is None and serve.triton_pid() not in (0, old)
    assert leftovers(old, prefix) == ([], [])
    assert serve.status("/health/live") == 200 and serve.status("/metrics") == 200


def test_sigstop_of_triton_longer_than_the_deadline(serve_factory: Callable[..., Serve]) -> None:
    serve = serve_factory("--hang-timeout-s", str(REQUEST_TIMEOUT_S))
    old = serve.triton_pid()
    prefix = shm_prefix_of(old)
    with Clients(serve.url, ["/v1/detect", "/v1/verify"] * 2) as clients:
        clients.wait_for(lambda seen: any(o.status == 200 for o in seen), 60)
        os.kill(old, signal.SIGSTOP)
        try:
            stopped_at = time.monotonic()
            clients.wait_for(lambda seen: any(o.status == 504 for o in seen), 60)
            assert serve.status("/health/live") == 200  # the gateway itself still answers
            serve.wait_ready(120)
            back = time.monotonic()
            recovered_s = back - stopped_at
            clients.wait_for(lambda _: clients.ok_since(back), 60)
        finally:
            # Never leave a stopped process behind, whatever happened.
            for pid in session_members(old):
                os.kill(pid, signal.SIGKILL)
    print(f"\nSIGSTOP: /health/ready back {recovered_s:.1f} s after the stop")
    check_outcomes(clients.outcomes)
    assert serve.process.poll() is None and serve.triton_pid() not in (0, old)
    assert leftovers(old, prefix) == ([], [])


def test_the_swapper_stub_killed_while_loaded(serve_factory: Callable[..., Serve]) -> None:
    serve = serve_factory()
    triton = serve.triton_pid()
    with Clients(serve.url, ["/v1/swap", "/v1/detect"]) as clients:
        clients.wait_for(
            lambda seen: any(o.status == 200 and o.route == "/v1/swap" for o in seen), 120
        )
        (stub,) = python_stubs(triton)["swapper"]
        killed_at = time.monotonic()
        os.kill(stub, signal.SIGKILL)
        recovered_s = clients.wait_for(lambda _: clients.ok_since(killed_at, "/v1/swap"), 120)
        # The swapper came back on demand with a new backend process, Triton was not restarted.
        assert serve.triton_pid() == triton
        assert python_stubs(triton)["swapper"] != [stub]
    print(f"\nswapper stub killed: swaps succeed again {recovered_s:.1f} s later")
    # While the stub was dead and before the model was unloaded, Triton answers INTERNAL: 502.
    check_outcomes(clients.outcomes, ALLOWED | {502})
    assert all(o.status == 200 for o in clients.outcomes if o.route == "/v1/detect")


def test_serve_gives_up_after_repeated_failures(serve_factory: Callable[..., Serve]) -> None:
    serve = serve_factory("--restart-max", "1", "--restart-backoff-s", "0.2")
    # A restart cannot succeed without the detector: the supervisor must give up.
    (serve.repository / "detector" / "1" / "model.onnx").unlink()
    os.kill(serve.triton_pid(), signal.SIGKILL)
    live: list[int] = []
    while serve.process.poll() is None and len(live) < 600:
        live.append(serve.status("/health/live"))
        time.sleep(0.1)
    code = serve.process.wait(timeout=60)
    log_text = serve.log_path.read_text()
    assert code == 2, log_text[-3000:]  # a failure the message explains
    assert 503 in live  # /health/live said so while serve drained
    assert "giving up" in log_text and "cannot recover by itself" in log_text
    assert _tritons_serving(serve.repository) == []
