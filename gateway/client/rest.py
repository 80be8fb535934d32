"""FaceRestClient: a small blocking client for apps that use the REST gateway.

Answers come back as the direct client's types (ImageFaces, SwapResult) so an app can move
between the two; error bodies become the gateway's error tree again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import cv2
import httpx
import numpy as np
import numpy.typing as npt

from gateway import errors
from gateway.client._inputs import NO_ANALYSIS, Analysis
from gateway.processing import (
    DEFAULT_LIVENESS_THRESHOLD,
    Detections,
    FaceQuality,
    GenderAge,
    HeadPose,
    LivenessResult,
)
from gateway.processing.attributes import GENDER_LABELS
from gateway.service.landmarks import FaceLandmarks
from gateway.service.pipeline import ImageFaces
from gateway.service.swap import SwapResult, encode_image

# Error codes -> the gateway's error classes: the same registry the gateway answers from.
_ERRORS = errors.error_by_code()
R = TypeVar("R")


class GatewayError(errors.FacegateError):
    """An error answer outside the gateway's tree (405, a proxy's 502 page, ...)."""

    def __init__(self, message: str, *, code: str, status_code: int) -> None:
        super().__init__(message)
        self.code = code
        self.status_code = status_code


@dataclass(frozen=True)
class RestVerification:
    """/v1/verify's answer: the similarity and each image's most prominent face."""

    similarity: float
    threshold: float
    match: bool
    face_a: Detections
    face_b: Detections


@dataclass(frozen=True)
class GroupedFace:
    """A face of an uploaded image in a /v1/group answer: image index, face index (by
    score) and its xyxy box in original-image pixels."""

    image: int
    face: int
    bbox: tuple[float, float, float, float]


@dataclass(frozen=True)
class FaceGroups(Generic[R]):
    """/v1/group's answer: groups of faces (largest first) and the faces in no group."""

    groups: list[list[R]]
    ungrouped: list[R]


def _file(image: bytes | npt.NDArray[np.uint8]) -> bytes:
    return image if isinstance(image, bytes) else encode_image(image, "png", 100)


def _detections(faces: list[dict[str, Any]]) -> Detections:
    if not faces:
        return Detections.empty()
    return Detections(
        boxes=np.array([f["bbox"] for f in faces], np.float32).reshape(-1, 4),
        scores=np.array([f["score"] for f in faces], np.float32),
        kps=np.array([f["landmarks"] for f in faces], np.float32).reshape(-1, 5, 2),
    )


def _liveness(faces: list[dict[str, Any]], threshold: float) -> LivenessResult:
    scores = [f["liveness"]["score"] for f in faces]
    values = np.array([np.nan if s is None else s for s in scores], np.float32)
    return LivenessResult(values, threshold)


def _landmarks(faces: list[dict[str, Any]], analysis: Analysis) -> FaceLandmarks | None:
    if not (analysis.dense_landmarks or analysis.pose):
        return None
    points_2d = points_3d = pose = None
    if analysis.dense_landmarks:
        points_2d = np.array([f["landmarks_2d_106"] for f in faces], np.float32).reshape(-1, 106, 2)
        points_3d = np.array([f["landmarks_3d_68"] for f in faces], np.float32).reshape(-1, 68, 3)
    if analysis.pose:
        angles = np.array(
            [[f["pose"][k] for k in ("pitch", "yaw", "roll")] for f in faces], np.float32
        ).reshape(-1, 3)
        pose = HeadPose(angles[:, 0].copy(), angles[:, 1].copy(), angles[:, 2].copy())
    return FaceLandmarks(points_2d, points_3d, pose)


def _quality(faces: list[dict[str, Any]]) -> FaceQuality:
    def column(key: str) -> npt.NDArray[np.float32]:
        values = [f["quality"].get(key) for f in faces]
        return np.array([np.nan if v is None else v for v in values], np.float32)

    levels = tuple(str(f["quality"]["for_recognition"]) for f in faces)
    return FaceQuality(column("norm"), column("size"), column("sharpness"), column("pose"), levels)


