"""Async gRPC client for the face models on Triton (implements the ports).

One channel per process (created in the app's lifespan). Passing any gRPC channel argument
replaces tritonclient's unlimited message sizes with gRPC's 4 MB (a batch of 640x640 frames
is larger), so the sizes are set here explicitly next to the arguments we need: a short
reconnect backoff (gRPC's default grows to 120 s, which would keep the gateway failing long
after Triton is back) and, for dns:/// targets such as a headless Service (or ipv4:/ipv6:
address lists), round-robin across Triton pods. Every call has a deadline; UNAVAILABLE on the
way in is retried a few times. Outputs come back read-only and are copied where they are written.

gRPC resolves a dns:/// name again only when a connection fails, so Triton pods added by a
scale-up would get no traffic from a running gateway. For dns:/// targets the client resolves
the name itself every `reresolve_s` (in the background, on the next call after that) and,
when the set of addresses changed, dials the new set on a fresh channel (same arguments,
unlimited message sizes included); the old channel closes once its calls have had their
deadline.

Every call, load_model included, goes through _call, so each tritonclient error is
translated once, by triton/errors.py's table.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from gateway.errors import InvalidInput, UpstreamFailed, UpstreamUnavailable
from gateway.metrics import Metrics
from gateway.ports import DetectorOutputs
from gateway.supervision import TRITON, ServerStates
from gateway.triton import spec
from gateway.triton.errors import status_code, translate_error
from gateway.triton.targets import list_target, resolve_replicas, split_target

log = logging.getLogger(__name__)
RETRY_BACKOFF_S = 0.2
RECONNECT_BACKOFF_MAX_MS = 2000
# How often a dns:/// target is resolved again, so new Triton pods get traffic within about
# this long (a Kubernetes HPA adds pods over minutes; DNS lookups are cheap).
RERESOLVE_S = 30.0
Resolver = Callable[[str], Awaitable[list[str]]]
_DTYPES = {np.dtype(np.uint8): "UINT8", np.dtype(np.float32): "FP32"}


@dataclass(frozen=True)
class TritonTarget:
    """Where Triton is and which model names to use."""

    url: str
    timeout_s: float
    unavailable_retries: int
    repository_key: str
    detector: str = spec.DETECTOR
    recognizer: str = spec.RECOGNIZER
    swapper: str = spec.SWAPPER
    genderage: str = spec.GENDERAGE
    liveness: str = spec.LIVENESS
    faces: str = spec.FACES
    landmark_2d_106: str = spec.LANDMARK_2D106
    landmark_3d_68: str = spec.LANDMARK_3D68
    reresolve_s: float = RERESOLVE_S


# Seconds an optional model's status (served or not) is taken as known.
SERVED_TTL_S = 5.0


def channel_args(url: str) -> list[tuple[str, int | str]]:
    """gRPC channel arguments: unlimited message sizes restated, short reconnect backoff."""
    args: list[tuple[str, int | str]] = [
        ("grpc.max_send_message_length", -1),
        ("grpc.max_receive_message_length", -1),
        ("grpc.initial_reconnect_backoff_ms", 250),
        ("grpc.min_reconnect_backoff_ms", 250),
        ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MAX_MS),
    ]
    if url.startswith(("dns:", "ipv4:", "ipv6:")):
        args.append(("grpc.lb_policy_name", "round_robin"))
    return args


class TritonFaceModels:
    """The detector, recognizer and swapper on Triton, over one asyncio gRPC channel.

    Implements ports.InferenceBackend (FaceModels, ModelControl, ModelStates, close).
    """

    def __init__(
        self,
        target: TritonTarget,
        metrics: Metrics | None = None,
        servers: ServerStates | None = None,
        resolve: Resolver = resolve_replicas,
    ) -> None:
        self.target = target
        self._servers = servers or ServerStates()
        self._metrics = metrics
        self.dialled = target.url
        self._client = grpcclient.InferenceServerClient(
            target.url, channel_args=channel_args(target.url)
        )
        self._max_batch: dict[str, int] = {}
        # Model -> (when asked, READY): optional models' status, asked at most every
        # SERVED_TTL_S, so a request needing one that is not installed makes no failing call.
        self._served: dict[str, tuple[float, bool]] = {}
        split = split_target(target.url)
        self._reresolves = split is not None and split[0] == "dns"
        self._resolve = resolve
        # The addresses last seen (None: not resolved yet) and when.
        self._addresses: list[str] | None = None
        self._resolved_at = -float("inf")
        self._resolving: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        if self._resolving is not None:
            self._resolving.cancel()
            await asyncio.gather(self._resolving, return_exceptions=True)
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await self._client.close()

    def _reresolve_if_due(self) -> None:
        """Start a background resolution of a dns:/// target once reresolve_s has passed."""
        if not self._reresolves or self._resolving is not None:
            return
        if time.monotonic() - self._resolved_at < self.target.reresolve_s:
            return
        self._resolving = asyncio.create_task(self._reresolve(), name="triton-reresolve")

    async def _reresolve(self) -> None:
        addresses: list[str] | None = None
        try:
            addresses = await self._resolve(self.target.url)
        except UpstreamUnavailable as exc:
            # A failed lookup keeps the current channel (gRPC retries on its own).
            log.warning("re-resolving Triton failed: %s", exc.message)
        finally:
            self._resolved_at = time.monotonic()
            self._resolving = None
        if not addresses or addresses == self._addresses:
            return
        first = self._addresses is None
        self._addresses = addresses
        if first:
            # The channel was dialled from this same name moments ago: nothing new to reach.
            return
        dial = list_target(addresses) or self.target.url
        log.info("Triton replicas of %s are now %s: new channel", self.target.url, addresses)
        old = self._client
        self._client = grpcclient.InferenceServerClient(dial, channel_args=channel_args(dial))
        self.dialled = dial
        retiring = asyncio.create_task(self._retire(old), name="triton-channel-retire")
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)

    async def _retire(self, old: grpcclient.InferenceServerClient) -> None:
        # Calls already running on the old channel get their deadline to finish there.
        try:
            await asyncio.sleep(self.target.timeout_s + 1)
        finally:
            await old.close()

    @property
    def _key_headers(self) -> dict[str, str] | None:
        if not self.target.repository_key:
            return None
        return {spec.REPOSITORY_KEY_GRPC_HEADER: self.target.repository_key}

    async def _call(self, model: str, coroutine_factory: Any, *, caller_input: bool = False) -> Any:
        """Run one call with retries; `caller_input`: INVALID_ARGUMENT blames the caller's
        input (the faces model's answer to a bad image or parameter), not Triton."""
        attempt = 0
        while True:
            # While a supervisor restarts Triton: 503 at once, not after the retries.
            self._servers.check_up(TRITON, "Triton")
            self._reresolve_if_due()
            try:
                return await coroutine_factory()
            except InferenceServerException as exc:
                if caller_input and status_code(exc) == grpc.StatusCode.INVALID_ARGUMENT:
                    raise InvalidInput(str(exc.message() or exc)) from exc
                error = translate_error(exc, model)
                if self._metrics is not None:
                    self._metrics.triton_errors.labels(model, error.code).inc()
                retryable = status_code(exc) == grpc.StatusCode.UNAVAILABLE
                if retryable:
                    # The channel dials a fixed address list after a change, so gRPC's own
                    # re-resolution on a failed connection is ours to do: resolve now.
                    self._resolved_at = -float("inf")
                if retryable and attempt < self.target.unavailable_retries:
                    attempt += 1
                    await asyncio.sleep(RETRY_BACKOFF_S * attempt)
                    continue
                raise error from exc

    async def infer(
        self, model: str, feeds: dict[str, npt.NDArray[Any]], outputs: Sequence[str]
    ) -> list[npt.NDArray[Any]]:
        """One inference with a deadline; returns the named outputs (read-only arrays)."""
        inputs = []
        for name, array in feeds.items():
            tensor = grpcclient.InferInput(name, list(array.shape), _DTYPES[array.dtype])
            tensor.set_data_from_numpy(np.ascontiguousarray(array))
            inputs.append(tensor)
        requested = [grpcclient.InferRequestedOutput(name) for name in outputs]
        started = time.perf_counter()
        result = await self._call(
            model,
            lambda: self._client.infer(
                model, inputs, outputs=requested, client_timeout=self.target.timeout_s
            ),
        )
        if self._metrics is not None:
            self._metrics.triton_latency.labels(model).observe(time.perf_counter() - started)
        arrays = [result.as_numpy(name) for name in outputs]
        for name, array in zip(outputs, arrays, strict=True):
            if array is None or array.size == 0:
                raise UpstreamFailed(f"Triton returned an empty '{name}' from model '{model}'")
        return arrays

    async def max_batch_size(self, model: str) -> int:
        """The model's max_batch_size from Triton's config (0 = no batch dimension)."""
        if model not in self._max_batch:
            config = await self._call(
                model,
                lambda: self._client.get_model_config(
                    model, as_json=True, client_timeout=self.target.timeout_s
                ),
            )
            self._max_batch[model] = int(config["config"].get("max_batch_size", 0))
        return self._max_batch[model]

    async def _batched(
        self, model: str, array: npt.NDArray[Any], run: Any, limit: int
    ) -> list[list[npt.NDArray[Any]]]:
        """Split along axis 0 into requests of at most `limit` (1 where unbatched), concurrently."""
        max_batch = await self.max_batch_size(model)
        size = min(max_batch, limit) if max_batch > 0 else 1
        chunks = [array[i : i + size] for i in range(0, len(array), size)]
        return list(await asyncio.gather(*(run(chunk) for chunk in chunks)))

    async def detect(self, frames_bgr: npt.NDArray[np.uint8]) -> list[DetectorOutputs]:
        """Run the detector on (N, 640, 640, 3) uint8 BGR letterboxed frames."""
        names = [t.name for t in spec.DETECTOR_OUTPUTS]
        count = len(spec.DETECTOR_STRIDES)

        async def run(chunk: npt.NDArray[np.uint8]) -> list[npt.NDArray[Any]]:
            return await self.infer(self.target.detector, {spec.DETECTOR_INPUT.name: chunk}, names)

        results = []
        for outputs in await self._batched(self.target.detector, frames_bgr, run, 1 << 30):
            for index in range(outputs[0].shape[0]):
                per_frame = [o[index] for o in outputs]
                results.append(
                    DetectorOutputs(
                        tuple(per_frame[:count]),
                        tuple(per_frame[count : 2 * count]),
                        tuple(per_frame[2 * count :]),
                    )
                )
        return results

    async def embed(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Raw embeddings (N, 512) for (N, 112, 112, 3) uint8 BGR aligned crops."""
        if len(crops_bgr) == 0:
            return np.zeros((0, spec.RECOGNIZER_OUTPUT.shape[0]), np.float32)

        async def run(chunk: npt.NDArray[np.uint8]) -> npt.NDArray[Any]:
            (embedding,) = await self.infer(
                self.target.recognizer,
                {spec.RECOGNIZER_INPUT.name: chunk},
                [spec.RECOGNIZER_OUTPUT.name],
            )
            return embedding

        parts = await self._batched(
            self.target.recognizer, crops_bgr, run, spec.RECOGNIZER_MAX_BATCH
        )
        embeddings: npt.NDArray[np.float32] = np.concatenate(parts).astype(np.float32, copy=False)
        return embeddings

    async def _infer_rows(
        self, model: str, tensors: tuple[spec.TensorSpec, spec.TensorSpec], array: Any, limit: int
    ) -> npt.NDArray[np.float32]:
        """One float32 output row per input row, batched by the model's max batch (<= limit)."""
        source, target = tensors

        async def run(chunk: npt.NDArray[Any]) -> npt.NDArray[Any]:
            (out,) = await self.infer(model, {source.name: chunk}, [target.name])
            return out.reshape(len(chunk), -1)

        parts = await self._batched(model, array, run, limit)
        rows: npt.NDArray[np.float32] = np.concatenate(parts).astype(np.float32, copy=False)
        return rows

    async def genderage(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Raw genderage predictions (N, 3) for (N, 96, 96, 3) uint8 BGR attribute crops."""
        if len(crops_bgr) == 0:
            return np.zeros((0, 3), np.float32)
        tensors = (spec.GENDERAGE_INPUT, spec.GENDERAGE_OUTPUT)
        return await self._infer_rows(
            self.target.genderage, tensors, crops_bgr, spec.GENDERAGE_MAX_BATCH
        )

    async def liveness(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Live probabilities (N,) for (N, 80, 80, 3) uint8 BGR liveness-aligned crops."""
        if len(crops_bgr) == 0:
            return np.zeros((0,), np.float32)
        tensors = (spec.LIVENESS_INPUT, spec.LIVENESS_OUTPUT)
        scores = await self._infer_rows(
            self.target.liveness, tensors, crops_bgr, spec.LIVENESS_MAX_BATCH
        )
        return scores.reshape(-1)

    async def landmarks_2d106(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Raw 2d106det output (N, 212) for (N, 192, 192, 3) uint8 BGR landmark crops."""
        return await self._landmarks(
            self.target.landmark_2d_106, spec.LANDMARK_2D106_OUTPUT, crops_bgr
        )

    async def landmarks_3d68(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Raw 1k3d68 output (N, 3309) for (N, 192, 192, 3) uint8 BGR landmark crops."""
        return await self._landmarks(
            self.target.landmark_3d_68, spec.LANDMARK_3D68_OUTPUT, crops_bgr
        )

    async def landmarks_served(self) -> tuple[bool, bool]:
        """Whether 2d106det and 1k3d68 are READY (Triton asked at most every SERVED_TTL_S)."""
        target = self.target
        two_d, three_d = await asyncio.gather(
            self._is_served(target.landmark_2d_106), self._is_served(target.landmark_3d_68)
        )
        return two_d, three_d

    async def _is_served(self, model: str) -> bool:
        now = time.monotonic()
        known = self._served.get(model)
        if known is not None and now - known[0] < SERVED_TTL_S:
            return known[1]
        ready = await self.is_model_ready(model)
        self._served[model] = (now, ready)
        return ready

    async def _landmarks(
        self, model: str, output: spec.TensorSpec, crops_bgr: npt.NDArray[np.uint8]
    ) -> npt.NDArray[np.float32]:
        if len(crops_bgr) == 0:
            return np.zeros((0, *output.shape), np.float32)
        tensors = (spec.LANDMARK_INPUT, output)
        return await self._infer_rows(model, tensors, crops_bgr, spec.LANDMARK_MAX_BATCH)

    async def swap(
        self, target_bgr: npt.NDArray[np.uint8], source_embedding: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.uint8]:
        """Swapped (128, 128, 3) uint8 BGR crop for an aligned target crop and a unit embedding."""
        (swapped,) = await self.infer(
            self.target.swapper,
            {
                spec.SWAPPER_TARGET.name: target_bgr[None],
                spec.SWAPPER_SOURCE.name: source_embedding.astype(np.float32)[None],
            },
            [spec.SWAPPER_OUTPUT.name],
        )
        crop: npt.NDArray[np.uint8] = swapped[0]
        return crop

    async def faces(
        self, image: bytes, parameters: dict[str, str | int | float | bool]
    ) -> dict[str, npt.NDArray[Any]]:
        """The in-server pipeline (model `faces`) on one encoded image; its outputs by name.

        InvalidInput with the model's message for an image or parameter it refuses.
        """
        tensor = grpcclient.InferInput(spec.FACES_INPUT.name, [1, 1], spec.FACES_INPUT.dtype)
        tensor.set_data_from_numpy(np.array([[image]], dtype=np.object_))
        model = self.target.faces
        started = time.perf_counter()
        result = await self._call(
            model,
            lambda: self._client.infer(
                model, [tensor], parameters=parameters, client_timeout=self.target.timeout_s
            ),
            caller_input=True,
        )
        if self._metrics is not None:
            self._metrics.triton_latency.labels(model).observe(time.perf_counter() - started)
        names = [output["name"] for output in result.get_response(as_json=True)["outputs"]]
        return {name: result.as_numpy(name) for name in names}

    async def is_model_ready(self, model: str) -> bool:
        ready = await self._call(
            model,
            lambda: self._client.is_model_ready(model, client_timeout=self.target.timeout_s),
        )
        return bool(ready)

    async def load_model(self, model: str, timeout_s: float) -> None:
        """Load through the restricted model-repository API; Triton's reason on failure."""
        if not self._key_headers:
            raise UpstreamUnavailable(
                f"cannot load '{model}': no Triton repository key configured "
                "(set FACEGATE_TRITON_REPOSITORY_KEY)",
                retry_after_s=60,
            )
        await self._call(
            model,
            lambda: self._client.load_model(
                model, headers=self._key_headers, client_timeout=timeout_s
            ),
        )

    async def unload_model(self, model: str) -> None:
        """Ask Triton to unload; it returns before the model is gone (poll readiness)."""
        if not self._key_headers:
            raise UpstreamUnavailable(
                f"cannot unload '{model}': no Triton repository key configured"
            )
        await self._call(
            model,
            lambda: self._client.unload_model(
                model, headers=self._key_headers, client_timeout=self.target.timeout_s
            ),
        )

    async def model_states(self) -> dict[str, str]:
        """Each model's state as Triton reports it (READY, UNAVAILABLE, LOADING, ...)."""
        target = self.target
        names = (
            target.detector,
            target.recognizer,
            target.swapper,
            target.genderage,
            target.liveness,
            target.faces,
            target.landmark_2d_106,
            target.landmark_3d_68,
        )
        states = dict.fromkeys(names, "UNAVAILABLE")
        if self._key_headers:
            index = await self._call(
                "repository",
                lambda: self._client.get_model_repository_index(
                    headers=self._key_headers, as_json=True, client_timeout=self.target.timeout_s
                ),
            )
            for entry in index.get("models", []):
                if entry.get("name") in states:
                    states[entry["name"]] = entry.get("state") or "UNAVAILABLE"
            return states
        for name in names:
            ready = await self._call(
                name,
                lambda name=name: self._client.is_model_ready(
                    name, client_timeout=self.target.timeout_s
                ),
            )
            states[name] = "READY" if ready else "UNAVAILABLE"
        return states

    async def model_sha256(self, model: str) -> str | None:
        """The prepared model file's sha256 that `facegate models` wrote into its config, if any."""
        config = await self._call(
            model,
            lambda: self._client.get_model_config(
                model, as_json=True, client_timeout=self.target.timeout_s
            ),
        )
        parameters = config.get("config", {}).get("parameters", {})
        value = parameters.get(spec.MODEL_SHA256_PARAMETER, {}).get("string_value")
        return str(value) if value else None

    async def server_ready(self) -> bool:
        """Triton reachable and live."""
        try:
            return bool(await self._client.is_server_live(client_timeout=self.target.timeout_s))
        except InferenceServerException:
            return False
