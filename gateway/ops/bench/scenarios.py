"""Scenarios: named ways to turn one JPEG into embedded faces, timed by the caller.

The first scenario is the baseline (InsightFace in process); each other one is reported as
a ratio to it. A new row is one more Scenario whose `run` handles one image end to end and
is safe to call from several threads at once.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from gateway.ops.bench.models import BenchModels
from gateway.ops.bench.options import BenchError
from gateway.ops.bench.tuning import ORT_DEFAULTS, OrtSettings
from gateway.triton import spec

REQUEST_TIMEOUT_S = 120.0
# The two in-process baselines every other row is a ratio to (the floor and swap rows too).
BASELINE = "insightface"
TUNED = "insightface-tuned"
# The third (CPU runs only): InsightFace given onnxruntime's OpenVINO provider (openvino_side.py).
OPENVINO_BASELINE = "insightface-openvino"
DETECT_THRESHOLD = 0.5  # InsightFace's buffalo_l setting, the gateway's default too


@dataclass(frozen=True)
class Outcome:
    """What one call saw: faces found and embedded, and its stage timings in ms."""

    faces: int
    stages_ms: Mapping[str, float]


@dataclass(frozen=True)
class Scenario:
    """A named way to handle one image end to end (`run` is thread-safe)."""

    name: str
    description: str
    run: Callable[[bytes], Outcome]


class InsightFaceInProcess:
    """What apps did before: SCRFD + ArcFaceONNX on onnxruntime CPU sessions, in process.

    cv2.imdecode, detect, then norm_crop + get_feat per face, as FaceAnalysis.get does.
    All calling threads share the two sessions (onnxruntime releases the GIL in run()).
    """

    def __init__(
        self,
        models: BenchModels,
        settings: OrtSettings = ORT_DEFAULTS,
        providers: Sequence[Any] = ("CPUExecutionProvider",),
        detector_providers: Sequence[Any] | None = None,
    ):
        """`providers` for both sessions, or for the recognizer only with `detector_providers`."""
        import onnxruntime as ort

        try:
            from insightface.model_zoo import SCRFD, ArcFaceONNX
        except ImportError as exc:
            raise BenchError(
                "the benchmark's baseline needs insightface: pip install -c constraints.txt "
                "insightface==2.1"
            ) from exc

        def session(path: Path, chosen: Sequence[Any]) -> Any:
            options = settings.session_options()
            return ort.InferenceSession(str(path), options, providers=list(chosen))

        # insightface's norm_crop calls a scikit-image API deprecated since 0.26 on every face.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"insightface\.")
        # prepare(ctx_id < 0) resets every session to the CPU provider (insightface 2.1's
        # SCRFD and ArcFaceONNX); a user who gives insightface another provider prepares with
        # ctx_id 0, as its README does, and keeps it.
        detector_providers = providers if detector_providers is None else detector_providers
        named = [p if isinstance(p, str) else p[0] for p in (*providers, *detector_providers)]
        self._ctx_id = -1 if set(named) == {"CPUExecutionProvider"} else 0
        det_session = session(models.detector_onnx, detector_providers)
        self._detector = SCRFD(str(models.detector_onnx), session=det_session)
        size = spec.DETECTOR_INPUT_SIZE_PX
        self._detector.prepare(self._ctx_id, input_size=(size, size), det_thresh=DETECT_THRESHOLD)
        rec_session = session(models.recognizer_onnx, providers)
        self._recognizer = ArcFaceONNX(str(models.recognizer_onnx), session=rec_session)
        self._recognizer.prepare(self._ctx_id)

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

    def session_providers(self) -> dict[str, list[str]]:
        """The providers each of insightface's sessions really has (after a call, so SCRFD's
        static-shape sessions exist): its main detector session, one per frame size, the
        recognizer's."""
        found = {"detector": list(self._detector.session.get_providers())}
        # insightface 2.1's SCRFD opens a fixed-shape session per frame size; private API,
        # read only for the report (absent in other versions: left out then).
        pool = getattr(self._detector, "_resolution_session_pool", None)
        snapshot = getattr(pool, "snapshot", None)
        if callable(snapshot):
            for size, session in snapshot().items():
                if session is not self._detector.session:
                    label = "x".join(str(v) for v in size)
                    found[f"detector {label}"] = list(session.get_providers())
        found["recognizer"] = list(self._recognizer.session.get_providers())
        return found

    def prominent_face(self, img_bgr: npt.NDArray[np.uint8]) -> Any:
        """insightface's Face for the most prominent face (embedding set), or None."""
        from insightface.app.common import Face

        boxes, kps = self._detector.detect(img_bgr, max_num=1)
        if boxes.shape[0] == 0:
            return None
        face = Face(bbox=boxes[0, :4], kps=kps[0], det_score=boxes[0, 4])
        self._recognizer.get(img_bgr, face)
        return face

    def aligned_faces(self, jpeg: bytes, count: int) -> npt.NDArray[np.uint8]:
        """(count, 112, 112, 3) uint8 BGR: the faces found in `jpeg`, norm_crop-aligned, repeated."""
        from insightface.utils import face_align

        img_bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        _, kps = self._detector.detect(img_bgr, max_num=0)
        if kps is None or len(kps) == 0:
            raise BenchError("the detector found no face to align for the recognizer floor")
        size = spec.RECOGNIZER_INPUT_SIZE_PX
        crops = [face_align.norm_crop(img_bgr, landmark=k, image_size=size) for k in kps]
        faces_bgr: npt.NDArray[np.uint8] = np.stack([crops[i % len(crops)] for i in range(count)])
        return faces_bgr.astype(np.uint8, copy=False)


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
            # One detector size, as the in-process baseline runs (insightface's classic 640).
            params={"embed": "true", "det_sizes": str(spec.DETECTOR_INPUT_SIZE_PX)},
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


