"""Dense landmarks and head pose: insightface's Landmark crop and decoding, as pure functions.

insightface (model_zoo/landmark.py) crops a face for 2d106det.onnx and 1k3d68.onnx as its
Attribute does for genderage: a square centred on the box, 1.5 times the box's longer side,
scaled to the model's 192 px, no rotation (processing/attributes.py builds that affine). The
models answer points in crop units of [-1, 1]: x_px = (x + 1) * 96, the same for y and, for
1k3d68, for z; the points go back to the image through the inverse affine (z scaled by its
scale). 1k3d68 answers 1103 points of which insightface keeps the last 68. Head pose is the
rotation of the affine camera that maps insightface's mean shape onto those 68 points (least
squares), as Euler angles in degrees: pitch, yaw, roll (transform.matrix2angle).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from gateway.processing._types import AnyFloatArray, Float32Array, UInt8Array
from gateway.processing.attributes import FaceCrops, crop_attribute_faces
from gateway.processing.meanshape import MEANSHAPE_68

LANDMARK_2D_POINTS = 106
LANDMARK_3D_POINTS = 68
# Below this, matrix2angle treats the rotation as singular (gimbal lock).
_SINGULAR_SY = 1e-6


@dataclass(frozen=True)
class DenseLandmarks:
    """Decoded landmarks in original-image pixels: float32 (N, P, 2) or (N, P, 3) points."""

    points: Float32Array


@dataclass(frozen=True)
class HeadPose:
    """Head pose per face in degrees: float32 (N,) `pitch`, `yaw`, `roll` (insightface's order)."""

    pitch: Float32Array
    yaw: Float32Array
    roll: Float32Array

    def max_abs_degrees(self) -> Float32Array:
        """max(|yaw|, |pitch|) per face (N,): how far the face turns from the camera."""
        return np.maximum(np.abs(self.yaw), np.abs(self.pitch)).astype(np.float32)


def crop_landmark_faces(img_bgr: UInt8Array, boxes: AnyFloatArray, size_px: int) -> FaceCrops:
    """Landmark crops of `img_bgr` (uint8 HxWx3) for `boxes` (N, 4) xyxy: (N, S, S, 3) + affines.

    insightface's Landmark.get uses the crop of its Attribute.get (face_align.transform with
    centre, 1.5x the longer side, rotation 0), at the landmark model's size.
    """
    return crop_attribute_faces(img_bgr, boxes, size_px)


def decode_landmarks(
    predictions: AnyFloatArray, affines: AnyFloatArray, size_px: int, dims: int, points: int
) -> DenseLandmarks:
    """Points in image pixels from a landmark model's raw (N, K * dims) output.

    `affines` (N, 2, 3) map image pixels to the crop (as crop_landmark_faces returns them);
    the last `points` of the K decoded points are kept (1k3d68: 68 of 1103). z, when dims is 3,
    is scaled like x and y (crop units * size / 2, then by the inverse affine's scale).
    """
    count = len(affines)
    values = np.asarray(predictions, dtype=np.float32)
    # (N, K * dims) rows; with no faces the row width is the array's last axis.
    flat = values.reshape(count, values.size // count if count else values.shape[-1])
    preds = flat.reshape(count, flat.shape[1] // dims, dims)[:, -points:, :]
    # Upstream arithmetic in float32: (p + 1) * (size // 2).
    half = np.float32(size_px // 2)
    crop = preds.copy()
    crop[:, :, 0:2] = (crop[:, :, 0:2] + np.float32(1)) * half
    if dims == 3:
        crop[:, :, 2] *= half
    out = np.zeros_like(crop)
    for index in range(count):
        inverse = cv2.invertAffineTransform(np.asarray(affines[index], np.float64))
        homogeneous = np.concatenate(
            [crop[index, :, 0:2].astype(np.float64), np.ones((crop.shape[1], 1))], axis=1
        )
        out[index, :, 0:2] = homogeneous @ inverse.T
        if dims == 3:
            scale = math.sqrt(inverse[0, 0] ** 2 + inverse[0, 1] ** 2)
            out[index, :, 2] = crop[index, :, 2].astype(np.float64) * scale
    return DenseLandmarks(out)


def decode_landmarks_2d106(
    predictions: AnyFloatArray, affines: AnyFloatArray, size_px: int
) -> DenseLandmarks:
    """2d106det's raw (N, 212) output -> (N, 106, 2) points in image pixels."""
    return decode_landmarks(predictions, affines, size_px, 2, LANDMARK_2D_POINTS)


def decode_landmarks_3d68(
    predictions: AnyFloatArray, affines: AnyFloatArray, size_px: int
) -> DenseLandmarks:
    """1k3d68's raw (N, 3309) output -> (N, 68, 3) points in image pixels (z at the same scale)."""
    return decode_landmarks(predictions, affines, size_px, 3, LANDMARK_3D_POINTS)


def _rotation_degrees(points: AnyFloatArray) -> tuple[float, float, float]:
    """Pitch, yaw, roll of the affine camera fitting MEANSHAPE_68 to (68, 3) `points`."""
    # estimate_affine_matrix_3d23d: least squares Y = P X with X homogeneous, P (3, 4).
    mean = MEANSHAPE_68.astype(np.float64)
    homogeneous = np.concatenate([mean, np.ones((len(mean), 1))], axis=1)
    camera = np.linalg.lstsq(homogeneous, np.asarray(points, np.float64), rcond=None)[0].T
    # P2sRt: the rotation's first two rows are P's normalised; the third is their cross product.
    row1 = camera[0, :3] / np.linalg.norm(camera[0, :3])
    row2 = camera[1, :3] / np.linalg.norm(camera[1, :3])
    rotation = np.stack([row1, row2, np.cross(row1, row2)])
    # matrix2angle.
    sy = math.sqrt(rotation[0, 0] ** 2 + rotation[1, 0] ** 2)
    if sy >= _SINGULAR_SY:
        pitch = math.atan2(rotation[2, 1], rotation[2, 2])
        roll = math.atan2(rotation[1, 0], rotation[0, 0])
    else:
        pitch = math.atan2(-rotation[1, 2], rotation[1, 1])
        roll = 0.0
    yaw = math.atan2(-rotation[2, 0], sy)
    return math.degrees(pitch), math.degrees(yaw), math.degrees(roll)


def estimate_pose(points_3d: AnyFloatArray) -> HeadPose:
    """Head pose from decoded 1k3d68 points (N, 68, 3) in image pixels (insightface's Landmark)."""
    angles = np.array([_rotation_degrees(p) for p in points_3d], np.float32).reshape(-1, 3)
    return HeadPose(angles[:, 0].copy(), angles[:, 1].copy(), angles[:, 2].copy())
