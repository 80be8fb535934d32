"""The one seam for tritonclient errors: gRPC status code -> the gateway's error tree.

tritonclient reports every failure as InferenceServerException with the gRPC status code
as text ("StatusCode.NOT_FOUND"); translate_error maps that code through one table, in
the manner of httpx's mapping of httpcore errors. The message text never decides.
"""

from __future__ import annotations

import grpc
from tritonclient.utils import InferenceServerException

from gateway.errors import UpstreamError, UpstreamFailed, UpstreamTimeout, UpstreamUnavailable

# gRPC status -> the gateway's error, most specific first; anything else is UpstreamFailed.
# Triton answers NOT_FOUND for a model that is not loaded (e.g. the swapper after an idle
# unload) and UNAVAILABLE when the server is unreachable or the model is not ready; while it
# shuts down, calls in flight also end CANCELLED (seen under load): a retry can succeed.
_STATUS_ERRORS: tuple[tuple[frozenset[grpc.StatusCode], type[UpstreamError], str], ...] = (
    (
        frozenset({grpc.StatusCode.DEADLINE_EXCEEDED}),
        UpstreamTimeout,
        "Triton did not answer for model '{model}' within the deadline",
    ),
    (
        frozenset(
            {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.CANCELLED}
        ),
        UpstreamUnavailable,
        "Triton model '{model}' is unavailable: {message}",
    ),
)
# Seconds a client should wait before retrying, per translated error.
_RETRY_AFTER_S: dict[type[UpstreamError], int] = {UpstreamUnavailable: 5}


def status_code(exc: InferenceServerException) -> grpc.StatusCode | None:
    """The gRPC status code of a tritonclient error (None when it carries none)."""
    name = str(exc.status() or "").removeprefix("StatusCode.")
    return grpc.StatusCode.__members__.get(name)


def translate_error(exc: InferenceServerException, model: str) -> UpstreamError:
    """Map a tritonclient error to the gateway's error tree by its gRPC status code."""
    code = status_code(exc)
    message = str(exc.message() or exc)
    for codes, error, template in _STATUS_ERRORS:
        if code in codes:
            text = template.format(model=model, message=message)
            return error(text, retry_after_s=_RETRY_AFTER_S.get(error))
    return UpstreamFailed(f"Triton failed on model '{model}': {message}")