def _image_faces(
    body: dict[str, Any],
    embed: bool,
    attributes: bool = False,
    liveness_threshold: float | None = None,
    analysis: Analysis = NO_ANALYSIS,
) -> ImageFaces:
    faces = body["faces"]
    embeddings = norms = None
    if embed:
        embeddings = np.array([f["embedding"] for f in faces], np.float32).reshape(-1, 512)
        norms = np.array([f["embedding_norm"] for f in faces], np.float32)
    gender_age = None
    if attributes:
        gender_age = GenderAge(
            np.array([GENDER_LABELS.index(f["gender"]) for f in faces], np.int64),
            np.array([f["age"] for f in faces], np.int64),
        )
    return ImageFaces(
        body["width"],
        body["height"],
        _detections(faces),
        embeddings,
        norms,
        gender_age,
        None if liveness_threshold is None else _liveness(faces, liveness_threshold),
        _landmarks(faces, analysis),
        _quality(faces) if analysis.quality else None,
    )


class FaceRestClient:
    """/v1/detect, /v1/detect/batch, /v1/verify, /v1/swap and /v1/group of a facegate gateway.

    `api_key` is sent as X-API-Key. Images are encoded bytes or uint8 BGR arrays (sent as PNG).
    """

    def __init__(
        self,
        url: str = "http://localhost:8080",
        *,
        api_key: str = "",
        timeout_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(
            base_url=url, headers=headers, timeout=timeout_s, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FaceRestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(
        self, path: str, files: list[tuple[str, bytes]], params: dict[str, Any]
    ) -> httpx.Response:
        return self._request("POST", path, files=files, params=params)

    def _request(
        self,
        method: str,
        path: str,
        *,
        files: list[tuple[str, bytes]] | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """One call; an error answer is raised as the gateway's error class for its code."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        response = self._http.request(method, path, files=files or None, params=query, json=json)
        if response.is_success:
            return response
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", response.text[:500]
        cls = _ERRORS.get(code)
        if cls is not None:
            raise cls(message)
        raise GatewayError(message, code=code, status_code=response.status_code)

    def detect(
        self,
        image: bytes | npt.NDArray[np.uint8],
        *,
        embed: bool = False,
        threshold: float | None = None,
        max_faces: int = 0,
        min_size_px: float = 0.0,
        det_sizes: str | Sequence[int] | None = None,
        attributes: bool = False,
        liveness: bool = False,
        liveness_threshold: float = DEFAULT_LIVENESS_THRESHOLD,
        dense_landmarks: bool = False,
        pose: bool = False,
        quality: bool = False,
    ) -> ImageFaces:
        """POST /v1/detect: faces in descending score, original-image pixels.

        `det_sizes`: detector frame sides such as "640" or (128, 640); None = the gateway's.
        `attributes`: gender and age per face (ImageFaces.attributes); `liveness`: the
        liveness addon's scores, live at `liveness_threshold` (ImageFaces.liveness).
        `dense_landmarks`, `pose`: ImageFaces.landmarks; `quality`: ImageFaces.quality.
        """
        params = _detect_params(embed, threshold, max_faces, min_size_px, det_sizes)
        params["attributes"] = str(attributes).lower()
        params["liveness"] = str(liveness).lower()
        params["liveness_threshold"] = liveness_threshold
        analysis = Analysis(dense_landmarks, pose, quality)
        for name, value in vars(analysis).items():
            params[name] = str(value).lower()
        response = self._post("/v1/detect", [("image", _file(image))], params)
        live_at = liveness_threshold if liveness else None
        return _image_faces(response.json(), embed, attributes, live_at, analysis)

    def detect_batch(
        self,
        images: Sequence[bytes | npt.NDArray[np.uint8]],
        *,
        embed: bool = False,
        threshold: float | None = None,
        max_faces: int = 0,
        min_size_px: float = 0.0,
        det_sizes: str | Sequence[int] | None = None,
        attributes: bool = False,
    ) -> list[ImageFaces]:
        """POST /v1/detect/batch (at most the gateway's batch limit, 16 by default)."""
        params = _detect_params(embed, threshold, max_faces, min_size_px, det_sizes)
        params["attributes"] = str(attributes).lower()
        files = [("images", _file(image)) for image in images]
        response = self._post("/v1/detect/batch", files, params)
        return [_image_faces(body, embed, attributes) for body in response.json()["results"]]

    def embed_crops(
        self, crops: Sequence[bytes | npt.NDArray[np.uint8]]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """POST /v1/embed: (N, 512) unit embeddings and (N,) raw norms of aligned 112x112 crops."""
        body = self._post("/v1/embed", [("images", _file(c)) for c in crops], {}).json()
        return (
            np.array(body["embeddings"], np.float32).reshape(-1, 512),
            np.array(body["embedding_norms"], np.float32),
        )

    def verify(
        self,
        image_a: bytes | npt.NDArray[np.uint8],
        image_b: bytes | npt.NDArray[np.uint8],
        *,
        threshold: float | None = None,
        det_sizes: str | Sequence[int] | None = None,
    ) -> RestVerification:
        """POST /v1/verify."""
        files = [("image_a", _file(image_a)), ("image_b", _file(image_b))]
        params = {"threshold": threshold, "det_sizes": _det_sizes_param(det_sizes)}
        body = self._post("/v1/verify", files, params).json()
        return RestVerification(
            body["similarity"],
            body["threshold"],
            body["match"],
            _detections([body["face_a"]]),
            _detections([body["face_b"]]),
        )

    def swap(
        self,
        source: bytes | npt.NDArray[np.uint8] | Sequence[bytes | npt.NDArray[np.uint8]],
        target: bytes | npt.NDArray[np.uint8],
        *,
        source_face: int | None = None,
        target_face: int | Literal["all"] | None = None,
        threshold: float | None = None,
    ) -> SwapResult:
        """POST /v1/swap (PNG, lossless): the target img_bgr with the face(s) swapped."""
        sources = [source] if isinstance(source, bytes | np.ndarray) else list(source)
        files = [("source", _file(s)) for s in sources] + [("target", _file(target))]
        params = {
            "source_face": source_face,
            "target_face": target_face,
            "threshold": threshold,
            "format": "png",
        }
        response = self._post("/v1/swap", files, params)
        decoded = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:
            raise errors.UpstreamFailed("the gateway's swap answer is not an image")
        img_bgr: npt.NDArray[np.uint8] = decoded.astype(np.uint8, copy=False)
        return SwapResult(img_bgr, int(response.headers.get("X-Faces-Swapped", "0")))

    def group_embeddings(
        self,
        embeddings: npt.ArrayLike,
        *,
        max_distance: float | None = None,
        min_faces: int | None = None,
    ) -> FaceGroups[int]:
        """POST /v1/group with (N, 512) embeddings, 2 <= N <= 1000: groups of row indices."""
        rows = np.asarray(embeddings, np.float32).reshape(-1, 512).tolist()
        params = {"max_distance": max_distance, "min_faces": min_faces}
        body = self._request("POST", "/v1/group", params=params, json={"embeddings": rows}).json()
        return FaceGroups(body["groups"], body["ungrouped"])

    def group_images(
        self,
        images: Sequence[bytes | npt.NDArray[np.uint8]],
        *,
        max_distance: float | None = None,
        min_faces: int | None = None,
        det_sizes: str | Sequence[int] | None = None,
    ) -> FaceGroups[GroupedFace]:
        """POST /v1/group with up to 16 images: every face of each, grouped into people."""
        params = {
            "max_distance": max_distance,
            "min_faces": min_faces,
            "det_sizes": _det_sizes_param(det_sizes),
        }
        body = self._post("/v1/group", [("images", _file(i)) for i in images], params).json()

        def face(ref: dict[str, Any]) -> GroupedFace:
            box = ref["bbox"]
            return GroupedFace(ref["image"], ref["face"], (box[0], box[1], box[2], box[3]))

        return FaceGroups(
            [[face(r) for r in group] for group in body["groups"]],
            [face(r) for r in body["ungrouped"]],
        )

    def load_swapper(self) -> None:
        """POST /v1/models/swapper/load (an admin key): returns once the swapper is ready."""
        self._post("/v1/models/swapper/load", [], {})


def _det_sizes_param(det_sizes: str | Sequence[int] | None) -> str | None:
    if det_sizes is None or isinstance(det_sizes, str):
        return det_sizes
    return ",".join(str(int(s)) for s in det_sizes)


def _detect_params(
    embed: bool,
    threshold: float | None,
    max_faces: int,
    min_size_px: float,
    det_sizes: str | Sequence[int] | None = None,
) -> dict[str, Any]:
    return {
        "embed": str(embed).lower(),
        "threshold": threshold,
        "max_faces": max_faces,
        "min_size": min_size_px,
        "landmarks": "true",
        "det_sizes": _det_sizes_param(det_sizes),
    }
