"""AsyncFaceClient: the gateway's pipeline run in the caller's process, straight to Triton.

The same processing functions and defaults as the REST gateway (gateway.service.pipeline over
gateway.triton.client), so the answers are the same; what changes is that no REST hop,
base64 or JSON sits between the images and Triton. Images are encoded bytes or decoded
uint8 BGR arrays.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import numpy.typing as npt

from gateway.client._inputs import (
    NO_ANALYSIS,
    Analysis,
    ClientOptions,
    check_det_sizes,
    check_image,
    chunk_images,
    encode_image,
    faces_from_outputs,
)
from gateway.client.errors import ClientClosed, InvalidArgument
from gateway.errors import UpstreamUnavailable
from gateway.service.pipeline import DetectOptions, ImageFaces, Pipeline, Timings, Verification
from gateway.service.swap import SwapPipeline, SwapRequest, SwapResult
from gateway.service.swapper_lifecycle import SwapperManager, SwapperPolicy
from gateway.triton.client import TritonFaceModels, TritonTarget
from gateway.triton.shared_memory import SharedMemoryFaceModels, SharedMemoryUnavailable

log = logging.getLogger(__name__)
SharedMemoryMode = Literal["auto"] | bool
# Detector frame sides: "640", "128,640" or a sequence of ints; None = options.det_sizes.
DetSizes = str | Sequence[int] | None
# (N, 512) L2-normalised embeddings and (N,) raw norms.
Embeddings = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
SWAPPER_HOW_TO_LOAD = (
    "the swapper is not loaded on Triton: load it with `POST /v1/models/swapper/load` on the "
    "gateway, or pass repository_key=... (Triton's model-repository key) to the client"
)


def is_local(url: str) -> bool:
    """Whether a Triton gRPC URL (host:port) names this host."""
    address = url.split("://", 1)[-1]
    if address.startswith("["):
        host = address[1 : address.find("]")]
    else:
        host = address.rsplit(":", 1)[0] if address.count(":") == 1 else address
    return host.lower() in LOCAL_HOSTS


class _SwapperControl:
    """The swapper's ModelControl, with the client's advice when there is no key."""

    def __init__(self, models: TritonFaceModels, has_key: bool) -> None:
        self._models = models
        self._has_key = has_key

    async def load_model(self, model: str, timeout_s: float) -> None:
        if not self._has_key:
            raise UpstreamUnavailable(SWAPPER_HOW_TO_LOAD)
        await self._models.load_model(model, timeout_s)

    async def unload_model(self, model: str) -> None:
        await self._models.unload_model(model)

    async def is_model_ready(self, model: str) -> bool:
        return await self._models.is_model_ready(model)


class AsyncFaceClient:
    """detect / embed / verify / swap on Triton over gRPC, from asyncio code.

    `use_shared_memory`: "auto" uses Triton's system shared memory when the URL names this
    host and registration succeeds, else the wire; True requires it; False never uses it.
    `repository_key` lets swap() load the swapper. Use `async with`, or open() and close().
    Errors are gateway.errors' tree (InvalidInput, NoFaceFound, UpstreamUnavailable, ...);
    misuse of the client raises gateway.client.errors (InvalidArgument, ClientClosed).
    """

    def __init__(
        self,
        url: str = "localhost:8001",
        *,
        repository_key: str = "",
        use_shared_memory: SharedMemoryMode = "auto",
        options: ClientOptions | None = None,
    ) -> None:
        self.url = url
        self.options = options or ClientOptions()
        self._repository_key = repository_key
        self._use_shared_memory = use_shared_memory
        self._models: TritonFaceModels | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pipeline: Pipeline | None = None
        self._swap_pipeline: SwapPipeline | None = None

    async def __aenter__(self) -> AsyncFaceClient:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> AsyncFaceClient:
        """Open the channel and, where asked, register the shared-memory regions."""
        if self._models is not None:
            return self
        opts = self.options
        target = TritonTarget(
            url=self.url,
            timeout_s=opts.timeout_s,
            unavailable_retries=opts.unavailable_retries,
            repository_key=self._repository_key,
            detector=opts.detector,
            recognizer=opts.recognizer,
            swapper=opts.swapper,
            genderage=opts.genderage,
            landmark_2d_106=opts.landmark_2d_106,
            landmark_3d_68=opts.landmark_3d_68,
            liveness=opts.liveness,
        )
        self._models = await self._connect(target)
        self._executor = ThreadPoolExecutor(opts.cpu_threads, thread_name_prefix="facegate-client")
        self._pipeline = Pipeline(
            self._models, self._executor, max_pixels=opts.max_image_pixels, nms_iou=opts.nms_iou
        )
        control = _SwapperControl(self._models, bool(self._repository_key))
        # idle_ttl_s=0: a client never unloads the swapper it shares with others.
        manager = SwapperManager(
            control, opts.swapper, SwapperPolicy(0, opts.swapper_load_timeout_s)
        )
        self._swap_pipeline = SwapPipeline(self._pipeline, self._models, manager)
        return self

    async def _connect(self, target: TritonTarget) -> TritonFaceModels:
        mode = self._use_shared_memory
        if mode is False or (mode == "auto" and not is_local(target.url)):
            return TritonFaceModels(target)
        models = SharedMemoryFaceModels(target, self.options.shm_regions_per_model)
        try:
            await models.register()
        except SharedMemoryUnavailable as exc:
            if mode is True:
                await models.close()
                raise
            log.info("shared memory unavailable, using the wire: %s", exc.message)
        except BaseException:
            await models.close()
            raise
        return models

    async def close(self) -> None:
        """Unregister shared memory and close the channel; the client can be opened again."""
        models, self._models = self._models, None
        if models is not None:
            await models.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    @property
    def shared_memory(self) -> bool:
        """True when detector and recognizer tensors travel through shared memory."""
        return isinstance(self._models, SharedMemoryFaceModels) and self._models.active

    @property
    def shared_memory_regions(self) -> list[str]:
        """Names of this client's registered regions (as Triton lists them)."""
        if isinstance(self._models, SharedMemoryFaceModels):
            return self._models.region_names
        return []

    def _opened(self) -> Pipeline:
        if self._pipeline is None or self._models is None:
            raise ClientClosed("the client is closed: use `async with` or call open() first")
        return self._pipeline

    def _detect_options(
        self,
        threshold: float | None,
        max_faces: int,
        min_size_px: float,
        embed: bool,
        det_sizes: DetSizes = None,
        attributes: bool = False,
        liveness: bool = False,
        analysis: Analysis = NO_ANALYSIS,
    ) -> DetectOptions:
        chosen = self.options.detect_threshold if threshold is None else threshold
        if not 0.0 <= chosen <= 1.0 or max_faces < 0 or min_size_px < 0:
            raise InvalidArgument("threshold is in [0, 1]; max_faces and min_size_px >= 0")
        sizes = check_det_sizes(det_sizes, self.options.det_sizes)
        return DetectOptions(
            chosen,
            max_faces,
            min_size_px,
            embed,
            sizes,
            attributes,
            liveness,
            self.options.liveness_threshold,
            dense_landmarks=analysis.dense_landmarks,
            pose=analysis.pose,
            quality=analysis.quality,
        )

    async def detect_stream(
        self,
        images: Iterable[object] | AsyncIterable[object],
        *,
        embed: bool = False,
        threshold: float | None = None,
        max_faces: int = 0,
        min_size_px: float = 0.0,
        batch_size: int | None = None,
        det_sizes: DetSizes = None,
        attributes: bool = False,
        liveness: bool = False,
        dense_landmarks: bool = False,
        pose: bool = False,
        quality: bool = False,
    ) -> AsyncGenerator[ImageFaces, None]:
        """Faces of each image of a (possibly endless) stream, in order.

        Images go to the detector `batch_size` at a time and all faces of a batch to the
        recognizer in requests of at most its max batch; `options.prefetch` batches are in
        flight, so the next batch's detector work overlaps this batch's recognizer work.
        A sync iterable is read on the event loop: keep its next() cheap.
        """
        pipeline = self._opened()
        analysis = Analysis(dense_landmarks, pose, quality)
        options = self._detect_options(
            threshold, max_faces, min_size_px, embed, det_sizes, attributes, liveness, analysis
        )
        size = batch_size or self.options.batch_size
        pending: collections.deque[asyncio.Task[list[ImageFaces]]] = collections.deque()
        try:
            async for chunk in chunk_images(images, size, self.options.max_image_pixels):
                pending.append(asyncio.ensure_future(pipeline.detect(chunk, options, Timings())))
                if len(pending) >= self.options.prefetch:
                    for faces in await pending.popleft():
                        yield faces
            while pending:
                for faces in await pending.popleft():
                    yield faces
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def detect(
        self,
        images: Sequence[object],
        *,
        embed: bool = False,
        threshold: float | None = None,
        max_faces: int = 0,
        min_size_px: float = 0.0,
        det_sizes: DetSizes = None,
        attributes: bool = False,
        liveness: bool = False,
        dense_landmarks: bool = False,
        pose: bool = False,
        quality: bool = False,
    ) -> list[ImageFaces]:
        """Faces of each image (descending score, original-image pixels), in order.

        `det_sizes`: detector frame sides such as "640" or (128, 640); default
        options.det_sizes. `attributes`: gender and age per face (ImageFaces.attributes).
        `liveness`: the liveness addon's score per face at options.liveness_threshold.
        `dense_landmarks`, `pose`: ImageFaces.landmarks (2d106det, 1k3d68); `quality`:
        ImageFaces.quality (docs/QUALITY.md).
        """
        stream = self.detect_stream(
            images,
            embed=embed,
            threshold=threshold,
            max_faces=max_faces,
            min_size_px=min_size_px,
            det_sizes=det_sizes,
            attributes=attributes,
            liveness=liveness,
            dense_landmarks=dense_landmarks,
            pose=pose,
            quality=quality,
        )
        return [faces async for faces in stream]

    async def embed(
        self,
        images: Sequence[object],
        *,
        threshold: float | None = None,
        max_faces: int = 0,
        min_size_px: float = 0.0,
        det_sizes: DetSizes = None,
    ) -> list[ImageFaces]:
        """detect() with L2-normalised 512-d embeddings (and raw norms) for every face."""
        return await self.detect(
            images,
            embed=True,
            threshold=threshold,
            max_faces=max_faces,
            min_size_px=min_size_px,
            det_sizes=det_sizes,
        )

    async def detect_in_server(
        self,
        images: Sequence[object],
        *,
        embed: bool = True,
        threshold: float | None = None,
        max_faces: int = 0,
        min_size_px: float = 0.0,
        det_sizes: DetSizes = None,
        attributes: bool = False,
    ) -> list[ImageFaces]:
        """detect() run by Triton's `faces` model: one request per image, the pipeline in the server.

        The same answers as detect() and /v1/detect (the same processing code, in Triton's
        Python backend); here the client only sends the encoded bytes (an img_bgr array is
        sent as a lossless PNG). Requests go out concurrently; Triton batches them.
        InvalidInput carries the model's message for an image or option it refuses.
        `attributes`: gender and age per face (ImageFaces.attributes), genderage on Triton.
        """
        self._opened()
        assert self._models is not None
        options = self._detect_options(threshold, max_faces, min_size_px, embed, det_sizes)
        parameters: dict[str, str | int | float | bool] = {
            "det_sizes": ",".join(str(s) for s in options.det_sizes_px),
            "threshold": options.threshold,
            "max_faces": options.max_faces,
            "min_size": options.min_size_px,
            "embed": options.embed,
            "attributes": attributes,
        }
        pixels = self.options.max_image_pixels
        encoded = [encode_image(check_image(image, pixels)) for image in images]
        models = self._models
        outputs = await asyncio.gather(*(models.faces(data, parameters) for data in encoded))
        return [faces_from_outputs(out) for out in outputs]

    async def embed_crops(self, crops: Sequence[object]) -> Embeddings:
        """L2-normalised (N, 512) embeddings and (N,) raw norms of aligned 112x112 crops.

        Crops are encoded bytes or uint8 (112, 112, 3) BGR arrays, e.g. from insightface's
        norm_crop; another size is InvalidParameter. No detection runs.
        """
        pipeline = self._opened()
        pixels = self.options.max_image_pixels
        return await pipeline.embed_aligned([check_image(c, pixels) for c in crops], Timings())

    async def verify(
        self,
        image_a: object,
        image_b: object,
        *,
        threshold: float | None = None,
        det_sizes: DetSizes = None,
    ) -> Verification:
        """Cosine similarity of the most prominent face of each image; NoFaceFound if none."""
        pipeline = self._opened()
        limit = self.options.verify_threshold if threshold is None else threshold
        pixels = self.options.max_image_pixels
        options = self._detect_options(None, 1, 0.0, True, det_sizes)
        return await pipeline.verify(
            check_image(image_a, pixels),
            check_image(image_b, pixels),
            limit,
            Timings(),
            options.threshold,
            options.det_sizes_px,
        )

    async def swap(
        self,
        source: object,
        target: object,
        *,
        source_face: int | None = None,
        target_face: int | Literal["all"] | None = None,
        threshold: float | None = None,
    ) -> SwapResult:
        """The target img_bgr with the source identity swapped onto its chosen face(s).

        `source` is one image or a list (identity averaged). Without a repository key, the
        swapper must already be loaded; otherwise the error says how to load it.
        """
        self._opened()
        assert self._swap_pipeline is not None
        pixels = self.options.max_image_pixels
        sources = source if isinstance(source, list | tuple) else [source]
        if not sources:
            raise InvalidArgument("no source image")
        options = self._detect_options(threshold, 0, 0.0, False)
        request = SwapRequest(source_face, target_face, options.threshold)
        return await self._swap_pipeline.swap(
            [check_image(s, pixels) for s in sources],
            check_image(target, pixels),
            request,
            Timings(),
        )
