"""The embedded Triton: the tritonserver binary that the nvidia-pytriton wheel ships.

No Docker: the binary runs from site-packages with its bundled libraries on
LD_LIBRARY_PATH and the Python-backend stub for this interpreter copied next to the Python
backend. Models run through model_repository/<model>/configs/embedded.pbtxt (Python backend
+ onnxruntime). Triton starts in explicit model-control mode with the detector and the
recognizer loaded and the model-repository API (load/unload) restricted to callers that
send the repository key header: dynamic loading amounts to code execution.

tritonserver runs in a session of its own, and so do the Python-backend stubs it starts:
after a crash, what is left of that session (stubs orphaned to init, which ignore SIGTERM)
is found by session id and killed, and the stubs' shared-memory files are found by a
prefix unique to each start, so a restart leaks nothing (see cleanup()).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from gateway.ops.servers.child_process import (
    LogTail,
    NotReady,
    dying_with_parent,
    wait_until_ready,
)
from gateway.ops.servers.sessions import session_members, sweep_stale_shm
from gateway.ops.servers.stub_repair import StubWatch
from gateway.ops.servers.supervisor import ChildStartError
from gateway.triton import spec

log = logging.getLogger(__name__)
READY_POLL_S = 0.25
SHM_DIR = Path("/dev/shm")
# The Python backend's default prefix, kept so operators recognise the files; a token per
# start follows, so the files of one server instance can be told from any other's.
SHM_PREFIX = "triton_python_backend_shm_region_"
PROBE_TIMEOUT_S = 2.0


class EmbeddedTritonError(ChildStartError):
    """The embedded Triton could not be found, started or made ready."""


@dataclass(frozen=True)
class TritonPorts:
    """Triton's three listeners."""

    grpc: int = 8001
    http: int = 8000
    metrics: int = 8002


@dataclass
class TritonOptions:
    """How to start the embedded Triton."""

    repository: Path
    ports: TritonPorts = field(default_factory=TritonPorts)
    # Loopback by default: Triton has no authentication for inference, so it is exposed to a
    # network only when asked (and then behind a firewall or NetworkPolicy).
    host: str = "127.0.0.1"
    startup_models: tuple[str, ...] = spec.STARTUP_MODELS
    repository_key: str = ""
    config_name: str = spec.EMBEDDED_CONFIG_NAME
    startup_timeout_s: float = 180.0
    exit_timeout_s: int = 30
    log_verbose: int = 0
    extra_args: tuple[str, ...] = ()


def _pytriton_dist() -> tuple[Path, Path]:
    """(tritonserver dist dir, bundled shared libraries dir) from the nvidia-pytriton wheel."""
    try:
        import pytriton
    except ImportError as exc:
        raise EmbeddedTritonError(
            "the embedded Triton needs nvidia-pytriton: pip install -c constraints.txt 'facegate[embedded]'"
        ) from exc
    package_dir = Path(pytriton.__file__).parent
    dist = package_dir / "tritonserver"
    libs = package_dir.parent / "nvidia_pytriton.libs"
    if not (dist / "bin" / "tritonserver").exists():
        raise EmbeddedTritonError(
            f"no tritonserver binary under {dist}: reinstall nvidia-pytriton==0.7.0"
        )
    return dist, libs


def prepare_backends(runtime_dir: Path) -> Path:
    """A backend directory whose Python backend has the stub built for this interpreter."""
    dist, _ = _pytriton_dist()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise EmbeddedTritonError(
            f"nvidia-pytriton ships no Python-backend stub for Python {version}"
        )
    python_dir = runtime_dir / "backends" / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for source in (*(dist / "backends" / "python").iterdir(), stub):
        if source.is_file():
            target = python_dir / source.name
            if not target.exists() or target.stat().st_size != source.stat().st_size:
                shutil.copy2(source, target)
    return runtime_dir / "backends"


