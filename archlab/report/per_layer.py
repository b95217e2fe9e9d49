"""Renderers for ``archlab trace`` and ``archlab rf``."""

from __future__ import annotations

from archlab.report.count import OUTSIDE
from archlab.report.formats import csv_table, md_table, to_json
from archlab.units import human_bytes, shape_str
from archlab.report.formats import text_table
from archlab.analysis.receptive_field import RFResult
from archlab.analysis.per_layer import TraceResult

TRACE_HEADERS = ("name", "type", "input", "output", "filter", "k/s/p/d/g", "params", "MACs", "RF",
                 "out elements", "out bytes")
RF_HEADERS = ("name", "type", "output", "RF", "jump", "start", "note")


def _geom(r) -> str:
    if r["kernel"] is None and r["stride"] is None:
        return ""
    parts = ["x".join(map(str, r[k])) if r[k] else "-" for k in ("kernel", "stride", "padding", "dilation")]
    return "/".join(parts) + (f"/{r['groups']}" if r["groups"] else "")


def _trace_rows(result: TraceResult, indent: bool = True):
    rows = [(("  " * (r["depth"] - 1) if indent else "") + r["name"], r["type"],
             ",".join(shape_str(s) for s in r["input_shapes"]), ",".join(shape_str(s) for s in r["output_shapes"]),
             r["filter"], _geom(r), f"{r['params']:,}", f"{r['macs']:,}", "" if r["rf"] is None else r["rf"],
             f"{r['output_elements']:,}", human_bytes(r["output_bytes"])) for r in result.layers]
    params, macs = result.outside_submodules()
    if result.layers and (max(params, 0) or macs):  # as in archlab count: the rows add up to the totals
        rows.append((OUTSIDE, "forward", "", "", "", "", f"{max(params, 0):,}", f"{macs:,}", "", "", ""))
    return rows


def not_counted(unsupported_ops) -> str:
    """The line that says a count is partial, or ''."""
    if not unsupported_ops:
        return ""
    ops = ", ".join(f"{op} x{n}" for op, n in unsupported_ops)
    return f"NOT COUNTED (no cost rule; the MACs leave them out): {ops}"


def render_trace(result: TraceResult, fmt: str) -> str:
    title = f"{result.model}  input {shape_str(result.input_shape)}  (MACs: multiply-accumulates; RF in input pixels)"
    partial = not_counted(result.unsupported_ops)
    if partial:
        title += "\n" + partial
    if fmt == "table":
        return title + "\n" + text_table(TRACE_HEADERS, _trace_rows(result), "llllllrrrrr")
    if fmt == "json":
        return to_json(result.to_dict())
    if fmt == "csv":
        keys = ("name", "type", "depth", "input_shapes", "output_shapes", "kernel", "stride", "padding", "dilation",
                "groups", "filter", "params", "macs", "rf", "output_elements", "output_bytes")
        # as count's CSV: a (total) row first, whose status says whether the MACs are complete
        rows = [[result.model, "(total)", 0] + [""] * 8 + [result.params, result.macs, "", "", "", result.status]]
        rows += [[";".join(shape_str(s) for s in r[k]) if k.endswith("shapes")
                  else ("x".join(map(str, r[k])) if isinstance(r[k], list) else r[k]) for k in keys] + [""]
                 for r in result.layers]
        params, macs = result.outside_submodules()
        if result.layers and (max(params, 0) or macs):
            rows.append([OUTSIDE, "forward", 1] + [""] * 8 + [max(params, 0), macs, "", "", "", ""])
        return csv_table(keys + ("status",), rows)
    if fmt == "md":
        head = f"### {result.model}  input {shape_str(result.input_shape)}  (MACs: multiply-accumulates; RF in " \
               "input pixels)\n\n" + (f"{partial}\n\n" if partial else "")
        return head + md_table(TRACE_HEADERS, _trace_rows(result, indent=False), "llllllrrrrr")
    raise ValueError(fmt)


def _fmt(v) -> str:
    if v is None:
        return "-"
    return "x".join(map(str, v)) if isinstance(v, list) else str(v)


def _rf_cells(r, indent=True):
    note = []
    if r.get("global_context"):
        note.append("global context (a gate sees the whole input)")
    if r.get("exceeds_input"):
        note.append("exceeds the input")
    rf = r["rf"] if r["rf"] is None or r["rf_hw"][0] == r["rf_hw"][1] else r["rf_hw"]
    jump = r["jump"] if r["jump"] is None or r["jump_hw"][0] == r["jump_hw"][1] else r["jump_hw"]
    return (("  " * (r["depth"] - 1) if indent else "") + r["name"], r["type"], shape_str(r["output_shape"]),
            _fmt(rf), _fmt(jump), _fmt(r["start"]), "; ".join(note))


def _rf_summary(result: RFResult) -> list[str]:
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
        lines.append("field not followed through: " + ", ".join(f"{k} x{v}" for k, v in result.unsupported_ops.items()))
    return lines


def render_rf(result: RFResult, fmt: str) -> str:
    title = f"{result.model}  input {shape_str(result.input_shape)}"
    if fmt == "table":
        body = text_table(RF_HEADERS, [_rf_cells(r) for r in result.layers], "lllrrrl")
        return "\n".join([title, *_rf_summary(result), "", body])
    if fmt == "json":
        return to_json(result.to_dict())
    if fmt == "csv":
        return csv_table(("name", "type", "depth", "output_shape", "rf", "jump", "start", "global_context",
                          "exceeds_input"),
                         [(r["name"], r["type"], r["depth"], shape_str(r["output_shape"]), _fmt(r["rf"]),
                           _fmt(r["jump"]), _fmt(r["start"]), r.get("global_context"), r.get("exceeds_input"))
                          for r in result.layers])
    if fmt == "md":
        summary = "\n".join(f"- {line}" for line in _rf_summary(result))
        return f"### {title}\n\n{summary}\n\n" + md_table(RF_HEADERS, [_rf_cells(r, False) for r in result.layers],
                                                          "lllrrrl")
    raise ValueError(fmt)
