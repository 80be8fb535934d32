"""A gallery nobody can connect to is told apart from a busy pool, with libpq's reason and
never the password. (A wrong password against the real PostgreSQL, and a really exhausted
pool: tests/gallery/test_gallery_readiness.py.)"""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import GalleryUnavailable
from gateway.storage.postgres import PostgresGalleryStore

from ..conftest import free_port

PASSWORD = "s3cret-Pw"


def open_error(url: str) -> str:
    async def scenario() -> str:
        store = PostgresGalleryStore(url, timeout_s=0.5)
        try:
            with pytest.raises(GalleryUnavailable) as caught:
                await store.open()
        finally:
            await store.close()
        return caught.value.message

    return asyncio.run(scenario())


def test_an_unreachable_database_says_it_cannot_connect_and_why() -> None:
    message = open_error(f"postgresql://facegate:{PASSWORD}@127.0.0.1:{free_port()}/facegate")
    assert message.startswith("cannot connect to the gallery database (wrong password, host")
    assert "Connection refused" in message and "FACEGATE_GALLERY_URL" in message
    assert "POOL_SIZE" not in message and PASSWORD not in message


def test_a_bad_url_is_named_without_its_password() -> None:
    message = open_error(f"postgresql://facegate:{PASSWORD}@127.0.0.1:notaport/facegate")
    assert "cannot connect" in message and '"notaport"' in message
    assert PASSWORD not in message
