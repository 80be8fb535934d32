"""The `faces` model's request parameters, checked against the bounds /v1/detect uses.

Triton hands a Python-backend model its request parameters as JSON (bool, int64, string; a
client's double arrives as a number where the server passes it on). Numbers and booleans are
also accepted as strings, as a query string carries them to /v1/detect. Names neither the
model nor /v1/detect knows are ignored, as /v1/detect ignores unknown query parameters; the
/v1/detect options this model does not serve are refused by name rather than ignored, so a
client never takes an answer without them for one with them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from gateway import defaults, processing

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


# /v1/detect's query parameters the faces model does not serve (landmarks: it always answers
# them, so only landmarks=false is refused).
NOT_SERVED = ("liveness", "liveness_threshold", "dense_landmarks", "pose", "quality")


class InvalidRequest(ValueError):
    """A request the model refuses (Triton's INVALID_ARG); the message says what to send."""


@dataclass(frozen=True)
class FacesDefaults:
    """What a request gets for a parameter it leaves out (the model config's parameters)."""

    threshold: float = defaults.DETECT_THRESHOLD
    det_sizes_px: tuple[int, ...] = processing.DEFAULT_DET_SIZES_PX
    embed: bool = True
    # The only detector sizes served (the TensorRT variant's warmed sizes); () allows any.
    det_sizes_allowed_px: tuple[int, ...] = ()


@dataclass(frozen=True)
class FacesRequest:
    """One request's detection options, bounds checked."""

    det_sizes_px: tuple[int, ...]
    threshold: float
    max_faces: int
    min_size_px: float
    embed: bool
    # Gender and age per face (the genderage model, called like the recognizer).
    attributes: bool = False


def _number(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool):
        raise InvalidRequest(f"parameter {name} is a number, not a bool")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise InvalidRequest(f"parameter {name}: {value!r} is not a number") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(f"parameter {name} is a number between {low:g} and {high:g}")
    if not low <= value <= high:
        raise InvalidRequest(f"parameter {name} must be between {low:g} and {high:g}, not {value}")
    return float(value)


def _whole(name: str, value: object, high: int) -> int:
    if isinstance(value, str):
        text = value.strip()
        # isdigit() alone also accepts digits such as '²' that int() refuses.
        if not (text.isascii() and text.isdigit()):
            raise InvalidRequest(f"parameter {name} is a whole number between 0 and {high}")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"parameter {name} is a whole number between 0 and {high}")
    if not 0 <= value <= high:
        raise InvalidRequest(f"parameter {name} must be between 0 and {high}, not {value}")
    return value


def _flag(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidRequest(f"parameter {name} is a bool (true or false), not {value!r}")


def _det_sizes(value: object) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidRequest("parameter det_sizes is a string such as '640' or '128,640'")
    if len(value) > defaults.DET_SIZES_MAX_CHARS:
        raise InvalidRequest(
            f"parameter det_sizes is longer than {defaults.DET_SIZES_MAX_CHARS} characters"
        )
    try:
        return processing.parse_det_sizes(value)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


def parse_parameters(raw: Mapping[str, object], fallback: FacesDefaults) -> FacesRequest:
    """FacesRequest from a request's parameter map; InvalidRequest says what is wrong."""
    for name in NOT_SERVED:
        if name in raw:
            raise InvalidRequest(
                f"parameter {name} is not served by the faces model; leave it out, or ask "
                f"/v1/detect?{name}=... for it"
            )
    if "landmarks" in raw and not _flag("landmarks", raw["landmarks"]):
        raise InvalidRequest(
            "parameter landmarks: the faces model always answers LANDMARKS; leave it out"
        )
    det_sizes = fallback.det_sizes_px
    if "det_sizes" in raw:
        det_sizes = _det_sizes(raw["det_sizes"])
    allowed = fallback.det_sizes_allowed_px
    refused = [size for size in det_sizes if allowed and size not in allowed]
    if refused:
        raise InvalidRequest(
            f"parameter det_sizes: {','.join(map(str, refused))} is not served here: this "
            f"detector is prepared for {','.join(map(str, allowed))} only "
            "(the config's det_sizes_allowed); ask for those"
        )
    threshold = fallback.threshold
    if "threshold" in raw:
        threshold = _number("threshold", raw["threshold"], 0.0, 1.0)
    max_faces = (
        _whole("max_faces", raw["max_faces"], defaults.MAX_FACES_LIMIT) if "max_faces" in raw else 0
    )
    min_size = 0.0
    if "min_size" in raw:
        min_size = _number("min_size", raw["min_size"], 0.0, defaults.MIN_SIZE_LIMIT_PX)
    embed = _flag("embed", raw["embed"]) if "embed" in raw else fallback.embed
    attributes = _flag("attributes", raw["attributes"]) if "attributes" in raw else False
    return FacesRequest(det_sizes, threshold, max_faces, min_size, embed, attributes)


def parse_parameters_json(text: str, fallback: FacesDefaults) -> FacesRequest:
    """parse_parameters of the JSON object Triton's request.parameters() returns."""
    try:
        raw = json.loads(text or "{}")
    except ValueError:
        raise InvalidRequest("the request parameters are not a JSON object") from None
    if not isinstance(raw, dict):
        raise InvalidRequest("the request parameters are not a JSON object")
    return parse_parameters(raw, fallback)
