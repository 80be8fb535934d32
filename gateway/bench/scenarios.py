"""Scenarios: named ways to turn one JPEG into embedded faces, timed by the caller.

The first scenario is the baseline (InsightFace in process); each other one is reported as
a ratio to it and may carry targets. A new row (a direct gRPC client, shared memory, ...)
is one more Scenario whose `run` handles one image end to end and is safe to call from
several threads at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from ..triton import spec
from .models import BenchModels
from .options import BenchError

GATEWAY_STARTUP_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 120.0
DETECT_THRESHOLD = 0.5  # InsightFace's buffalo_l setting, the gateway's default too


@dataclass(frozen=True)
class Outcome:
    """What one call saw: faces found and embedded, and its stage timings in ms."""

    faces: int
    stages_ms: Mapping[str, float]


@dataclass(frozen=True)
class Scenario:
    """A named way to handle one image end to end; targets are ratios to the baseline."""

    name: str
    description: str
    run: Callable[[bytes], Outcome]
    p50_ratio_max: float | None = None
    throughput_ratio_min: float | None = None


class InsightFaceInProcess:
    """What apps did before: SCRFD + ArcFaceONNX on onnxruntime CPU sessions, in process.

    cv2.imdecode, detect, then norm_crop + get_feat per face, as FaceAnalysis.get does.
    All calling threads share the two sessions (onnxruntime releases the GIL in run()).
    """

    def __init__(self, models: BenchModels, detector_threads: int, recognizer_threads: int):
        import onnxruntime as ort

        try:
            from insightface.model_zoo import SCRFD, ArcFaceONNX
        except ImportError as exc:
            raise BenchError(
                "the benchmark's baseline needs insightface: pip install -c constraints.txt "
                "insightface==0.7.3"
            ) from exc

        def session(path: Path, threads: int) -> Any:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        # insightface 0.7.3 calls a scikit-image API deprecated since 0.26 on every face.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"insightface\.")
        det_session = session(models.detector_onnx, detector_threads)
        self._detector = SCRFD(str(models.detector_onnx), session=det_session)
        size = spec.DETECTOR_INPUT_SIZE_PX
        self._detector.prepare(-1, input_size=(size, size), det_thresh=DETECT_THRESHOLD)
        rec_session = session(models.recognizer_onnx, recognizer_threads)
        self._recognizer = ArcFaceONNX(str(models.recognizer_onnx), session=rec_session)
        self._recognizer.prepare(-1)

    def __call__(self, jpeg: bytes) -> Outcome:
        from insightface.app.common import Face

        started = time.perf_counter()
        img_bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        decoded = time.perf_counter()
        boxes, kps = self._detector.detect(img_bgr, max_num=0)
        detected = time.perf_counter()
        for i in range(boxes.shape[0]):
            face = Face(bbox=boxes[i, :4], kps=kps[i], det_score=boxes[i, 4])
            self._recognizer.get(img_bgr, face)
        embedded = time.perf_counter()
        stages = {
            "decode": (decoded - started) * 1000,
            "detect": (detected - decoded) * 1000,
            "align+recognize": (embedded - detected) * 1000,
        }
        return Outcome(int(boxes.shape[0]), stages)


class RestDetect:
    """POST /v1/detect?embed=true with the JPEG as multipart; a keep-alive client per thread.

    Stage timings are the server's own timings_ms, prefixed 'server '.
    """

    def __init__(self, base_url: str, api_key: str) -> None:
        # httpx logs every request at INFO; the progress bar says enough.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self._base_url = base_url
        self._headers = {"X-API-Key": api_key}
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()

    def _client(self) -> Any:
        import httpx

        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                base_url=self._base_url, headers=self._headers, timeout=REQUEST_TIMEOUT_S
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def __call__(self, jpeg: bytes) -> Outcome:
        response = self._client().post(
            "/v1/detect",
            params={"embed": "true"},
            files={"image": ("image.jpg", jpeg, "image/jpeg")},
        )
        if response.status_code != 200:
            raise BenchError(f"the gateway answered {response.status_code}: {response.text[:500]}")
        body = response.json()
        faces = body["faces"]
        if faces and "embedding" not in faces[0]:
            raise BenchError("the gateway returned faces without embeddings")
        stages = {f"server {k}": float(v) for k, v in body["timings_ms"].items()}
        return Outcome(len(faces), stages)

    def close(self) -> None:
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RunningGateway:
    url: str
    api_key: str
    triton_version: str
    triton_pid: int
    triton_grpc_url: str
    repository_key: str


@contextlib.contextmanager
def running_gateway(models: BenchModels) -> Iterator[RunningGateway]:
    """The embedded Triton, then `facegate gateway` in a child process: what `serve` runs."""
    from ..embedded import EmbeddedTriton, EmbeddedTritonError, TritonOptions, TritonPorts

    ports = TritonPorts(_free_port(), _free_port(), _free_port())
    triton = EmbeddedTriton(TritonOptions(repository=models.repository, ports=ports))
    try:
        triton.start()
    except EmbeddedTritonError as exc:
        triton.stop()
        raise BenchError(str(exc)) from exc
    try:
        with urllib.request.urlopen(f"{triton.http_url}/v2", timeout=5) as answer:
            triton_version = str(json.load(answer).get("version", "?"))
        port = _free_port()
        api_key = secrets.token_urlsafe(24)
        env = {
            **os.environ,
            "FACEGATE_TRITON_URL": triton.grpc_url,
            "FACEGATE_TRITON_REPOSITORY_KEY": triton.options.repository_key,
            "FACEGATE_MODELS_LABEL": models.label,
            "FACEGATE_API_KEYS": f"user:{api_key}",
            "FACEGATE_LOG_LEVEL": "WARNING",
            "FACEGATE_DRAIN_S": "0",
        }
        command = [sys.executable, "-m", "gateway.cli", "gateway", "--port", str(port)]
        with tempfile.TemporaryFile() as output:
            child = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
            try:
                url = f"http://127.0.0.1:{port}"
                _wait_gateway_ready(url, child, output)
                yield RunningGateway(
                    url,
                    api_key,
                    triton_version,
                    triton.pid,
                    triton.grpc_url,
                    triton.options.repository_key,
                )
            finally:
                child.terminate()
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
    finally:
        triton.stop()


def _wait_gateway_ready(url: str, child: subprocess.Popen[bytes], output: IO[bytes]) -> None:
    deadline = time.monotonic() + GATEWAY_STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            output.seek(0)
            tail = output.read().decode(errors="replace")[-2000:]
            raise BenchError(f"the gateway exited with code {child.returncode}:\n{tail}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/health/ready", timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise BenchError(f"the gateway was not ready after {GATEWAY_STARTUP_TIMEOUT_S:.0f} s")
