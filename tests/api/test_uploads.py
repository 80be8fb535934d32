"""Reading images out of requests: limits, body types, missing fields, memory only (no server)."""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from gateway.api.uploads import read_images, request_limit_bytes
from gateway.config import Settings
from gateway.errors import InvalidInput, InvalidParameter, PayloadTooLarge, UnsupportedMediaType
from gateway.schemas import BatchPayload, ImagePayload

SETTINGS = Settings(max_image_bytes=4 * 1024 * 1024, max_batch_images=3, auth_disabled=True)
ONE = {"image": False}
MANY = {"images": True}


def _request(
    content: bytes, headers: dict[str, str], chunks: int = 1, disconnect: bool = False
) -> Request:
    step = max(len(content) // chunks, 1)
    parts = [content[i : i + step] for i in range(0, len(content), step)] or [b""]
    messages: Iterator[dict[str, Any]] = iter(
        [
            {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
            for i, part in enumerate(parts)
        ]
    )

    async def receive() -> dict[str, Any]:
        if disconnect:
            return {"type": "http.disconnect"}
        return next(messages)

    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": raw}, receive)


def _multipart(files: list[tuple[str, Any]], data: dict[str, str] | None = None) -> Request:
    built = httpx.Request("POST", "http://gateway/", files=files, data=data)
    return _request(built.read(), dict(built.headers))


def _json(payload: object) -> Request:
    body = json.dumps(payload).encode()
    return _request(body, {"content-type": "application/json", "content-length": str(len(body))})


def _read(request: Request, fields: dict[str, bool] = ONE, model: Any = ImagePayload) -> Any:
    return asyncio.run(read_images(request, SETTINGS, fields, model))


def test_multipart_and_json_give_the_same_bytes() -> None:
    image = b"\x89PNG fake image bytes"
    from_form = _read(_multipart([("image", ("a.png", image))]))
    from_json = _read(_json({"image": base64.b64encode(image).decode()}))
    assert from_form == from_json == {"image": [image]}


def test_repeated_fields_keep_their_order() -> None:
    files = [("images", (f"{i}.png", bytes([i]) * 10)) for i in range(3)]
    assert _read(_multipart(files), MANY, BatchPayload) == {
        "images": [bytes([i]) * 10 for i in range(3)]
    }


@pytest.mark.parametrize(
    ("request_factory", "error", "match"),
    [
        (
            lambda: _multipart([("other", ("a.png", b"x"))]),
            InvalidParameter,
            "missing image field 'image'",
        ),
        (
            lambda: _multipart([("other", ("a.png", b"x"))], {"image": "text"}),
            InvalidParameter,
            "file part",
        ),
        (
            lambda: _multipart([("image", ("a.png", b"x")), ("image", ("b.png", b"y"))]),
            InvalidParameter,
            "takes one image",
        ),
        (lambda: _multipart([("image", ("a.png", b""))]), InvalidInput, "empty"),
        (lambda: _json({"image": "%%% not base64"}), InvalidInput, "base64"),
        (lambda: _json({"picture": "AAAA"}), InvalidParameter, "invalid JSON body"),
        (lambda: _json([[[[[[]]]]]]), InvalidParameter, "invalid JSON body"),
        (
            lambda: _request(b"raw", {"content-type": "image/png"}),
            UnsupportedMediaType,
            "multipart",
        ),
        (
            lambda: _request(b"", {"content-type": "application/json"}, disconnect=True),
            InvalidInput,
            "disconnected",
        ),
    ],
    ids=[
        "missing",
        "text-field",
        "two-for-one",
        "empty",
        "bad-base64",
        "wrong-json-field",
        "wrong-json-shape",
        "raw-body",
        "disconnect",
    ],
)
def test_bad_bodies_are_clear_4xx(request_factory: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        _read(request_factory())


def test_more_images_than_the_batch_limit_is_422() -> None:
    files = [("images", (f"{i}.png", b"x")) for i in range(4)]
    with pytest.raises(InvalidParameter, match="limit is 3"):
        _read(_multipart(files), MANY, BatchPayload)


def test_an_image_over_its_byte_limit_is_413() -> None:
    big = b"x" * (SETTINGS.max_image_bytes + 1)
    with pytest.raises(PayloadTooLarge, match="per image"):
        _read(_multipart([("image", ("big.png", big))]))


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    limit = request_limit_bytes(ONE, SETTINGS.max_image_bytes, SETTINGS.max_batch_images)
    request = _request(
        b"",
        {"content-type": "multipart/form-data", "content-length": str(limit + 1)},
        disconnect=True,
    )
    # A disconnect would be reported if the body were read: the size check comes first.
    with pytest.raises(PayloadTooLarge, match="exceeds"):
        _read(request)


def test_a_streamed_body_over_the_limit_stops_at_the_limit() -> None:
    limit = request_limit_bytes(ONE, SETTINGS.max_image_bytes, SETTINGS.max_batch_images)
    request = _request(
        b"x" * (limit + 10), {"content-type": "multipart/form-data; boundary=x"}, chunks=8
    )
    with pytest.raises(PayloadTooLarge, match="exceeds"):
        _read(request)


def test_the_route_limit_grows_with_repeatable_fields() -> None:
    one = request_limit_bytes(ONE, 1000, 16)
    many = request_limit_bytes(MANY, 1000, 16)
    assert many - one == 16 * 1000 * 4 // 3 - 1000 * 4 // 3  # 15 more images, base64
    assert one >= 1000 * 4 // 3  # base64 of one image fits


def test_large_parts_stay_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_disk(*args: object, **kwargs: object) -> None:
        raise AssertionError("an upload was written to a temporary file")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_disk)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_disk)
    image = b"y" * (3 * 1024 * 1024)  # beyond Starlette's 1 MB spool threshold
    assert _read(_multipart([("image", ("a.png", image))])) == {"image": [image]}
