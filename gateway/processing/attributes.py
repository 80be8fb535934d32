"""Gender and age: insightface's Attribute crop and decoding, as pure functions.

insightface (model_zoo/attribute.py) crops a face for genderage.onnx without landmarks: a
square centred on the box, 1.5 times the box's longer side, scaled to the model's 96 px, no
rotation, warped with cv2.warpAffine (bilinear, black border). The model answers
[female score, male score, age / 100]; gender is the argmax of the two scores (1 = male,
insightface's Face.sex 'M'), age is round(age / 100 * 100).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from gateway.processing._types import AnyFloatArray, Float64Array, UInt8Array

# insightface's Attribute.get: the crop covers 1.5x the box's longer side.
ATTRIBUTE_CROP_FACTOR = 1.5
GENDER_LABELS = ("F", "M")


@dataclass(frozen=True)
class FaceCrops:
    """Crops for an attribute model: uint8 BGR (N, S, S, 3) and their affines (N, 2, 3)."""

    crops_bgr: UInt8Array
    affines: Float64Array


@dataclass(frozen=True)
class GenderAge:
    """Decoded genderage predictions: `genders` int (N,) 0 = female, 1 = male; `ages` int (N,)."""

    genders: npt.NDArray[np.int64]
    ages: npt.NDArray[np.int64]

    def labels(self) -> list[str]:
        """Gender as insightface's Face.sex spells it: "F" or "M" per face."""
        return [GENDER_LABELS[int(g)] for g in self.genders]


def attribute_affine(box: AnyFloatArray, size_px: int) -> Float64Array:
    """The (2, 3) float64 affine from image pixels to a size_px crop for one xyxy `box`.

    Scale s = size_px / (1.5 * max(w, h)); the box centre lands on the crop centre
    (size_px / 2, size_px / 2): the composition insightface's face_align.transform builds
    with rotation 0.
    """
    # Arithmetic in the box's own dtype (float32 from the detector), as upstream, so the
    # crop lands on the same sub-pixel position.
    width, height = box[2] - box[0], box[3] - box[1]
    centre_x, centre_y = (box[2] + box[0]) / 2, (box[3] + box[1]) / 2
    scale = float(size_px / (max(width, height) * ATTRIBUTE_CROP_FACTOR))
    half = size_px / 2
    return np.array(
        [
            [scale, 0.0, half - float(centre_x * scale)],
            [0.0, scale, half - float(centre_y * scale)],
        ],
        dtype=np.float64,
    )


def crop_attribute_faces(img_bgr: UInt8Array, boxes: AnyFloatArray, size_px: int) -> FaceCrops:
    """Box-centred square crops of `img_bgr` (uint8 HxWx3) for `boxes` (N, 4) xyxy."""
    crops = np.zeros((len(boxes), size_px, size_px, 3), np.uint8)
    affines = np.zeros((len(boxes), 2, 3), np.float64)
    for index, box in enumerate(boxes):
        affines[index] = attribute_affine(box, size_px)
        crops[index] = cv2.warpAffine(
            img_bgr, affines[index], (size_px, size_px), borderValue=(0.0, 0.0, 0.0, 0.0)
        )
    return FaceCrops(crops, affines)


def decode_genderage(predictions: AnyFloatArray) -> GenderAge:
    """Gender and age from genderage.onnx's raw (N, 3) output.

    Ties between the two gender scores go to female, as np.argmax's first index does upstream.
    """
    preds = np.asarray(predictions, dtype=np.float32).reshape(-1, 3)
    genders = np.argmax(preds[:, :2], axis=1).astype(np.int64)
    # Upstream's int(np.round(pred[2] * 100)): round half to even, in float32.
    ages = np.round(preds[:, 2] * 100).astype(np.int64)
    return GenderAge(genders, ages)
