"""docs/OPERATIONS.md (and docs/COMPAT.md for the compatibility routes) document every
setting with the default the code has.

A row is `| `FACEGATE_NAME` | default | meaning |`; one row may name several settings
(`FACEGATE_DETECTOR_MODEL`, `_RECOGNIZER_MODEL`, ...) with their defaults in the same order.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from gateway.config import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"
ROW = re.compile(r"^\| (`FACEGATE_[A-Z0-9_]+`(?:, `_[A-Z0-9_]+`)*) \| ([^|]*) \|", re.M)


def documented_defaults() -> dict[str, str]:
    rows: dict[str, str] = {}
    for doc in ("OPERATIONS.md", "COMPAT.md"):
        for names_cell, default_cell in ROW.findall((DOCS / doc).read_text()):
            names = [n.strip("`") for n in names_cell.split(", ")]
            names = [n if n.startswith("FACEGATE") else f"FACEGATE{n}" for n in names]
            defaults = [d.strip().strip("`") for d in default_cell.split(", ")]
            if len(names) > 1:
                assert len(defaults) == len(names), names_cell
                rows.update(zip(names, defaults, strict=True))
            else:
                rows[names[0]] = default_cell.strip().strip("`")
    return rows


def code_default(field: str) -> Any:
    info = Settings.model_fields[field]
    value = info.default_factory() if info.default_factory else info.default  # type: ignore[call-arg]
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def read_doc_default(text: str, like: Any) -> Any:
    if text == "(empty)":
        return ""
    if text == "(none)":
        return None
    if isinstance(like, bool):
        return {"true": True, "false": False}[text]
    if isinstance(like, (int, float)):
        return float(text)
    if isinstance(like, list):
        assert text == "[]", text
        return []
    return text


def test_every_setting_is_documented_with_its_default() -> None:
    rows = documented_defaults()
    missing = [f for f in Settings.model_fields if f"FACEGATE_{f.upper()}" not in rows]
    assert not missing, f"settings missing from docs/OPERATIONS.md or docs/COMPAT.md: {missing}"
    wrong = {}
    for field in Settings.model_fields:
        default = code_default(field)
        documented = read_doc_default(rows[f"FACEGATE_{field.upper()}"], default)
        number = isinstance(default, (int, float)) and not isinstance(default, bool)
        if documented != (float(default) if number else default):
            wrong[field] = (default, documented)
    assert not wrong, f"documented defaults differ from the code (code, docs): {wrong}"


def test_documented_names_are_settings() -> None:
    names = {f"FACEGATE_{f.upper()}" for f in Settings.model_fields}
    # FACEGATE_DEBUG is the command line's, not the gateway's.
    assert set(documented_defaults()) - names <= {"FACEGATE_DEBUG"}
