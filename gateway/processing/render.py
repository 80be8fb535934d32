"""Draw detections on an image: boxes, landmarks, scores and, when known, gender and age.

The look follows insightface's FaceAnalysis.draw_on (red boxes, landmark dots with the
image-left eye and mouth corner in green, "M,35" above the box), with the score added and
line widths that grow with the image so large photos stay readable.
"""

from __future__ import annotations

import cv2
import numpy as np

from gateway.processing._types import AnyFloatArray, UInt8Array
from gateway.processing.attributes import GenderAge
from gateway.processing.detections import Detections
from gateway.processing.landmarks import HeadPose
from gateway.processing.liveness import LivenessResult

BOX_BGR = (0, 0, 255)
TEXT_BGR = (0, 255, 0)
# insightface colours landmarks 0 and 3 (left eye, left mouth corner) green, others red.
GREEN_LANDMARKS = (0, 3)
# Dense (106-point) landmarks: small dots in a colour of their own.
DENSE_BGR = (255, 255, 0)


def draw_faces(
    img_bgr: UInt8Array,
    detections: Detections,
    gender_age: GenderAge | None = None,
    liveness: LivenessResult | None = None,
    dense_points: AnyFloatArray | None = None,
    pose: HeadPose | None = None,
) -> UInt8Array:
    """A copy of `img_bgr` (uint8 HxWx3) with every face of `detections` drawn on it.

    `detections` in original-image pixels; `gender_age` (same face order) adds "F,31"-style
    labels, `liveness` "live 0.93", "spoof 0.41" or "live n/a" (not scored),
    `dense_points` (N, P, 2+) small cyan dots (the 106 2-D landmarks), `pose` "p5 y-20 r3"
    (pitch, yaw, roll in degrees). The input is not modified.
    """
    canvas = np.ascontiguousarray(img_bgr.copy())
    unit = max(1, round(max(canvas.shape[:2]) / 640))
    font_scale = 0.5 * unit
    labels = gender_age.labels() if gender_age is not None else None
    for index in range(len(detections)):
        x1, y1, x2, y2 = (round(float(v)) for v in detections.boxes[index])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_BGR, 2 * unit)
        for point, (x, y) in enumerate(detections.kps[index]):
            colour = TEXT_BGR if point in GREEN_LANDMARKS else BOX_BGR
            cv2.circle(canvas, (round(float(x)), round(float(y))), unit, colour, 2 * unit)
        if dense_points is not None:
            for x, y in np.asarray(dense_points[index])[:, :2]:
                cv2.circle(canvas, (round(float(x)), round(float(y))), unit, DENSE_BGR, -1)
        text = f"{float(detections.scores[index]):.2f}"
        if labels is not None and gender_age is not None:
            text = f"{labels[index]},{int(gender_age.ages[index])} {text}"
        if liveness is not None:
            if liveness.rejected[index]:
                text += " live n/a"
            else:
                verdict = "live" if liveness.is_live[index] else "spoof"
                text += f" {verdict} {float(liveness.scores[index]):.2f}"
        if pose is not None:
            text += (
                f" p{float(pose.pitch[index]):.0f} y{float(pose.yaw[index]):.0f}"
                f" r{float(pose.roll[index]):.0f}"
            )
        baseline_y = y1 - 4 * unit if y1 - 4 * unit > 12 * unit else y2 + 16 * unit
        cv2.putText(
            canvas,
            text,
            (x1, baseline_y),
            cv2.FONT_HERSHEY_COMPLEX,
            font_scale,
            TEXT_BGR,
            unit,
            cv2.LINE_AA,
        )
    return canvas
