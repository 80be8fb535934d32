"""Images of an /extract request: inline data, files under a folder, allow-listed URLs.

A bad image never fails the request: it becomes an error at its index, reported as a
failed image. Paths resolve under FACEGATE_COMPAT_IMAGES_DIR only (no traversal, no
symlinks out of it); http(s) is fetched only from hosts in FACEGATE_COMPAT_URL_HOSTS,
without following redirects, so the route cannot be used to reach other machines.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from gateway.api.compat.ifr_schemas import IfrImages
from gateway.config import Settings
from gateway.errors import (
    FacegateError,
    InvalidInput,
    InvalidParameter,
    PayloadTooLarge,
    UpstreamUnavailable,
)
from gateway.service.extract import ImageSource

URL_TIMEOUT_S = 10.0


def _checked(data: bytes, where: str, max_image_bytes: int) -> ImageSource:
    if not data:
        return InvalidInput(f"{where} is empty")
    if len(data) > max_image_bytes:
        return PayloadTooLarge(f"{where} is {len(data)} bytes; the limit is {max_image_bytes}")
    return data


def _inline(item: str | bytes, index: int, max_image_bytes: int) -> ImageSource:
    where = f"images.data[{index}]"
    if isinstance(item, bytes):
        return _checked(item, where, max_image_bytes)
    # InsightFace-REST accepts data: URLs by keeping what follows the last comma.
    encoded = item.rsplit(",", 1)[-1]
    try:
        return _checked(base64.b64decode(encoded, validate=True), where, max_image_bytes)
    except (binascii.Error, ValueError):
        return InvalidInput(f"{where} is not valid base64")


def _read_file(folder: Path | None, relative: str, max_image_bytes: int) -> ImageSource:
    if folder is None:
        return InvalidParameter(
            f"'{relative}': image paths need FACEGATE_COMPAT_IMAGES_DIR set on the server; "
            "or send the image bytes in images.data"
        )
    try:
        root = folder.resolve()
        # resolve() follows symlinks, so a link pointing out of the folder is refused too.
        path = (root / relative.lstrip("/")).resolve()
        if not path.is_relative_to(root):
            return InvalidParameter(f"'{relative}' is outside the images folder")
        size = path.stat().st_size
        if size > max_image_bytes:
            return PayloadTooLarge(f"'{relative}' is {size} bytes; the limit is {max_image_bytes}")
        return _checked(path.read_bytes(), f"'{relative}'", max_image_bytes)
    except FileNotFoundError:
        return InvalidParameter(f"'{relative}' not found in the images folder")
    except OSError as exc:
        return InvalidInput(f"'{relative}' cannot be read: {exc.strerror or 'I/O error'}")
    except ValueError:  # e.g. a NUL byte in the path
        return InvalidParameter(f"{relative!r} is not a valid path")


async def _fetch(
    client: httpx.AsyncClient, url: str, hosts: set[str], max_image_bytes: int
) -> ImageSource:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:  # e.g. an unterminated IPv6 literal
        return InvalidParameter(f"'{url}' is not a valid URL")
    if host not in hosts:
        return InvalidParameter(
            f"'{url}': fetching from {host or 'this URL'} is not allowed; add the host to "
            "FACEGATE_COMPAT_URL_HOSTS or send the image bytes in images.data"
        )
    try:
        async with client.stream("GET", url) as response:
            if response.status_code != 200:
                return InvalidInput(f"'{url}' answered HTTP {response.status_code}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_image_bytes:
                    return PayloadTooLarge(f"'{url}' is over the {max_image_bytes} byte limit")
                chunks.append(chunk)
    except httpx.InvalidURL:
        return InvalidParameter(f"'{url}' is not a valid URL")
    except httpx.HTTPError as exc:
        return UpstreamUnavailable(f"'{url}' could not be fetched: {type(exc).__name__}")
    return _checked(b"".join(chunks), f"'{url}'", max_image_bytes)


async def load_sources(images: IfrImages, settings: Settings) -> list[ImageSource]:
    """Each requested image's bytes, or the error that replaces it; request order."""
    if (images.data is None) == (images.urls is None):
        raise InvalidParameter("send the images as either images.data or images.urls")
    items: list[str | bytes] | list[str] = images.data or images.urls or []
    if not items:
        raise InvalidParameter("no images: images.data or images.urls is empty")
    if len(items) > settings.compat_max_images:
        raise InvalidParameter(
            f"{len(items)} images; the limit is {settings.compat_max_images} per request "
            "(FACEGATE_COMPAT_MAX_IMAGES)"
        )
    limit = settings.max_image_bytes
    if images.data is not None:
        return [_inline(item, i, limit) for i, item in enumerate(images.data)]
    urls = images.urls or []
    hosts = {h.strip().lower() for h in settings.compat_url_hosts.split(",") if h.strip()}
    async with httpx.AsyncClient(timeout=URL_TIMEOUT_S, follow_redirects=False) as client:

        async def one(url: str) -> ImageSource:
            if url.lower().startswith(("http://", "https://")):
                return await _fetch(client, url, hosts, limit)
            return await asyncio.to_thread(_read_file, settings.compat_images_dir, url, limit)

        return list(await asyncio.gather(*(one(url) for url in urls)))


def failure_text(error: FacegateError) -> str:
    """What a failed image reports (InsightFace-REST's 'traceback' field): a reason, no trace."""
    return f"{error.code}: {error.message}"
