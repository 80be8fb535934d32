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
    drop_nonfinite,
    rescale_detections,
    select_faces,
)
from gateway.processing.embedding import average_identity, cosine_similarity, l2_normalize
from gateway.processing.letterbox import Letterbox, letterbox_image, letterbox_size
from gateway.processing.nms import nms
from gateway.processing.paste import paste_face
from gateway.processing.scrfd import (
    SCRFD_ANCHORS_PER_CELL,
    SCRFD_INPUT_SIZE_PX,
    SCRFD_STRIDES,
    anchor_centres,
    decode_scrfd,
    postprocess_detections,
)

__all__ = [
    "ARCFACE_TEMPLATE_112",
    "SCRFD_ANCHORS_PER_CELL",
    "SCRFD_INPUT_SIZE_PX",
    "SCRFD_STRIDES",
    "AlignedFaces",
    "CorruptImage",
    "Detections",
    "ImageError",
    "ImageTooLarge",
    "Letterbox",
    "UnsupportedImageType",
    "anchor_centres",
    "average_identity",
    "cosine_similarity",
    "decode_image",
    "decode_scrfd",
    "drop_nonfinite",
    "estimate_affine",
    "l2_normalize",
    "letterbox_image",
    "letterbox_size",
    "nms",
    "paste_face",
    "postprocess_detections",
    "rescale_detections",
    "select_faces",
    "sniff_format",
    "template_for",
    "warp_face",
    "warp_faces",
]