def server_environment() -> dict[str, str]:
    """Environment for tritonserver: bundled libraries, libpython, this venv's python first on PATH."""
    _, libs = _pytriton_dist()
    env = os.environ.copy()
    lib_dirs = [str(libs), sysconfig.get_config_var("LIBDIR") or ""]
    if env.get("LD_LIBRARY_PATH"):
        lib_dirs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(d for d in lib_dirs if d)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def server_command(
    options: TritonOptions, backends_dir: Path, cache_dir: Path, shm_prefix: str = SHM_PREFIX
) -> list[str]:
    """The tritonserver command line for these options."""
    dist, _ = _pytriton_dist()
    restriction = f"model-repository:{spec.REPOSITORY_KEY_HEADER}={options.repository_key}"
    command = [
        str(dist / "bin" / "tritonserver"),
        f"--model-repository={options.repository.resolve()}",
        "--model-control-mode=explicit",
        f"--model-config-name={options.config_name}",
        f"--backend-directory={backends_dir}",
        f"--cache-directory={cache_dir}",
        f"--grpc-address={options.host}",
        f"--http-address={options.host}",
        f"--metrics-address={options.host}",
        f"--grpc-port={options.ports.grpc}",
        f"--http-port={options.ports.http}",
        f"--metrics-port={options.ports.metrics}",
        f"--grpc-restricted-protocol={restriction}",
        f"--http-restricted-api={restriction}",
        f"--exit-timeout-secs={options.exit_timeout_s}",
        f"--log-verbose={options.log_verbose}",
        "--strict-readiness=true",
        f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
    ]
    command += [f"--load-model={name}" for name in options.startup_models]
    # Optional models (genderage) load when installed; without them the rest still serves.
    command += [
        f"--load-model={name}"
        for name in spec.OPTIONAL_STARTUP_MODELS
        if (options.repository / name / "1" / "model.onnx").exists()
    ]
    command += [f"--load-model={name}" for name in pipeline_models(options)]
    return command + list(options.extra_args)


def pipeline_models(options: TritonOptions) -> tuple[str, ...]:
    """The in-server pipeline models (faces) the repository holds, when the startup models
    they call are loaded too."""
    if not set((spec.DETECTOR, spec.RECOGNIZER)) <= set(options.startup_models):
        return ()
    return tuple(
        name
        for name in spec.PIPELINE_MODELS
        if (options.repository / name / "1" / "model.py").exists()
    )


def new_repository_key() -> str:
    return secrets.token_urlsafe(24)


