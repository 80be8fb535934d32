"""Pure image and tensor processing around the Triton models: no I/O, settings or logging.

decode bytes -> letterbox -> (detector) -> postprocess_detections -> warp_faces ->
(recognizer) -> l2_normalize; for swaps, warp_faces at 128 -> (swapper) -> paste_face.
"""

from gateway.processing.align import (
    ARCFACE_TEMPLATE_112,
    AlignedFaces,
    estimate_affine,
    template_for,
    warp_face,
    warp_faces,
)
from gateway.processing.attributes import (
    FaceCrops,
    GenderAge,
    attribute_affine,
    crop_attribute_faces,
    decode_genderage,
)
from gateway.processing.decode import (
    CorruptImage,
    ImageError,
    ImageTooLarge,
    UnsupportedImageType,
    decode_image,
    sniff_format,
)
from gateway.processing.detections import (
    Detections,
    by_descending_score,
    drop_nonfinite,
    rescale_detections,
    select_faces,
)
from gateway.processing.embedding import average_identity, cosine_similarity, l2_normalize
from gateway.processing.landmarks import (
    LANDMARK_2D_POINTS,
    LANDMARK_3D_POINTS,
    DenseLandmarks,
    HeadPose,
    crop_landmark_faces,
    decode_landmarks_2d106,
    decode_landmarks_3d68,
    estimate_pose,
)
from gateway.processing.letterbox import Letterbox, letterbox_image, letterbox_size
from gateway.processing.liveness import (
    DEFAULT_LIVENESS_THRESHOLD,
    OUT_OF_BOUNDS_REASON,
    LivenessCrops,
    LivenessResult,
    crop_liveness_faces,
    liveness_result,
)
from gateway.processing.multiscale import (
    DEFAULT_DET_SIZES_PX,
    DetectorPass,
    merge_passes,
    parse_det_sizes,
    postprocess_detections,
)
from gateway.processing.nms import nms
from gateway.processing.paste import paste_face
from gateway.processing.quality import (
    QUALITY_LEVELS,
    FaceQuality,
    QualityBounds,
    QualityThresholds,
    box_sizes,
    crop_valid_masks,
    failed_components,
    grade_quality,
    measure_sharpness,
    meets_quality,
)
from gateway.processing.reduced import ReducedImage, decode_reduced, reduction_factor
from gateway.processing.render import draw_faces
from gateway.processing.scrfd import (
    SCRFD_ANCHORS_PER_CELL,
    SCRFD_INPUT_SIZE_PX,
    SCRFD_STRIDES,
    anchor_centres,
    decode_scrfd,
)

__all__ = [
    "ARCFACE_TEMPLATE_112",
    "DEFAULT_DET_SIZES_PX",
    "DEFAULT_LIVENESS_THRESHOLD",
    "LANDMARK_2D_POINTS",
    "LANDMARK_3D_POINTS",
    "OUT_OF_BOUNDS_REASON",
    "QUALITY_LEVELS",
    "SCRFD_ANCHORS_PER_CELL",
    "SCRFD_INPUT_SIZE_PX",
    "SCRFD_STRIDES",
    "AlignedFaces",
    "CorruptImage",
    "DenseLandmarks",
    "Detections",
    "DetectorPass",
    "FaceCrops",
    "FaceQuality",
    "GenderAge",
    "HeadPose",
    "ImageError",
    "ImageTooLarge",
    "Letterbox",
    "LivenessCrops",
    "LivenessResult",
    "QualityBounds",
    "QualityThresholds",
    "ReducedImage",
    "UnsupportedImageType",
    "anchor_centres",
    "attribute_affine",
    "average_identity",
    "box_sizes",
    "by_descending_score",
    "cosine_similarity",
    "crop_attribute_faces",
    "crop_landmark_faces",
    "crop_liveness_faces",
    "crop_valid_masks",
    "decode_genderage",
    "decode_image",
    "decode_landmarks_2d106",
    "decode_landmarks_3d68",
    "decode_reduced",
    "decode_scrfd",
    "draw_faces",
    "drop_nonfinite",
    "estimate_affine",
    "estimate_pose",
    "failed_components",
    "grade_quality",
    "l2_normalize",
    "letterbox_image",
    "letterbox_size",
    "liveness_result",
    "measure_sharpness",
    "meets_quality",
    "merge_passes",
    "nms",
    "parse_det_sizes",
    "paste_face",
    "postprocess_detections",
    "reduction_factor",
    "rescale_detections",
    "select_faces",
    "sniff_format",
    "template_for",
    "warp_face",
    "warp_faces",
]
