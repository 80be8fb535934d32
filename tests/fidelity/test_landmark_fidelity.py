"""dense_landmarks=true and pose=true against insightface 2.1's Landmark on the same files.

The oracle loads the upstream-form stand-ins through insightface's model router (which must
send them to Landmark, as it sends buffalo_l's 2d106det.onnx and 1k3d68.onnx) and runs
Landmark.get on its own detections; the gateway's points must be within 0.1 px and its pose
within 0.5 degrees, at one detector scale and at insightface 2.1's two. The same comparison
rejects the gateway's own crop with a planted error (a BGR crop fed where the graph wants
RGB order after its swap, a box shifted by 1 px), so it can fail.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
from insightface.data import get_object

from gateway import processing
from gateway.processing.meanshape import MEANSHAPE_68
from gateway.triton import spec

from .oracle import InsightFaceOracle
from .scenes import square_scene
from .test_insightface_fidelity import BgrImage, match_faces, photo_case, png, spread_squares

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:`estimate` is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:`rcond` parameter will change:FutureWarning"),
]

MAX_POINT_PX = 0.1
MAX_POSE_DEG = 0.5


def cases() -> list[BgrImage]:
    return [
        square_scene(w, h, spread_squares(w, h)) for w, h in [(640, 640), (1280, 960), (500, 900)]
    ] + [photo_case("astronaut", "framed")[0]]


def point_error(got: npt.NDArray[np.floating], want: npt.NDArray[np.floating]) -> float:
    """Largest distance between corresponding points, x/y (and z) alike."""
    return float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))))


@pytest.mark.parametrize("det_sizes", ["640", "128,640"], ids=["single-scale", "two-scale"])
def test_points_and_pose_match_insightface(
    client: httpx.Client, oracle: InsightFaceOracle, det_sizes: str
) -> None:
    worst_points = worst_pose = 0.0
    compared = 0
    poses: list[float] = []
    for img in cases():
        sizes = tuple(int(s) for s in det_sizes.split(","))
        faces = oracle.faces(img, det_sizes=sizes)
        want_2d, _ = oracle.landmarks(img, faces.boxes, spec.LANDMARK_2D106)
        want_3d, want_pose = oracle.landmarks(img, faces.boxes, spec.LANDMARK_3D68)
        assert want_pose is not None

        response = client.post(
            "/v1/detect",
            params={"dense_landmarks": "true", "pose": "true", "det_sizes": det_sizes},
            files={"image": ("i.png", png(img))},
        )

        assert response.status_code == 200, response.text
        got = response.json()["faces"]
        assert len(got) == len(faces)
        for r, c in match_faces(got, faces.boxes):
            face = got[r]
            worst_points = max(
                worst_points,
                point_error(face["landmarks_2d_106"], want_2d[c]),
                point_error(face["landmarks_3d_68"], want_3d[c]),
            )
            mine = [face["pose"][k] for k in ("pitch", "yaw", "roll")]
            worst_pose = max(worst_pose, point_error(mine, want_pose[c]))
            poses.append(face["pose"]["yaw"])
            compared += 1
    assert worst_points <= MAX_POINT_PX, worst_points
    assert worst_pose <= MAX_POSE_DEG, worst_pose
    # Not vacuous: many faces, and poses that differ between them.
    assert compared >= 15 and np.ptp(poses) > 1.0, (compared, poses)


def _served(repository: Path, name: str) -> ort.InferenceSession:
    path = repository / name / "1" / "model.onnx"
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def gateway_points(
    repository: Path, img: BgrImage, boxes: npt.NDArray[np.float32], plant: str | None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The gateway's crop and decode on the served 1k3d68, with an optional planted error."""
    if plant == "box_shift":
        boxes = boxes + np.float32(1.0)
    crops = processing.crop_landmark_faces(img, boxes, spec.LANDMARK_INPUT_SIZE_PX)
    pixels = crops.crops_bgr[..., ::-1] if plant == "bgr" else crops.crops_bgr
    session = _served(repository, spec.LANDMARK_3D68)
    (raw,) = session.run(None, {spec.LANDMARK_INPUT.name: np.ascontiguousarray(pixels)})
    points = processing.decode_landmarks_3d68(raw, crops.affines, spec.LANDMARK_INPUT_SIZE_PX)
    pose = processing.estimate_pose(points.points)
    return points.points, np.stack([pose.pitch, pose.yaw, pose.roll], axis=1)


@pytest.mark.parametrize("plant", [None, "bgr", "box_shift"])
def test_a_planted_error_fails_the_comparison(
    oracle: InsightFaceOracle, tiny_repository: Path, plant: str | None
) -> None:
    img = square_scene(640, 640, spread_squares(640, 640))
    faces = oracle.faces(img)
    want_points, want_pose = oracle.landmarks(img, faces.boxes, spec.LANDMARK_3D68)
    assert want_pose is not None

    points, pose = gateway_points(tiny_repository, img, faces.boxes, plant)

    passes = (
        point_error(points, want_points) <= MAX_POINT_PX
        and point_error(pose, want_pose) <= MAX_POSE_DEG
    )
    assert passes is (plant is None), (plant, point_error(points, want_points))


def test_the_mean_shape_is_insightfaces() -> None:
    assert np.array_equal(MEANSHAPE_68, get_object("meanshape_68.pkl"))
