"""argparse types that refuse impossible numbers (argparse prints the message and exits 2)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

_N = TypeVar("_N", int, float)


def _checked(text: str, convert: Callable[[str], _N], ok: Callable[[_N], bool], what: str) -> _N:
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not ok(value):  # a comparison with nan is false: nan is refused too
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1 to 65535 (argparse prints the message and exits 2)."""
    return _checked(text, int, lambda p: 1 <= p <= 65535, "a port number (1 to 65535)")


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    return _checked(text, int, lambda v: v >= 1, "a whole number of at least 1")


def positive_float(text: str) -> float:
    """argparse type: a number above 0 (seconds, sizes)."""
    return _checked(text, float, lambda v: v > 0, "a number above 0")


def non_negative_int(text: str) -> int:
    """argparse type: a whole number of at least 0."""
    return _checked(text, int, lambda v: v >= 0, "a whole number of at least 0")


def non_negative_float(text: str) -> float:
    """argparse type: a number of at least 0 (a wait that may be none)."""
    return _checked(text, float, lambda v: v >= 0, "a number of at least 0")
