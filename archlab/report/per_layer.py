"""Renderers for ``archlab trace``: one row per module, with its shapes, geometry, cost and field."""

from __future__ import annotations

from typing import Any

from archlab.analysis.per_layer import TraceResult
from archlab.report import formats
from archlab.report.count import NOT_CALLED, OUTSIDE
from archlab.report.formats import OpCounts, csv_table, md_table, ops_text, text_table, to_json
from archlab.units import human_bytes, shape_str

TRACE_HEADERS = ("name", "type", "input", "output", "filter", "k/s/p/d/g", "params", "MACs", "RF",
                 "out elements", "out bytes")
CSV_KEYS = ("name", "type", "depth", "input_shapes", "output_shapes", "kernel", "stride", "padding", "dilation",
            "groups", "filter", "params", "macs", "rf", "output_elements", "output_bytes", "traffic_bytes",
            "arithmetic_intensity")


def _geom(r: dict[str, Any]) -> str:
    if r["kernel"] is None and r["stride"] is None:
        return ""
    parts = ["x".join(map(str, r[k])) if r[k] else "-" for k in ("kernel", "stride", "padding", "dilation")]
    return "/".join(parts) + (f"/{r['groups']}" if r["groups"] else "")


def _trace_rows(result: TraceResult, indent: bool = True) -> list[tuple]:
    rows = [(("  " * (r["depth"] - 1) if indent else "") + r["name"], r["type"],
             ",".join(shape_str(s) for s in r["input_shapes"]), ",".join(shape_str(s) for s in r["output_shapes"]),
             r["filter"], _geom(r), f"{r['params']:,}", f"{r['macs']:,}", "" if r["rf"] is None else r["rf"],
             f"{r['output_elements']:,}", human_bytes(r["output_bytes"])) for r in result.layers]
    rows += [(("  " * (m["depth"] - 1) if indent else "") + m["name"], f"{m['type']} {NOT_CALLED}", "", "", "", "",
              f"{m['params']:,}", "0", "", "", "") for m in result.not_called]
    params, macs = result.outside_submodules()
    if result.layers and (max(params, 0) or macs):  # as in archlab count: the rows add up to the totals
        rows.append((OUTSIDE, "forward", "", "", "", "", f"{max(params, 0):,}", f"{macs:,}", "", "", ""))
    return rows


def not_counted(unsupported_ops: OpCounts) -> str:
    """The line that says a count is partial, or ''."""
    if not unsupported_ops:
        return ""
    return f"NOT COUNTED (no cost rule; the MACs leave them out): {ops_text(unsupported_ops)}"


def _title(result: TraceResult) -> str:
    return f"{result.model}  input {shape_str(result.input_shape)}  (MACs: multiply-accumulates; RF in input pixels)"


def _table(result: TraceResult) -> str:
    partial = not_counted(result.unsupported_ops)
    title = _title(result) + (f"\n{partial}" if partial else "")
    return title + "\n" + text_table(TRACE_HEADERS, _trace_rows(result), "llllllrrrrr")


def _csv(result: TraceResult) -> str:
    # as count's CSV: a (total) row first, whose status says whether the MACs are complete
    rows = [[result.model, "(total)", 0] + [""] * 8 + [result.params, result.macs, "", "", "", "", "", result.status]]
    rows += [[";".join(shape_str(s) for s in r[k]) if k.endswith("shapes")
              else ("x".join(map(str, r[k])) if isinstance(r[k], list) else r[k]) for k in CSV_KEYS] + [""]
             for r in result.layers]
    rows += [[m["name"], f"{m['type']} {NOT_CALLED}", m["depth"]] + [""] * 8 + [m["params"], 0] + [""] * 6
             for m in result.not_called]
    params, macs = result.outside_submodules()
    if result.layers and (max(params, 0) or macs):
        rows.append([OUTSIDE, "forward", 1] + [""] * 8 + [max(params, 0), macs] + [""] * 6)
    return csv_table(CSV_KEYS + ("status",), rows)


def _md(result: TraceResult) -> str:
    partial = not_counted(result.unsupported_ops)
    head = f"### {_title(result)}\n\n" + (f"{partial}\n\n" if partial else "")
    return head + md_table(TRACE_HEADERS, _trace_rows(result, indent=False), "llllllrrrrr")


def render_trace(result: TraceResult, fmt: str) -> str:
    """``archlab trace``'s output in ``fmt`` (table, json, csv or md)."""
    return formats.render(fmt, table=lambda: _table(result), json=lambda: to_json(result.to_dict()),
                          csv=lambda: _csv(result), md=lambda: _md(result))
