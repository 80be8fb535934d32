"""gateway.ops.reports: tables and generated blocks that leave the rest of a document alone."""

from __future__ import annotations

from pathlib import Path

from gateway.ops.reports import md_table, replace_block, text_table

BEGIN, END = "<!-- x: begin -->", "<!-- x: end -->"


def test_text_table_aligns_columns_without_trailing_spaces() -> None:
    text = text_table(["a", "bb"], [["long cell", "1"], ["s", ""]])
    assert text.splitlines() == ["a          bb", "long cell  1", "s"]


def test_md_table_has_a_separator_per_column() -> None:
    assert md_table(["a", "b"], [["1", "2"]]).splitlines() == [
        "| a | b |",
        "|---|---|",
        "| 1 | 2 |",
    ]


def test_replace_block_keeps_what_is_around_it(tmp_path: Path) -> None:
    path = tmp_path / "doc.md"
    path.write_text(f"# Title\n\nBefore.\n\n{BEGIN}\nold\n{END}\n\nAfter.\n")
    for _ in range(2):
        replace_block(path, f"{BEGIN}\nnew\n{END}", "## Heading")
    assert path.read_text() == f"# Title\n\nBefore.\n\n{BEGIN}\nnew\n{END}\n\nAfter.\n"


def test_replace_block_appends_under_a_heading_and_creates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "doc.md"
    replace_block(path, f"{BEGIN}\nfirst\n{END}", "## Heading")
    assert path.read_text() == f"## Heading\n\n{BEGIN}\nfirst\n{END}\n"
    replace_block(path, "<!-- y: begin -->\nother\n<!-- y: end -->")
    text = path.read_text()
    assert text.count(BEGIN) == 1 and text.endswith("<!-- y: end -->\n")
