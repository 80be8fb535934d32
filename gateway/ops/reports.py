"""Generated report blocks and tables, for the benchmark and the load test alike.

A table is a header and rows of strings, rendered as aligned text for the terminal or as
Markdown for docs/BENCHMARKS.md. A generated block is Markdown between a begin and an end
marker (HTML comments on its first and last line); replace_block swaps the block in a
document for a new one and leaves the rest of the document as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

Table = tuple[Sequence[str], Sequence[Sequence[str]]]


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart, no trailing spaces."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown (GitHub) table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def replace_block(path: Path, block: str, heading: str = "") -> None:
    """Put `block` (its first and last lines are its markers) into the document at `path`.

    An existing block with the same markers is replaced; otherwise the block is appended,
    under `heading` when one is given. The document is created when missing.
    """
    lines = block.strip("\n").splitlines()
    begin, end = lines[0], lines[-1]
    text = path.read_text() if path.exists() else ""
    start = text.find(begin)
    stop = text.find(end, start + len(begin)) if start >= 0 else -1
    if start >= 0 and stop >= 0:
        text = text[:start] + block.strip("\n") + text[stop + len(end) :]
    else:
        parts = [text.rstrip("\n")] if text.strip() else []
        parts += [heading] if heading else []
        text = "\n\n".join([*parts, block.strip("\n")]) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
