"""Clients for high-throughput users: straight to Triton over gRPC, or through the REST gateway.

    FaceClient / AsyncFaceClient   gRPC to Triton, the gateway's pipeline in-process
                                   (optional Triton system shared memory on the same host)
    FaceRestClient                 the REST gateway (/v1/detect, /v1/verify, /v1/swap)

Results are the pipeline's frozen dataclasses: ImageFaces (detections in original-image
pixels, descending score; embeddings L2-normalised), Verification, SwapResult. Errors are
gateway.errors' tree. See docs/CLIENT.md.
"""

from ..errors import FacegateError, NoFaceFound, UpstreamUnavailable
from ..pipeline import ImageFaces, ImageInput, Verification
from ..processing import Detections
from ..swapping import SwapResult
from ._inputs import ClientOptions
from .aio import SWAPPER_HOW_TO_LOAD, AsyncFaceClient, SharedMemoryMode
from .rest import FaceRestClient, GatewayError, RestVerification
from .sync import FaceClient

__all__ = [
    "SWAPPER_HOW_TO_LOAD",
    "AsyncFaceClient",
    "ClientOptions",
    "Detections",
    "FaceClient",
    "FaceRestClient",
    "FacegateError",
    "GatewayError",
    "ImageFaces",
    "ImageInput",
    "NoFaceFound",
    "RestVerification",
    "SharedMemoryMode",
    "SwapResult",
    "UpstreamUnavailable",
    "Verification",
]
