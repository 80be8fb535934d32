"""The request kinds: how each is sent and what a correct answer to it looks like.

Every kind sends the benchmark's photos (gateway/ops/bench/images.py: t1.jpg with four planted
squares the synthetic detectors find), so a correct answer is known exactly: four faces per
image, a match when an image is verified against itself, one face swapped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from gateway.ops.bench.images import BenchImage

EMBEDDING_DIM = 512
BATCH_IMAGES = 4

Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
Check = Callable[[httpx.Response], str]


@dataclass(frozen=True)
class RequestKind:
    """A named request: `send` posts it, `check` names what is wrong with a 2xx answer ('' if
    nothing is)."""

    name: str
    description: str
    send: Send
    check: Check


def _faces_problem(result: dict[str, object], planted: int, embed: bool) -> str:
    faces = result.get("faces")
    if not isinstance(faces, list) or len(faces) != planted:
        found = len(faces) if isinstance(faces, list) else "no"
        return f"{found} faces, expected {planted}"
    if embed and any(len(face.get("embedding", ())) != EMBEDDING_DIM for face in faces):
        return "a face without a 512-d embedding"
    return ""


def _detect(image: BenchImage, embed: bool) -> tuple[Send, Check]:
    files = {"image": ("image.jpg", image.jpeg, "image/jpeg")}
    params = {"embed": "true"} if embed else {}

    async def send(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post("/v1/detect", params=params, files=files)

    def check(response: httpx.Response) -> str:
        return _faces_problem(response.json(), image.planted, embed)

    return send, check


def _batch(image: BenchImage) -> tuple[Send, Check]:
    files = [("images", (f"image{i}.jpg", image.jpeg, "image/jpeg")) for i in range(BATCH_IMAGES)]

    async def send(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post("/v1/detect/batch", files=files)

    def check(response: httpx.Response) -> str:
        results = response.json().get("results", [])
        if len(results) != BATCH_IMAGES:
            return f"{len(results)} results, expected {BATCH_IMAGES}"
        return next(
            (p for p in (_faces_problem(r, image.planted, False) for r in results) if p), ""
        )

    return send, check


def _verify(image: BenchImage) -> tuple[Send, Check]:
    files = {
        "image_a": ("a.jpg", image.jpeg, "image/jpeg"),
        "image_b": ("b.jpg", image.jpeg, "image/jpeg"),
    }

    async def send(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post("/v1/verify", files=files)

    def check(response: httpx.Response) -> str:
        return "" if response.json().get("match") is True else "an image did not match itself"

    return send, check


def _swap(image: BenchImage) -> tuple[Send, Check]:
    files = [
        ("source", ("source.jpg", image.jpeg, "image/jpeg")),
        ("target", ("target.jpg", image.jpeg, "image/jpeg")),
    ]

    async def send(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post("/v1/swap", files=files)

    def check(response: httpx.Response) -> str:
        if response.headers.get("content-type") != "image/png":
            return f"content type {response.headers.get('content-type')!r}, expected image/png"
        swapped = response.headers.get("x-faces-swapped")
        return "" if swapped == "1" else f"X-Faces-Swapped {swapped!r}, expected '1'"

    return send, check


def request_kinds(small: BenchImage, large: BenchImage) -> dict[str, RequestKind]:
    """Every kind the load test knows, by name; `small` is 640x480, `large` 12 MP."""
    table = (
        ("detect", "POST /v1/detect, 640x480", _detect(small, False)),
        ("detect_embed", "POST /v1/detect?embed=true, 640x480", _detect(small, True)),
        ("batch", f"POST /v1/detect/batch, {BATCH_IMAGES} x 640x480", _batch(small)),
        ("verify", "POST /v1/verify, 640x480 against itself", _verify(small)),
        ("swap", "POST /v1/swap, 640x480 onto itself (PNG)", _swap(small)),
        ("detect_12mp", "POST /v1/detect, 4000x3000", _detect(large, False)),
    )
    return {name: RequestKind(name, text, *pair) for name, text, pair in table}


KIND_NAMES: tuple[str, ...] = (
    "detect",
    "detect_embed",
    "batch",
    "verify",
    "swap",
    "detect_12mp",
)
