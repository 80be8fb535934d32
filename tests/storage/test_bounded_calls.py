"""Store calls bounded by statement_timeout_s: a hung database costs a 503, not the deadline.

No database needed: the bound wraps any coroutine method of the store.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import GalleryUnavailable
from gateway.storage.base import bounded as _bounded
from gateway.storage.postgres import PostgresGalleryStore


def test_a_call_past_the_bound_answers_503_without_awaiting_its_cancellation() -> None:
    events: list[str] = []

    async def hangs(store: PostgresGalleryStore) -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            events.append("cancelled")
            # What psycopg does with a hung server: wait (here: for ever) for the cancel.
            await asyncio.Event().wait()
        return "never"

    async def scenario() -> None:
        store = PostgresGalleryStore("postgresql:///unused", statement_timeout_s=0.05)
        with pytest.raises(GalleryUnavailable) as caught:
            await asyncio.wait_for(_bounded(hangs)(store), timeout=30)
        assert caught.value.retry_after_s and "did not answer within 0.05 s" in caught.value.message
        await asyncio.sleep(0)  # the abandoned call has seen its cancellation
        assert events == ["cancelled"]

    asyncio.run(scenario())


def test_a_call_within_the_bound_returns_its_result_and_errors() -> None:
    async def quick(store: PostgresGalleryStore, value: int) -> int:
        await asyncio.sleep(0)
        if value < 0:
            raise ValueError("negative")
        return value * 2

    async def scenario() -> None:
        store = PostgresGalleryStore("postgresql:///unused", statement_timeout_s=5)
        assert await _bounded(quick)(store, 21) == 42
        with pytest.raises(ValueError, match="negative"):
            await _bounded(quick)(store, -1)
        unbounded = PostgresGalleryStore("postgresql:///unused")
        assert await _bounded(quick)(unbounded, 1) == 2

    asyncio.run(scenario())


def test_pgvector_versions_compare_by_number() -> None:
    from gateway.storage.base import _version

    assert _version("0.8.0") >= (0, 8) and _version("0.10.1") >= (0, 8)
    assert _version("0.7.4") < (0, 8) and _version("0.7.0-dev") < (0, 8)
    assert _version("") == ()
