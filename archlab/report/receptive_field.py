"""Renderers for ``archlab rf``: the receptive field, jump and start of every layer."""

from __future__ import annotations

from typing import Any

from archlab.analysis.receptive_field import RFResult
from archlab.report import formats
from archlab.report.formats import csv_table, md_table, ops_text, text_table, to_json
from archlab.units import shape_str

RF_HEADERS = ("name", "type", "output", "RF", "jump", "start", "note")
CSV_HEADERS = ("name", "type", "depth", "output_shape", "rf", "jump", "start", "global_context", "exceeds_input")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return "x".join(map(str, v)) if isinstance(v, list) else str(v)


def _rf_cells(r: dict[str, Any], indent: bool = True) -> tuple:
    note = []
    if r.get("global_context"):
        note.append("global context (a gate sees the whole input)")
    if r.get("exceeds_input"):
        note.append("exceeds the input")
    rf = r["rf"] if r["rf"] is None or r["rf_hw"][0] == r["rf_hw"][1] else r["rf_hw"]
    jump = r["jump"] if r["jump"] is None or r["jump_hw"][0] == r["jump_hw"][1] else r["jump_hw"]
    return (("  " * (r["depth"] - 1) if indent else "") + r["name"], r["type"], shape_str(r["output_shape"]),
            _fmt(rf), _fmt(jump), _fmt(r["start"]), "; ".join(note))


def summary_lines(result: RFResult) -> list[str]:
    """The headline (the field at the last layer with spatial extent) and its notes, one a line."""
    lines = []
    top = result.rf
    if top and top["rf"] is None:
        lines.append(f"receptive field: unknown at '{top['name']}' (the last layer with spatial extent): "
                     f"not followed past {top['unknown_since']}")
    elif top:
        h, w = result.input_shape[-2:]
        line = (f"receptive field: {_fmt(top['rf'] if top['rf_hw'][0] == top['rf_hw'][1] else top['rf_hw'])} "
                f"input pixels at '{top['name']}' (the last layer with spatial extent), "
                f"jump {_fmt(top['jump'])}, first centre at {_fmt(top['start'])}")
        lines.append(line)
        if top["exceeds_input"]:
            lines.append(f"note: the receptive field exceeds the {h}x{w} input: units near the border see padding")
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
                                    _fmt(r["jump"]), _fmt(r["start"]), r.get("global_context"),
                                    r.get("exceeds_input")) for r in result.layers])


def _md(result: RFResult) -> str:
    summary = "\n".join(f"- {line}" for line in summary_lines(result))
    return f"### {_title(result)}\n\n{summary}\n\n" + md_table(RF_HEADERS, [_rf_cells(r, False) for r in result.layers],
                                                                "lllrrrl")


def render_rf(result: RFResult, fmt: str) -> str:
    """``archlab rf``'s output in ``fmt`` (table, json, csv or md)."""
    return formats.render(fmt, table=lambda: _table(result), json=lambda: to_json(result.to_dict()),
                          csv=lambda: _csv(result), md=lambda: _md(result))
