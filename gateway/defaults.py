"""Defaults shared by the gateway's Settings and the SDK's ClientOptions.

Both paths give the same answers for the same images because they start from these
numbers; the SDK never reads the server's Settings.
"""

from __future__ import annotations

from gateway.processing.liveness import DEFAULT_LIVENESS_THRESHOLD
from gateway.processing.multiscale import DEFAULT_DET_SIZES_PX
from gateway.processing.quality import QualityBounds, QualityThresholds

# InsightFace's classic buffalo_l setting: detection score 0.5, NMS IoU 0.4; cosine
# similarity 0.3 is a common verification threshold for ArcFace (w600k_r50).
DETECT_THRESHOLD = 0.5
NMS_IOU = 0.4
VERIFY_THRESHOLD = 0.3
# insightface 2.1's FaceAnalysis: detector passes at 128 and 640 px, live at score >= 0.8.
DET_SIZES = ",".join(str(s) for s in DEFAULT_DET_SIZES_PX)
LIVENESS_THRESHOLD = DEFAULT_LIVENESS_THRESHOLD
MAX_IMAGE_PIXELS = 40_000_000
# Bounds of the per-request detection options, the same for /v1/detect and the in-server
# `faces` model (gateway/inserver/parameters.py).
MAX_FACES_LIMIT = 1000
MIN_SIZE_LIMIT_PX = 100_000.0
DET_SIZES_MAX_CHARS = 64
TRITON_TIMEOUT_S = 10.0
TRITON_UNAVAILABLE_RETRIES = 2
SWAPPER_LOAD_TIMEOUT_S = 120.0
# Grouping faces into people (/v1/group, cluster): cosine distance within which two faces
# may be one person (similarity 0.5, as Immich's maxDistance), the smallest group, and the
# most faces one /v1/group call takes (as Azure Face's Group; a dense matrix beyond that).
GROUP_MAX_DISTANCE = 0.5
GROUP_MIN_FACES = 2
CLUSTER_MIN_FACES = 3
MAX_GROUP_EMBEDDINGS = 1000
# Face quality for recognition (/v1/detect?quality=true, the enrolment gate min_quality): the
# bounds of "medium" and "high" (shorter box side px, sharpness, pose degrees); how they were
# measured is in docs/QUALITY.md.
QUALITY_THRESHOLDS = QualityThresholds(
    medium=QualityBounds(min_size_px=24.0, min_sharpness=2.0, max_pose_deg=45.0),
    high=QualityBounds(min_size_px=48.0, min_sharpness=7.0, max_pose_deg=25.0),
)