class EmbeddedTriton:
    """A tritonserver child process: start, wait until ready, stop; restartable.

    Implements the supervisor's Child interface (gateway/ops/servers/supervisor.py).
    """

    name = "triton"

    def __init__(
        self, options: TritonOptions, runtime_dir: Path | None = None, echo_logs: bool = False
    ) -> None:
        if not options.repository_key:
            options.repository_key = new_repository_key()
        self.options = options
        self._runtime_dir = (
            runtime_dir
            or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
            / "facegate"
            / "triton"
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._tail = LogTail("triton", echo=echo_logs)
        self._shm_prefix = SHM_PREFIX
        self._stub_watch: StubWatch | None = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.options.ports.grpc}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.options.ports.http}"

    def logs(self) -> str:
        return self._tail.text()

    def _check_repository(self) -> None:
        for name in self.options.startup_models:
            model_dir = self.options.repository / name
            if not (model_dir / "1" / "model.onnx").exists():
                raise EmbeddedTritonError(
                    f"{model_dir}/1/model.onnx is missing: put models in the repository first with "
                    "`facegate models fetch`, `facegate models import DIR` or `facegate models synthetic`"
                )

    def _check_ports(self) -> None:
        for name, port in (
            ("gRPC", self.options.ports.grpc),
            ("HTTP", self.options.ports.http),
            ("metrics", self.options.ports.metrics),
        ):
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((self.options.host, port))
                except OSError as exc:
                    raise EmbeddedTritonError(
                        f"Triton's {name} port {port} on {self.options.host} is taken ({exc.strerror}): "
                        "stop the other server or pick free ports (--grpc-port, --http-port, --metrics-port)"
                    ) from exc

    def start(self) -> None:
        """Start tritonserver and wait until the startup models are ready."""
        self._check_repository()
        self._check_ports()
        backends = prepare_backends(self._runtime_dir)
        cache = self._runtime_dir / "caches"
        cache.mkdir(parents=True, exist_ok=True)
        swept = sweep_stale_shm(f"{SHM_PREFIX}facegate_")
        if swept:
            log.warning("removed %d stale shared-memory file(s) of dead Triton instances", swept)
        # A token per start: the shared-memory files of this instance, and only those.
        self._shm_prefix = f"{SHM_PREFIX}facegate_{secrets.token_hex(6)}_"
        command = server_command(self.options, backends, cache, self._shm_prefix)
        log.info(
            "starting embedded Triton: gRPC :%d, HTTP :%d, metrics :%d",
            self.options.ports.grpc,
            self.options.ports.http,
            self.options.ports.metrics,
        )
        # Behind the trampoline, not a preexec_fn: the callers hold gRPC's threads, and a
        # preexec_fn makes Popen fork and run their at-fork hooks in the child (seen aborting
        # Triton's start with SIGABRT under load, as it crashed PostgreSQL's restarts).
        self._process = subprocess.Popen(
            dying_with_parent(command),
            env=server_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._tail.follow(self._process)
        self._wait_ready()
        self._stub_watch = StubWatch(
            self.http_url,
            self.options.repository_key,
            (*self.options.startup_models, *pipeline_models(self.options)),
            self._process.pid,
            self.options.repository.resolve(),
        )

    def failure_reason(self) -> str:
        """Triton's own words for why a model did not load, from its log."""
        reasons = [
            line.strip()
            for line in self._tail.lines()
            if "failed to load" in line or line.startswith("E")
        ]
        return "\n".join(reasons[-8:]) or self.logs()[-2000:]

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _wait_ready(self) -> None:
        assert self._process is not None
        try:
            wait_until_ready(
                self._process,
                self._ready,
                self.options.startup_timeout_s,
                READY_POLL_S,
                self._tail,
            )
        except NotReady as exc:
            if exc.exit_code is not None:
                raise EmbeddedTritonError(
                    f"Triton exited with code {exc.exit_code} during startup:\n"
                    f"{self.failure_reason()}"
                ) from None
            self.stop()
            raise EmbeddedTritonError(
                f"Triton was not ready after {self.options.startup_timeout_s:.0f} s "
                f"(raise --startup-timeout-s on slow machines):\n{self.failure_reason()}"
            ) from None
        loaded = (*self.options.startup_models, *pipeline_models(self.options))
        log.info("embedded Triton ready: %s", ", ".join(loaded))

    def wait(self) -> int:
        """Block until Triton exits; returns its exit code."""
        assert self._process is not None
        return self._process.wait()

    @property
    def pid(self) -> int:
        """tritonserver's process id (its Python-backend stubs are its children)."""
        assert self._process is not None
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def terminate(self) -> None:
        """Ask Triton to stop (SIGTERM: it drains in-flight requests); does not wait."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """Stop Triton and its backend processes at once; returns once tritonserver is gone."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def stop(self, timeout_s: float | None = None) -> None:
        """SIGTERM (Triton drains in-flight requests), then SIGKILL after the timeout."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=timeout_s or self.options.exit_timeout_s + 10)
            except subprocess.TimeoutExpired:
                log.warning("Triton did not stop in time; killing it")
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self.cleanup()

    def exit_status(self) -> int | None:
        """tritonserver's return code once it has exited (negative: killed by that signal)."""
        return None if self._process is None else self._process.poll()

    def alive(self) -> bool:
        """Triton's HTTP liveness endpoint answers within PROBE_TIMEOUT_S."""
        url = f"{self.http_url}/v2/health/live"
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def repair(self) -> str:
        """Reload models whose Python-backend stub died (Triton itself does not)."""
        if self._stub_watch is None or not self.running:
            return ""
        return self._stub_watch.repair()

    def log_tail(self, lines: int = 30) -> str:
        return self._tail.text(last=lines)

    def cleanup(self) -> str:
        """After tritonserver has exited: kill what is left of its session, remove its shm files.

        The Python-backend stubs outlive a killed tritonserver (orphaned to init, ignoring
        SIGTERM) and keep their memory and /dev/shm files. Returns what was done ('' if
        nothing was left), or does nothing while tritonserver still runs.
        """
        if self._process is None or self._process.poll() is None:
            return ""
        session = self._process.pid
        orphans = session_members(session)
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while session_members(session) and time.monotonic() < deadline:
            time.sleep(0.05)
        removed = 0
        for path in SHM_DIR.glob(f"{self._shm_prefix}*"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        done = []
        if orphans:
            done.append(f"killed {len(orphans)} orphaned process(es) {orphans}")
        if removed:
            done.append(f"removed {removed} shared-memory file(s) {self._shm_prefix}*")
        return "; ".join(done)
