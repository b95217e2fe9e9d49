"""Renderers for ``archlab rf``: the receptive field, jump and start of every layer."""

from __future__ import annotations

from typing import Any

from archlab.analysis.receptive_field import RFResult
from archlab.report import formats
from archlab.report.formats import csv_table, md_table, ops_text, text_table, to_json
from archlab.units import shape_str

RF_HEADERS = ("name", "type", "output", "RF", "jump", "start", "note")
CSV_HEADERS = ("name", "type", "depth", "output_shape", "rf", "rf_min", "period", "jump", "start", "global_context",
               "exceeds_input")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return "x".join(map(str, v)) if isinstance(v, list) else str(v)


def _varies(r: dict[str, Any]) -> bool:
    """Whether units at different positions have fields of different sizes (after up-sampling)."""
    return r.get("rf") is not None and r.get("rf_min", r["rf"]) != r["rf"]


def _rf_text(r: dict[str, Any]) -> str:
    """The field as shown: 'HxW' when the axes differ, 'min..max' when it varies with position."""
    if r["rf"] is None:
        return "-"
    if r.get("line"):  # a 1-D input: one axis, one number
        return f"{r['rf_min']}..{r['rf']}" if _varies(r) else str(r["rf"])
    if _varies(r):
        lo, hi = r["rf_min_hw"], r["rf_hw"]
        return f"{lo[0]}..{hi[0]}" if lo[0] == lo[1] and hi[0] == hi[1] else f"{_fmt(lo)}..{_fmt(hi)}"
    return _fmt(r["rf"] if r["rf_hw"][0] == r["rf_hw"][1] else r["rf_hw"])


def _period_text(r: dict[str, Any]) -> str:
    return _fmt(r["period"])


def _rf_cells(r: dict[str, Any], indent: bool = True) -> tuple:
    note = []
    if _varies(r):
        note.append(f"varies with position (period {_period_text(r)})")
    if r.get("global_context"):
        note.append("global context (a gate sees the whole input)")
    if r.get("exceeds_input"):
        note.append("exceeds the input")
    rf = _rf_text(r)
    jump = r["jump"] if r["jump"] is None or r.get("line") or r["jump_hw"][0] == r["jump_hw"][1] else r["jump_hw"]
    return (("  " * (r["depth"] - 1) if indent else "") + r["name"], r["type"], shape_str(r["output_shape"]),
            rf, _fmt(jump), _fmt(r["start"]), "; ".join(note))


def summary_lines(result: RFResult) -> list[str]:
    """The headline (the field at the last layer with spatial extent) and its notes, one a line."""
    lines = []
    top = result.rf
    if top and top["rf"] is None:
        lines.append(f"receptive field: unknown at '{top['name']}' (the last layer with spatial extent): "
                     f"not followed past {top['unknown_since']}")
    elif top:
        h, w = result.input_shape[-2:]
        size = _rf_text(top).replace("..", " to ")
        line = (f"receptive field: {size} input pixels at '{top['name']}' (the last layer with spatial extent), "
                f"jump {_fmt(top['jump'])}, first centre at {_fmt(top['start'])}")
        lines.append(line)
        if _varies(top):
            lines.append(f"note: after up-sampling the field depends on the unit's position: smallest "
                         f"{_fmt(top['rf_min'])}, largest {_fmt(top['rf'])}, repeating every {_period_text(top)} "
                         f"units")
        # padding is said only where a unit's window reaches past the input (a U-Net has none)
        if top["exceeds_input"] and top.get("sees_padding") is not False:
            lines.append(f"note: the receptive field exceeds the {h}x{w} input: units near the border see padding")
        elif top["exceeds_input"]:
            lines.append(f"note: the largest receptive field exceeds the {h}x{w} input, but every unit of this "
                         f"output reads inside it (no padding)")
        if top.get("global_context"):
            lines.append("note: squeeze-and-excitation (or another global gate) makes every unit depend on the "
                         "whole input; the field shown is the convolutional one")
    else:
        lines.append("receptive field: no layer with spatial extent")
    for m in result.misaligned:
        lines.append(f"misaligned merge at '{m['module']}' ({m['op']}): jumps {m['jumps']}, starts {m['starts']}")
    for note in result.notes:
        lines.append(f"note: {note}")
    if result.unsupported_ops:
        lines.append("field not followed through: " + ops_text(result.unsupported_ops))
    return lines


def _title(result: RFResult) -> str:
    return f"{result.model}  input {shape_str(result.input_shape)}"


def _table(result: RFResult) -> str:
    body = text_table(RF_HEADERS, [_rf_cells(r) for r in result.layers], "lllrrrl")
    return "\n".join([_title(result), *summary_lines(result), "", body])


def _csv(result: RFResult) -> str:
    return csv_table(CSV_HEADERS, [(r["name"], r["type"], r["depth"], shape_str(r["output_shape"]), _fmt(r["rf"]),
                                    _fmt(r.get("rf_min")), _fmt(r.get("period")), _fmt(r["jump"]), _fmt(r["start"]),
                                    r.get("global_context"), r.get("exceeds_input")) for r in result.layers])


def _md(result: RFResult) -> str:
    summary = "\n".join(f"- {line}" for line in summary_lines(result))
    return f"### {_title(result)}\n\n{summary}\n\n" + md_table(RF_HEADERS, [_rf_cells(r, False) for r in result.layers],
                                                                "lllrrrl")


def render_rf(result: RFResult, fmt: str) -> str:
    """``archlab rf``'s output in ``fmt`` (table, json, csv or md)."""
    return formats.render(fmt, table=lambda: _table(result), json=lambda: to_json(result.to_dict()),
                          csv=lambda: _csv(result), md=lambda: _md(result))
