"""InsightFace's own Python implementation, run in-process as the oracle.

FaceAnalysis' setting: SCRFD run at one or several square input sizes (insightface 2.1's
default is 128 and 640, merged by one NMS at 0.4), ArcFace crops by norm_crop's 5-point
template. The version is pinned: the constants and conventions the gateway reproduces are
insightface 2.1's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import insightface
import numpy as np
import numpy.typing as npt
from insightface.addons.liveness import Liveness
from insightface.app.common import Face
from insightface.model_zoo import SCRFD, ArcFaceONNX, Attribute, Landmark, model_zoo

INSIGHTFACE_VERSION = "2.1"
INPUT_SIZE_PX = (640, 640)
# FaceAnalysis' DEFAULT_DET_SIZES in insightface 2.1, as sides of square inputs.
DEFAULT_DET_SIZES = (128, 640)
NMS_IOU = 0.4


@dataclass(frozen=True)
class OracleFaces:
    """InsightFace's answer for one image, in its output order (score, or prominence).

    `boxes` float32 (N, 4) xyxy, `scores` (N,), `kps` (N, 5, 2), all in original-image
    pixels; `embeddings` float32 (N, 512), L2-normalised (Face.normed_embedding).
    """

    boxes: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    kps: npt.NDArray[np.float32]
    embeddings: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.scores.shape[0])


class InsightFaceOracle:
    """SCRFD.detect then ArcFaceONNX.get, as FaceAnalysis.get runs them."""

    def __init__(self, upstream_dir: Path) -> None:
        if insightface.__version__ != INSIGHTFACE_VERSION:
            raise RuntimeError(
                f"the fidelity oracle is insightface=={INSIGHTFACE_VERSION}; "
                f"{insightface.__version__} is installed"
            )
        self._detector_file = str(upstream_dir / "detector.onnx")
        self._detectors: dict[float, SCRFD] = {}
        self._recognizer = ArcFaceONNX(str(upstream_dir / "recognizer.onnx"))
        self._recognizer.prepare(-1)
        # genderage and liveness load on first use: some callers' folders hold only the
        # detector and the recognizer.
        self._upstream_dir = upstream_dir
        self._attribute: Attribute | None = None
        self._liveness: Liveness | None = None
        self._landmarks: dict[str, Landmark] = {}

    def _detector(self, threshold: float) -> SCRFD:
        if threshold not in self._detectors:
            detector = SCRFD(model_file=self._detector_file)
            detector.prepare(-1, input_size=INPUT_SIZE_PX, det_thresh=threshold, nms_thresh=NMS_IOU)
            self._detectors[threshold] = detector
        return self._detectors[threshold]

    def faces(
        self,
        img_bgr: npt.NDArray[np.uint8],
        threshold: float = 0.5,
        max_num: int = 0,
        det_sizes: tuple[int, ...] = DEFAULT_DET_SIZES,
    ) -> OracleFaces:
        """Detect (SCRFD.detect at each of `det_sizes`) and embed (ArcFaceONNX.get) every face."""
        sizes = [(size, size) for size in det_sizes]
        dets, kpss = self._detector(threshold).detect(img_bgr, input_size=sizes, max_num=max_num)
        embeddings = np.zeros((len(dets), 512), np.float32)
        for i, (det, kps) in enumerate(zip(dets, kpss, strict=True)):
            face = Face(bbox=det[:4], kps=kps, det_score=det[4])
            self._recognizer.get(img_bgr, face)
            embeddings[i] = face.normed_embedding
        return OracleFaces(
            boxes=dets[:, :4].astype(np.float32),
            scores=dets[:, 4].astype(np.float32),
            kps=np.asarray(kpss, np.float32).reshape(-1, 5, 2),
            embeddings=embeddings,
        )

    def embed_crops(self, crops_bgr: list[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
        """ArcFaceONNX.get_feat on aligned 112x112 crops, L2-normalised: float32 (N, 512)."""
        feats = np.asarray(self._recognizer.get_feat(crops_bgr), np.float32)
        return feats / np.linalg.norm(feats, axis=1, keepdims=True)

    def gender_age(
        self, img_bgr: npt.NDArray[np.uint8], faces: OracleFaces
    ) -> tuple[list[str], list[int]]:
        """Attribute.get per detected face, as FaceAnalysis.get runs it: Face.sex and age."""
        if self._attribute is None:
            self._attribute = Attribute(str(self._upstream_dir / "genderage.onnx"))
            self._attribute.prepare(-1)
        sexes, ages = [], []
        for box, kps, score in zip(faces.boxes, faces.kps, faces.scores, strict=True):
            face = Face(bbox=box, kps=kps, det_score=score)
            self._attribute.get(img_bgr, face)
            sexes.append(str(face.sex))
            ages.append(int(face.age))
        return sexes, ages

    def liveness(
        self, img_bgr: npt.NDArray[np.uint8], faces: OracleFaces
    ) -> list[dict[str, object]]:
        """The liveness addon's predict per detected face: status, is_live, live_score(, reason)."""
        if self._liveness is None:
            self._liveness = Liveness(
                str(self._upstream_dir / "liveness.onnx"), providers=["CPUExecutionProvider"]
            )
        return [dict(self._liveness.predict(img_bgr, kps)) for kps in faces.kps]

    def landmarks(
        self, img_bgr: npt.NDArray[np.uint8], boxes: npt.NDArray[np.float32], name: str
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]:
        """Landmark.get per box with the file `name`.onnx, loaded through insightface's model
        router (as FaceAnalysis loads a pack): points per face, and pose (N, 3) for 1k3d68."""
        if name not in self._landmarks:
            model = model_zoo.get_model(
                str(self._upstream_dir / f"{name}.onnx"), providers=["CPUExecutionProvider"]
            )
            assert isinstance(model, Landmark), f"insightface routes {name} to {type(model)}"
            model.prepare(-1)
            self._landmarks[name] = model
        model = self._landmarks[name]
        points, poses = [], []
        for box in boxes:
            face = Face(bbox=box)
            points.append(model.get(img_bgr, face))
            if model.require_pose:
                poses.append(face.pose)
        dims = model.lmk_dim
        stacked = np.asarray(points, np.float32).reshape(len(boxes), model.lmk_num, dims)
        return stacked, (
            np.asarray(poses, np.float32).reshape(-1, 3) if model.require_pose else None
        )