class GrpcDetect:
    """FaceClient.detect([jpeg], embed=True) straight to Triton, one client shared by all threads.

    The client runs the gateway's pipeline in this process (decode, letterbox, SCRFD decode,
    NMS, align) and sends the tensors over gRPC, or through system shared memory.
    """

    def __init__(self, triton_url: str, shared_memory: bool, shm_regions: int) -> None:
        from gateway.client import ClientOptions, FaceClient
        from gateway.errors import FacegateError

        # The client logs every registered region at INFO; the settings line says enough.
        logging.getLogger("gateway.triton.shared_memory").setLevel(logging.WARNING)
        options = ClientOptions(
            shm_regions_per_model=shm_regions, det_sizes=str(spec.DETECTOR_INPUT_SIZE_PX)
        )
        try:
            self._client = FaceClient(triton_url, use_shared_memory=shared_memory, options=options)
        except FacegateError as exc:
            raise BenchError(f"the gRPC client could not open: {exc}") from exc
        if self._client.shared_memory != shared_memory:
            self._client.close()
            raise BenchError(f"the gRPC client's shared memory is {self._client.shared_memory}")

    def __call__(self, jpeg: bytes) -> Outcome:
        from gateway.errors import FacegateError

        try:
            (faces,) = self._client.detect([jpeg], embed=True)
        except FacegateError as exc:
            raise BenchError(f"the gRPC client failed: {exc}") from exc
        found = int(faces.detections.boxes.shape[0])
        if faces.embeddings is None or faces.embeddings.shape[0] != found:
            raise BenchError("the gRPC client returned faces without embeddings")
        return Outcome(found, {})

    def close(self) -> None:
        self._client.close()


class FacesModelDetect:
    """FaceClient.detect_in_server([jpeg]): the bytes to Triton's in-server `faces` model.

    The pipeline runs inside Triton (Python backend, BLS calls to detector and recognizer);
    the client only sends the JPEG. One client shared by all threads.
    """

    def __init__(self, triton_url: str) -> None:
        from gateway.client import ClientOptions, FaceClient

        options = ClientOptions(det_sizes=str(spec.DETECTOR_INPUT_SIZE_PX))
        self._client = FaceClient(triton_url, use_shared_memory=False, options=options)

    def __call__(self, jpeg: bytes) -> Outcome:
        from gateway.errors import FacegateError

        try:
            (faces,) = self._client.detect_in_server([jpeg])
        except FacegateError as exc:
            raise BenchError(f"the faces model failed: {exc}") from exc
        found = int(faces.detections.boxes.shape[0])
        if faces.embeddings is None or faces.embeddings.shape[0] != found:
            raise BenchError("the faces model returned faces without embeddings")
        return Outcome(found, {})

    def close(self) -> None:
        self._client.close()
