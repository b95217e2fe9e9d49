"""The output formats every renderer shares: plain-text tables for the terminal, markdown, CSV
and JSON, and ``render``, the one switch from a format name to a renderer.

Renderers return strings; only the CLI prints, and ``archlab.report.files`` writes files.
The text table is a small renderer of its own rather than rich's: importing rich costs about
0.1 s, a third of what `archlab count` takes beyond `import torch`."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is one of 'l'/'r' per column."""
    align = align or "l" * len(headers)
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    for row in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    return "\n".join(out) + "\n"


def csv_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV text (``\\n`` line ends), the header row first."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buf.getvalue()


def to_json(data: Any) -> str:
    """Indented JSON, keys in the order the result gives them, with a final newline."""
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


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


PARTIAL = " (partial)"  # after a model's name, or its MACs, whose count leaves out ops with no cost rule

OpCounts = Union[Mapping[str, int], Iterable[Any]]


def ops_text(ops: OpCounts) -> str:
    """Unsupported (or skipped) ops as text, ``"aten.cumsum.default x1, ..."``: from a mapping
    op -> calls, (op, calls) pairs, or the JSON form's ``[{"op": ..., "count": ...}]``."""
    if isinstance(ops, Mapping):
        pairs = list(ops.items())
    else:
        pairs = [(o["op"], o["count"]) if isinstance(o, Mapping) else tuple(o) for o in ops]
    return ", ".join(f"{op} x{n}" for op, n in pairs)


FORMATS = ("table", "json", "csv", "md")


def render(fmt: str, **renderers: Callable[[], str]) -> str:
    """The one format switch: ``render(fmt, table=..., json=..., csv=..., md=...)`` calls the
    renderer given for ``fmt`` (each a function of no arguments returning the text)."""
    try:
        renderer = renderers[fmt]
    except KeyError:
        raise ValueError(f"format '{fmt}' is not one of {', '.join(renderers)}") from None
    return renderer()
