"""Clients for high-throughput users: straight to Triton over gRPC, or through the REST gateway.

    FaceClient / AsyncFaceClient   gRPC to Triton, the gateway's pipeline in-process
                                   (optional Triton system shared memory on the same host)
    FaceRestClient                 the REST gateway (/v1/detect, /v1/verify, /v1/swap, /v1/group)

Results are the pipeline's frozen dataclasses: ImageFaces (detections in original-image
pixels, descending score; embeddings L2-normalised), Verification, SwapResult. Errors about
images and the servers are gateway.errors' tree; misuse of the client raises this package's
own ClientError (InvalidArgument, ClientClosed). See docs/CLIENT.md.
"""

from gateway.client._inputs import ClientOptions
from gateway.client.aio import SWAPPER_HOW_TO_LOAD, AsyncFaceClient, SharedMemoryMode
from gateway.client.errors import ClientClosed, ClientError, InvalidArgument
from gateway.client.rest import (
    FaceGroups,
    FaceRestClient,
    GatewayError,
    GroupedFace,
    RestVerification,
)
from gateway.client.sync import FaceClient
from gateway.errors import FacegateError, NoFaceFound, UpstreamUnavailable
from gateway.processing import Detections
from gateway.service.pipeline import ImageFaces, ImageInput, Verification
from gateway.service.swap import SwapResult

__all__ = [
    "SWAPPER_HOW_TO_LOAD",
    "AsyncFaceClient",
    "ClientClosed",
    "ClientError",
    "ClientOptions",
    "Detections",
    "FaceClient",
    "FaceGroups",
    "FaceRestClient",
    "FacegateError",
    "GatewayError",
    "GroupedFace",
    "ImageFaces",
    "ImageInput",
    "InvalidArgument",
    "NoFaceFound",
    "RestVerification",
    "SharedMemoryMode",
    "SwapResult",
    "UpstreamUnavailable",
    "Verification",
]
