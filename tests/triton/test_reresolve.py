"""TritonFaceModels' own re-resolution of a dns:/// target, with a fake resolver and fake
channels (no Triton): a changed set gets a new channel and the old one is closed after a
call's time, a failed lookup keeps the channel, close() ends it all, and an UNAVAILABLE call
resolves again at once (gRPC's re-resolution on failure, which a fixed list does not do).
(tests/triton/test_replicas.py runs the same against two real Tritons.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tritonclient.utils import InferenceServerException

from gateway.errors import UpstreamUnavailable
from gateway.triton import client as triton_client
from gateway.triton.client import TritonFaceModels, TritonTarget

URL = "dns:///triton-headless:8001"


class FakeChannel:
    def __init__(self, url: str, **_: Any) -> None:
        self.url = url
        self.closed = False

    async def close(self) -> None:
        self.closed = True


class FakeResolver:
    def __init__(self) -> None:
        self.answers: list[list[str] | Exception] = [["10.0.0.1:8001"]]
        self.calls = 0

    async def __call__(self, url: str) -> list[str]:
        assert url == URL
        self.calls += 1
        answer = self.answers[min(self.calls, len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture(autouse=True)
def fake_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(triton_client.grpcclient, "InferenceServerClient", FakeChannel)


def models(resolver: FakeResolver, reresolve_s: float = 0.0) -> TritonFaceModels:
    target = TritonTarget(
        url=URL, timeout_s=0.01, unavailable_retries=1, repository_key="", reresolve_s=reresolve_s
    )
    return TritonFaceModels(target, resolve=resolver)


async def resolved(m: TritonFaceModels) -> None:
    """Start a due re-resolution and let it finish."""
    m._reresolve_if_due()
    while m._resolving is not None:
        await asyncio.sleep(0)


def test_a_changed_set_gets_a_new_channel_and_the_old_one_is_closed_later() -> None:
    async def scenario() -> None:
        resolver = FakeResolver()
        m = models(resolver)
        first = m._client
        await resolved(m)  # the set the channel was dialled with: no new channel
        assert m._client is first and m.dialled == URL
        resolver.answers.append(["10.0.0.1:8001", "10.0.0.2:8001"])
        await resolved(m)
        assert m.dialled == "ipv4:10.0.0.1:8001,10.0.0.2:8001"
        assert m._client is not first and not first.closed  # calls on it may still run
        await asyncio.sleep(1.2)  # timeout_s + 1
        assert first.closed and not m._retiring
        await m.close()
        assert m._client.closed

    asyncio.run(scenario())


def test_a_failed_lookup_keeps_the_channel() -> None:
    async def scenario() -> None:
        resolver = FakeResolver()
        resolver.answers.append(UpstreamUnavailable("no such host", retry_after_s=5))
        m = models(resolver)
        await resolved(m)
        first = m._client
        await resolved(m)
        assert resolver.calls == 2 and m._client is first and not first.closed
        await m.close()

    asyncio.run(scenario())


def test_close_cancels_a_lookup_in_flight_and_closes_retiring_channels() -> None:
    async def scenario() -> None:
        resolver = FakeResolver()
        m = models(resolver)
        await resolved(m)
        first = m._client
        resolver.answers.append(["10.0.0.2:8001"])
        await resolved(m)
        hung = asyncio.Event()

        async def hangs(url: str) -> list[str]:
            await hung.wait()
            return []

        m._resolve = hangs
        m._reresolve_if_due()
        lookup = m._resolving
        assert lookup is not None
        await m.close()
        assert lookup.cancelled() and first.closed and m._client.closed

    asyncio.run(scenario())


def test_an_unavailable_call_resolves_again_at_once() -> None:
    async def scenario() -> None:
        resolver = FakeResolver()
        m = models(resolver, reresolve_s=3600)
        await resolved(m)
        assert resolver.calls == 1
        resolver.answers.append(["10.0.0.3:8001"])

        async def unavailable() -> None:
            raise InferenceServerException("connection refused", status="StatusCode.UNAVAILABLE")

        with pytest.raises(UpstreamUnavailable):
            await m._call("detector", unavailable)
        while m._resolving is not None:
            await asyncio.sleep(0)
        # Not due for an hour, yet resolved again: the retry dials the new set.
        assert resolver.calls == 2 and m.dialled == "ipv4:10.0.0.3:8001"
        await m.close()

    asyncio.run(scenario())
