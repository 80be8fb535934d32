"""tritonclient errors -> the gateway's tree, by gRPC status code through one table (no Triton)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from tritonclient.utils import InferenceServerException

from gateway import errors
from gateway.triton.client import TritonFaceModels, TritonTarget
from gateway.triton.errors import translate_error

EXPECTED = {
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.UpstreamTimeout,
    grpc.StatusCode.UNAVAILABLE: errors.UpstreamUnavailable,
    grpc.StatusCode.NOT_FOUND: errors.UpstreamUnavailable,
    grpc.StatusCode.CANCELLED: errors.UpstreamUnavailable,
}


def _error(code: grpc.StatusCode | None, message: str = "boom") -> InferenceServerException:
    # tritonclient's gRPC client stores the status as str(grpc.StatusCode.X).
    return InferenceServerException(msg=message, status=str(code) if code else None)


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda c: c.name)
def test_every_status_code_has_one_translation(code: grpc.StatusCode) -> None:
    error = translate_error(_error(code, "why"), "detector")
    expected = EXPECTED.get(code, errors.UpstreamFailed)
    assert type(error) is expected
    assert "detector" in error.message
    assert (error.retry_after_s is not None) == (expected is errors.UpstreamUnavailable)


def test_the_message_text_does_not_decide() -> None:
    # Triton's words "not found" under another status are not an unavailable model.
    error = translate_error(_error(grpc.StatusCode.INTERNAL, "model 'x' is not found"), "x")
    assert type(error) is errors.UpstreamFailed
    assert type(translate_error(_error(None, "UNAVAILABLE"), "x")) is errors.UpstreamFailed


class _Flaky:
    """Raises the given status `failures` times, then answers."""

    def __init__(self, code: grpc.StatusCode, failures: int) -> None:
        self.code = code
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise _error(self.code)
        return "answer"


def _models(retries: int) -> TritonFaceModels:
    target = TritonTarget(
        url="127.0.0.1:1", timeout_s=1.0, unavailable_retries=retries, repository_key=""
    )
    return TritonFaceModels(target)


@pytest.mark.parametrize(
    ("code", "retried"),
    [
        (grpc.StatusCode.UNAVAILABLE, True),
        (grpc.StatusCode.NOT_FOUND, False),
        (grpc.StatusCode.INTERNAL, False),
    ],
)
def test_only_unavailable_is_retried(
    code: grpc.StatusCode, retried: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.triton.client.RETRY_BACKOFF_S", 0.0)

    async def run() -> tuple[Any, _Flaky]:
        models = _models(retries=2)
        flaky = _Flaky(code, failures=2)
        try:
            return await models._call("detector", flaky), flaky
        except errors.FacegateError as exc:
            return exc, flaky
        finally:
            await models.close()

    outcome, flaky = asyncio.run(run())
    if retried:
        assert outcome == "answer" and flaky.calls == 3
    else:
        assert isinstance(outcome, errors.UpstreamError) and flaky.calls == 1
        assert isinstance(outcome.__cause__, InferenceServerException)
