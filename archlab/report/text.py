"""Plain-text tables for the terminal.

A small renderer of its own rather than rich's: importing rich costs about
0.1 s, a third of what `archlab count` takes beyond `import torch`.
"""

from __future__ import annotations

from typing import Any, Sequence


def text_table(headers: Sequence[str] | None, rows: Sequence[Sequence[Any]], align: str | None = None,
               max_width: int = 48) -> str:
    """Columns padded to their widest cell ('l'/'r' per column in ``align``), cells cut at ``max_width``."""
    cells = [[_cut(str(c), max_width) for c in row] for row in rows]
    ncols = len(headers) if headers else max((len(r) for r in cells), default=0)
    align = align or "l" * ncols
    head = [str(h) for h in headers] if headers else None
    widths = [max([len(head[i]) if head else 0] + [len(r[i]) for r in cells if i < len(r)]) for i in range(ncols)]

    def line(row: Sequence[str]) -> str:
        parts = [(c.rjust(w) if a == "r" else c.ljust(w)) for c, w, a in zip(row, widths, align)]
        return "  ".join(parts).rstrip()

    out = []
    if head:
        out.append(line(head))
        out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in cells)
    return "\n".join(out) + "\n"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
