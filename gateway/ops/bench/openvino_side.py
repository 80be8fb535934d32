"""The bench's third in-process baseline: InsightFace given onnxruntime's OpenVINO provider.

OpenVINO's onnxruntime is another build of the `onnxruntime` module and lives in a folder of
its own (gateway/ops/repository/providers.py), so this side runs in a worker process that
imports it first: `python -m gateway.ops.bench.openvino_side SOCKET THREADS DETECTOR
RECOGNIZER`. The worker builds InsightFaceInProcess with the OpenVINO provider (FP32, the
tuned side's thread count, spin-wait off), answers one call per message on a Unix socket
(a connection per calling thread, sessions shared by all, as in process) and reports the
providers each session really has. Where OpenVINO cannot run a model (its first call
fails), that model falls back to the CPU provider, and the report says so.

The caller's timing includes passing the JPEG and the answer over the socket: well under
a millisecond for a 640x480 JPEG, a few for 12 MP.
"""

from __future__ import annotations

import os
import secrets
import select
import subprocess
import sys
import tempfile
import threading
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from gateway.ops.bench.models import BenchModels
from gateway.ops.bench.options import BenchError
from gateway.ops.bench.scenarios import Outcome
from gateway.ops.repository.providers import OPENVINO_FOLDER

OPENVINO = "OpenVINOExecutionProvider"
CPU = "CPUExecutionProvider"
READY = "ready"
# Loading both models and compiling them for OpenVINO takes seconds; a worker silent for this
# long is stuck, and the bench says so instead of waiting for ever.
START_TIMEOUT_S = 600.0
AUTHKEY_ENV = "FACEGATE_BENCH_WORKER_KEY"


def _openvino_providers(threads: int) -> list[Any]:
    options = {"device_type": "CPU", "precision": "FP32"}
    if threads:
        options["num_of_threads"] = str(threads)
    return [(OPENVINO, options), CPU]


class InsightFaceOpenVino:
    """The worker process, seen as a scenario's callable (thread-safe)."""

    def __init__(self, models: BenchModels, threads: int, sample_jpeg: bytes) -> None:
        if not (OPENVINO_FOLDER / "onnxruntime" / "__init__.py").is_file():
            raise BenchError(
                f"the InsightFace-with-OpenVINO baseline needs onnxruntime-openvino in "
                f"{OPENVINO_FOLDER}: run scripts/bootstrap.sh (or pass --no-openvino)"
            )
        self._scratch = tempfile.mkdtemp(prefix="facegate-bench-openvino-")
        self._address = os.path.join(self._scratch, "worker.sock")
        self._authkey = secrets.token_bytes(16)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(OPENVINO_FOLDER), os.environ.get("PYTHONPATH", "")) if p
            ),
            AUTHKEY_ENV: self._authkey.hex(),
        }
        command = [
            sys.executable,
            "-m",
            __name__,
            self._address,
            str(threads),
            str(models.detector_onnx),
            str(models.recognizer_onnx),
        ]
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self._stderr_path = Path(self._scratch) / "worker.err"
        with open(self._stderr_path, "wb") as stderr:
            self._process = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
            )
        line = self._wait_ready()
        if line != READY:
            said = self._stderr_tail()
            self.close()
            raise BenchError(
                f"the InsightFace-with-OpenVINO worker did not start (it said {line!r}"
                + (f"; its last error line: {said}" if said else "")
                + "): run `facegate bench --no-openvino` to leave that baseline out"
            )
        try:
            # One call so the detector's fixed-shape sessions exist, and any fallback is made.
            self(sample_jpeg)
            self.providers: dict[str, list[str]] = self._ask(("providers",))
            self.fallbacks: list[str] = self._ask(("fallbacks",))
        except BaseException:
            self.close()  # the worker and its scratch folder go with the failure
            raise

    def _wait_ready(self) -> str:
        """The worker's first line ("" if it closed its output), or why none came in time."""
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], START_TIMEOUT_S)
        if not ready:
            return f"nothing in {START_TIMEOUT_S:.0f} s"
        return self._process.stdout.readline().strip()

    def _stderr_tail(self) -> str:
        try:
            lines = self._stderr_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][-300:] if lines else ""

    def _connection(self) -> Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = Client(self._address, family="AF_UNIX", authkey=self._authkey)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _ask(self, message: tuple[Any, ...]) -> Any:
        connection = self._connection()
        connection.send(message)
        status, value = connection.recv()
        if status != "ok":
            raise BenchError(f"the InsightFace-with-OpenVINO worker failed: {value}")
        return value

    def __call__(self, jpeg: bytes) -> Outcome:
        faces, stages = self._ask(("detect", jpeg))
        return Outcome(int(faces), dict(stages))

    def describe_providers(self) -> str:
        """E.g. 'detector: CPUExecutionProvider; recognizer: OpenVINOExecutionProvider, ...'."""
        sessions = "; ".join(f"{k}: {', '.join(v)}" for k, v in self.providers.items())
        fallbacks = f" ({'; '.join(self.fallbacks)})" if self.fallbacks else ""
        return sessions + fallbacks

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        Path(self._address).unlink(missing_ok=True)
        self._stderr_path.unlink(missing_ok=True)
        Path(self._scratch).rmdir()


