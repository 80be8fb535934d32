"""FaceClient: AsyncFaceClient for blocking code, run on a private event-loop thread.

Calls from several threads are fine: each is a coroutine on the one loop, so requests from
different threads share the channel, the shared-memory regions and Triton's batching.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from typing import Any, Literal, TypeVar

from gateway.client._inputs import ClientOptions
from gateway.client.aio import AsyncFaceClient, DetSizes, Embeddings, SharedMemoryMode
from gateway.client.errors import ClientClosed
from gateway.service.pipeline import ImageFaces, Verification
from gateway.service.swap import SwapResult

T = TypeVar("T")


class FaceClient:
    """detect / embed / verify / swap on Triton over gRPC, from blocking code.

    The same arguments and answers as AsyncFaceClient; connects on construction. Use
    `with FaceClient(...) as client:` or call close().
    """

    def __init__(
        self,
        url: str = "localhost:8001",
        *,
        repository_key: str = "",
        use_shared_memory: SharedMemoryMode = "auto",
        options: ClientOptions | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="facegate-client-loop", daemon=True
        )
        self._thread.start()
        self._client = AsyncFaceClient(
            url,
            repository_key=repository_key,
            use_shared_memory=use_shared_memory,
            options=options,
        )
        try:
            self._run(self._client.open())
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if not self._thread.is_alive():
            coroutine.close()
            raise ClientClosed("the FaceClient is closed: create a new one")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def close(self) -> None:
        """Unregister shared memory, close the channel and stop the loop thread."""
        if self._thread.is_alive():
            try:
                self._run(self._client.close())
            finally:
                self._stop_loop()

    def __enter__(self) -> FaceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def options(self) -> ClientOptions:
        return self._client.options

    @property
    def shared_memory(self) -> bool:
        """True when detector and recognizer tensors travel through shared memory."""
        return self._client.shared_memory

    @property
    def shared_memory_regions(self) -> list[str]:
        return self._client.shared_memory_regions

    def detect_stream(
        self,
        images: Iterable[object],
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
    ) -> Iterator[ImageFaces]:
        """AsyncFaceClient.detect_stream for blocking code: faces of each image, in order."""
        stream = self._client.detect_stream(
            images,
            embed=embed,
            threshold=threshold,
            max_faces=max_faces,
            min_size_px=min_size_px,
            batch_size=batch_size,
            det_sizes=det_sizes,
            attributes=attributes,
            liveness=liveness,
            dense_landmarks=dense_landmarks,
            pose=pose,
            quality=quality,
        )

        async def next_faces() -> ImageFaces:
            return await anext(stream)

        try:
            while True:
                try:
                    yield self._run(next_faces())
                except StopAsyncIteration:
                    return
        finally:
            if self._thread.is_alive():
                self._run(stream.aclose())

    def detect(
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
        """Faces of each image (descending score, original-image pixels), in order."""
        return self._run(
            self._client.detect(
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
        )

    def embed(
        self,
        images: Sequence[object],
        *,
        threshold: float | None = None,
        max_faces: int = 0,
        min_size_px: float = 0.0,
        det_sizes: DetSizes = None,
    ) -> list[ImageFaces]:
        """detect() with L2-normalised 512-d embeddings (and raw norms) for every face."""
        return self._run(
            self._client.embed(
                images,
                threshold=threshold,
                max_faces=max_faces,
                min_size_px=min_size_px,
                det_sizes=det_sizes,
            )
        )

    def detect_in_server(
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
        """AsyncFaceClient.detect_in_server: Triton's `faces` model, one request per image."""
        return self._run(
            self._client.detect_in_server(
                images,
                embed=embed,
                threshold=threshold,
                max_faces=max_faces,
                min_size_px=min_size_px,
                det_sizes=det_sizes,
                attributes=attributes,
            )
        )

    def embed_crops(self, crops: Sequence[object]) -> Embeddings:
        """AsyncFaceClient.embed_crops: (N, 512) unit embeddings and (N,) raw norms."""
        return self._run(self._client.embed_crops(crops))

    def verify(
        self,
        image_a: object,
        image_b: object,
        *,
        threshold: float | None = None,
        det_sizes: DetSizes = None,
    ) -> Verification:
        """Cosine similarity of the most prominent face of each image; NoFaceFound if none."""
        return self._run(
            self._client.verify(image_a, image_b, threshold=threshold, det_sizes=det_sizes)
        )

    def swap(
        self,
        source: object,
        target: object,
        *,
        source_face: int | None = None,
        target_face: int | Literal["all"] | None = None,
        threshold: float | None = None,
    ) -> SwapResult:
        """The target img_bgr with the source identity swapped onto its chosen face(s)."""
        return self._run(
            self._client.swap(
                source,
                target,
                source_face=source_face,
                target_face=target_face,
                threshold=threshold,
            )
        )
