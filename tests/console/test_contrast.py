"""The console's colours meet WCAG 2.1 AA contrast (4.5:1 for text) in both colour schemes."""

from __future__ import annotations

import re

import pytest

from gateway.api.console import CONSOLE_DIR

AA_TEXT = 4.5
# (text, background) pairs the stylesheet puts together.
PAIRS = [
    ("fg", "bg"),
    ("muted", "bg"),
    ("accent", "bg"),
    ("error", "bg"),
    ("ok", "bg"),
    ("fg", "panel"),
    ("accent", "panel"),
    ("error", "panel"),
    ("bg", "accent"),  # the current view's nav link
]


def _schemes() -> dict[str, dict[str, str]]:
    css = (CONSOLE_DIR / "console.css").read_text()
    light = css[css.index(":root") : css.index("@media (prefers-color-scheme: dark)")]
    dark = css[css.index("@media (prefers-color-scheme: dark)") :].split("}")[0]
    pattern = re.compile(r"--([a-z]+):\s*(#[0-9a-fA-F]{6})")
    return {"light": dict(pattern.findall(light)), "dark": dict(pattern.findall(dark))}


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    # sRGB to linear, as WCAG 2.1 defines relative luminance.
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_contrast_formula_matches_known_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_colours_meet_aa(scheme: str) -> None:
    colours = _schemes()[scheme]
    assert {name for pair in PAIRS for name in pair} <= set(colours)
    low = {
        f"{text} on {back}": round(contrast(colours[text], colours[back]), 2)
        for text, back in PAIRS
        if contrast(colours[text], colours[back]) < AA_TEXT
    }
    assert low == {}