# --- the worker ---------------------------------------------------------------------------


def _build(models: BenchModels, threads: int, detector_on_cpu: bool) -> Any:
    """InsightFace on OpenVINO; with `detector_on_cpu`, its detector on the CPU provider."""
    from gateway.ops.bench.scenarios import InsightFaceInProcess
    from gateway.ops.bench.tuning import OrtSettings

    settings = OrtSettings(threads, spinning=False)
    openvino = _openvino_providers(threads)
    detector = [CPU] if detector_on_cpu else None
    return InsightFaceInProcess(models, settings, openvino, detector_providers=detector)


def _serve(connection: Connection, state: dict[str, Any]) -> None:
    with connection:
        while True:
            try:
                message = connection.recv()
            except EOFError:
                return
            try:
                if message[0] == "detect":
                    with state["lock"]:
                        if not state["checked"]:
                            try:
                                state["side"](message[1])
                            except Exception as exc:  # OpenVINO's own types
                                text = " ".join(str(exc).split())[-200:]
                                state["fallbacks"].append(
                                    f"detector on the CPU provider: OpenVINO failed ({text})"
                                )
                                state["side"] = _build(state["models"], state["threads"], True)
                            state["checked"] = True
                    outcome = state["side"](message[1])
                    connection.send(("ok", (outcome.faces, dict(outcome.stages_ms))))
                elif message[0] == "providers":
                    connection.send(("ok", state["side"].session_providers()))
                else:
                    connection.send(("ok", list(state["fallbacks"])))
            except Exception as exc:  # the caller turns it into a BenchError
                connection.send(("error", f"{exc.__class__.__name__}: {exc}"))


def main(argv: list[str]) -> None:
    """The worker: load, say READY on stdout, serve connections until terminated."""
    address, threads, detector, recognizer = argv
    models = BenchModels(Path(), Path(detector), Path(recognizer), "")
    state = {
        "side": _build(models, int(threads), False),
        "models": models,
        "threads": int(threads),
        "fallbacks": [],
        "checked": False,
        "lock": threading.Lock(),
    }
    authkey = bytes.fromhex(os.environ[AUTHKEY_ENV])
    with Listener(address, family="AF_UNIX", authkey=authkey) as listener:
        sys.stdout.write(READY + "\n")
        sys.stdout.flush()
        while True:
            connection = listener.accept()
            threading.Thread(target=_serve, args=(connection, state), daemon=True).start()


if __name__ == "__main__":
    main(sys.argv[1:])
