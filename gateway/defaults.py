"""Defaults shared by the gateway's Settings and the SDK's ClientOptions.

Both paths give the same answers for the same images because they start from these
numbers; the SDK never reads the server's Settings.
"""

from __future__ import annotations

# InsightFace's classic buffalo_l setting: detection score 0.5, NMS IoU 0.4; cosine
# similarity 0.3 is a common verification threshold for ArcFace (w600k_r50).
DETECT_THRESHOLD = 0.5
NMS_IOU = 0.4
VERIFY_THRESHOLD = 0.3
MAX_IMAGE_PIXELS = 40_000_000
TRITON_TIMEOUT_S = 10.0
TRITON_UNAVAILABLE_RETRIES = 2
SWAPPER_LOAD_TIMEOUT_S = 120.0
