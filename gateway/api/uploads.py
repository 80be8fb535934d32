"""Reading images out of requests: multipart or JSON base64, with byte limits, in memory.

The body is read in full (bounded by the request limit) before parsing, so uploads never
spill to a temporary file: faces are biometric data and stay off disk.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncGenerator

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from gateway.config import Settings
from gateway.errors import InvalidInput, InvalidParameter, PayloadTooLarge, UnsupportedMediaType


async def read_body(request: Request, limit_bytes: int) -> bytes:
    """The whole body, refusing (413) as soon as it exceeds the limit."""
    declared = request.headers.get("content-length", "")
    if (
        declared.isascii()
        and declared.isdigit()
        and len(declared) < 19
        and int(declared) > limit_bytes
    ):
        raise PayloadTooLarge(
            f"request body of {declared} bytes exceeds the {limit_bytes} byte limit"
        )
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit_bytes:
                raise PayloadTooLarge(f"request body exceeds the {limit_bytes} byte limit")
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise InvalidInput("the client disconnected before the body arrived") from exc
    return b"".join(chunks)


async def _replay(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body


class _InMemoryParser(MultiPartParser):
    # Parts stay in memory up to this size (Starlette's default spills to disk at 1 MB).
    spool_max_size = 1 << 40


def _check_image_size(data: bytes, field: str, max_image_bytes: int) -> bytes:
    if len(data) > max_image_bytes:
        raise PayloadTooLarge(
            f"'{field}' is {len(data)} bytes; the limit is {max_image_bytes} bytes per image"
        )
    if not data:
        raise InvalidInput(f"'{field}' is empty: send the image file's bytes")
    return data


def _b64(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"'{field}' is not valid base64") from exc


def request_limit_bytes(fields: dict[str, bool], max_image_bytes: int, max_images: int) -> int:
    """Largest body a route accepts: its images at the per-image limit, base64, plus slack."""
    images = sum(max_images if repeated else 1 for repeated in fields.values())
    return images * max_image_bytes * 4 // 3 + 1024 * 1024


def _parse_json(
    body: bytes, json_model: type[BaseModel], fields: dict[str, bool]
) -> dict[str, list[bytes]]:
    try:
        payload = json_model.model_validate(json.loads(body))
    except (ValueError, ValidationError, RecursionError) as exc:
        raise InvalidParameter(f"invalid JSON body: {str(exc)[:500]}") from exc
    found: dict[str, list[bytes]] = {}
    for name, repeated in fields.items():
        value = getattr(payload, name)
        items = value if repeated else [value]
        found[name] = [_b64(item, name) for item in items]
    return found


async def parse_form(request: Request, body: bytes) -> FormData:
    """A multipart body (already read, bounded) parsed in memory; close() it when done."""
    parser = _InMemoryParser(request.headers, _replay(body), max_files=64, max_fields=64)
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise InvalidInput(f"malformed multipart body: {exc.message}") from exc


async def read_images(
    request: Request,
    settings: Settings,
    fields: dict[str, bool],
    json_model: type[BaseModel] | None,
) -> dict[str, list[bytes]]:
    """Images per field from multipart (field name = form field) or JSON (base64).

    `fields` maps a field name to whether it may repeat (up to max_batch_images). The body
    is bounded by what those images may weigh. Missing fields and too many images are 422.
    """
    max_image_bytes, max_images = settings.max_image_bytes, settings.max_batch_images
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request, request_limit_bytes(fields, max_image_bytes, max_images))
    found: dict[str, list[bytes]] = {name: [] for name in fields}
    if content_type == "multipart/form-data":
        form = await parse_form(request, body)
        for name in fields:
            for value in form.getlist(name):
                if not isinstance(value, UploadFile):
                    raise InvalidParameter(
                        f"'{name}' must be a file part (with a filename), not a text field"
                    )
                found[name].append(await value.read())
        form_close = form.close()
        await form_close
    elif content_type == "application/json" and json_model is not None:
        # Parsing and base64-decoding megabytes is CPU work: keep it off the event loop.
        found = await asyncio.to_thread(_parse_json, body, json_model, fields)
    else:
        accepted = "multipart/form-data" + (
            " or as application/json with base64" if json_model is not None else ""
        )
        raise UnsupportedMediaType(f"send the images as {accepted}")
    for name, repeated in fields.items():
        if not found[name]:
            raise InvalidParameter(f"missing image field '{name}'")
        if not repeated and len(found[name]) > 1:
            raise InvalidParameter(f"field '{name}' takes one image")
        if len(found[name]) > max_images:
            raise InvalidParameter(
                f"{len(found[name])} images in '{name}'; the limit is {max_images}"
            )
        found[name] = [_check_image_size(d, name, max_image_bytes) for d in found[name]]
    return found
