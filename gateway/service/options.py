"""Per-request option parsing shared by the REST routes and the SDK."""

from __future__ import annotations

from collections.abc import Sequence

from gateway import processing
from gateway.errors import InvalidParameter


def resolve_det_sizes(
    requested: str | Sequence[int] | None, default: tuple[int, ...]
) -> tuple[int, ...]:
    """Detector frame sides from "640", "128,640" or (128, 640); `default` when None.

    Raises InvalidParameter (422) that says which sizes are accepted.
    """
    if requested is None:
        return default
    text = requested if isinstance(requested, str) else ",".join(str(s) for s in requested)
    try:
        return processing.parse_det_sizes(text)
    except ValueError as exc:
        raise InvalidParameter(str(exc)) from exc
