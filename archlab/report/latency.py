"""Renderers for ``archlab latency``: one model, several side by side, and per layer."""

from __future__ import annotations

from typing import Any, Sequence

from archlab.measure.devices import is_cuda
from archlab.measure.latency import NOISY_IQR, LatencyResult
from archlab.measure.profile import by_kind
from archlab.measure.ranking import SPEARMAN_MIN_PAIRS, Comparison
from archlab.report import formats
from archlab.report.formats import csv_table, md_table, text_table, to_json
from archlab.units import human, human_bytes, shape_str


def ms(v: float) -> str:
    """Milliseconds with three significant digits or so (100 ms and more: one decimal)."""
    return f"{v:.1f}" if v >= 100 else (f"{v:.2f}" if v >= 1 else f"{v:.3f}")


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _setting(r: LatencyResult) -> str:
    threads = f", {r.threads} thread{'s' if r.threads != 1 else ''}" if not is_cuda(r.device) else ""
    layout = ", channels_last" if r.channels_last else ""
    return f"{r.device} ({r.device_name}{threads}), {r.dtype}{layout}"


def _title(r: LatencyResult) -> str:
    return f"{r.model}  input {shape_str(r.input_shape)}  on {_setting(r)}"


def _lines(r: LatencyResult) -> list[tuple[str, str, str]]:
    runs = f"{r.runs_per_sample} forward{'s' if r.runs_per_sample != 1 else ''}"
    noise = f"{_pct(r.iqr_fraction)} of the median"
    if r.noisy:
        noise += f": NOISY (over {_pct(NOISY_IQR)}); close other programs or raise --min-time"
    return [
        ("median latency", f"{ms(r.median_ms)} ms",
         f"per forward of the whole batch; {r.samples} timed blocks of {runs}, at least {r.min_time_s:g} s"),
        ("interquartile range", f"{ms(r.iqr_ms)} ms", noise),
        ("throughput", f"{r.throughput:,.1f} images/s", f"batch {r.batch} / median"),
        ("MACs", f"{r.macs:,}", f"{human(r.macs, 'MACs')}, whole batch (meta trace, "
                                + (f"PARTIAL: {r.macs_not_counted} op calls without a cost rule left out; see "
                                   "archlab count)" if r.macs_not_counted else "exact)")),
        ("achieved", f"{r.achieved_gflops:,.2f} GFLOP/s", "2 x MACs / median"),
    ] + _prediction_lines(r) + [("note", "", note) for note in r.notes]


def _prediction_lines(r: LatencyResult) -> list[tuple[str, str, str]]:
    rows = []
    if r.page_faults_per_forward is not None:
        rows.append(("page faults", f"{r.page_faults_per_forward:,.1f}", "per timed forward (0: the allocator reused "
                     "memory; the time does not depend on what ran before)"))
    if r.op_times is not None:
        rows.append(("ops timed one by one", f"{ms(r.op_times.total * 1e3)} ms",
                     f"{r.op_times.method}; their sum"))
    if r.prediction is not None:
        m = r.prediction.machine
        rows.append(("predicted", f"{ms(r.predicted_ms)} ms",
                     f"roofline on the calibrated machine: {r.predicted_over_measured:.2f} x the measured median "
                     f"(peak {m.peak_gflops:.1f} GFLOP/s, bandwidth {m.bandwidth_gbs:.1f} GB/s; calibrated "
                     f"{m.measured_at}{', cached' if m.cached else ''})"))
    return rows


KIND_TIME_HEADERS = ("kind", "ops", "GFLOP", "traffic", "FLOP/B", "bound", "predicted ms", "share", "measured ms",
                     "share", "pred/meas")


def _kind_time_rows(r: LatencyResult) -> list[tuple]:
    rows = []
    for k in r.by_kind():
        pred = "predicted_ms" in k
        meas = "measured_ms" in k
        ai = k.get("arithmetic_intensity")
        rows.append((k["kind"], k["ops"], f"{k['flops'] / 1e9:.3f}" if pred else "-",
                     human_bytes(k["traffic_bytes"]) if pred else "-",
                     "-" if ai is None or not pred else f"{ai:.1f}", k.get("bound", "-"),
                     ms(k["predicted_ms"]) if pred else "-", _pct(k["predicted_share"]) if pred else "-",
                     ms(k["measured_ms"]) if meas else "-", _pct(k["measured_share"]) if meas else "-",
                     _ratio(k["predicted_ms"] / k["measured_ms"]) if pred and meas and k["measured_ms"] else "-"))
    return rows


def _kind_time_caption(r: LatencyResult) -> str:
    parts = []
    if r.op_times is not None:
        parts.append(f"measured: {r.op_times.method}, {ms(r.op_times.total * 1e3)} ms in all "
                     f"(benchmark median {ms(r.median_ms)} ms)")
    if r.prediction is not None:
        parts.append(f"predicted: roofline on the calibrated machine, {ms(r.predicted_ms)} ms in all; each op "
                     "its kind's fixed cost plus the slower of compute (FLOPs / its kind's calibrated rate) and "
                     "memory (traffic / bandwidth, each op alone), and each module call's Python; bound: the "
                     "largest of compute, memory and overhead (fixed cost) over the kind's time; views: the "
                     "per-op clock's own cost of allocations a plain forward makes in C++, not predicted")
    return "; ".join(parts)


TOP_OPS = 15


def _top_op_rows(r: LatencyResult) -> list[tuple]:
    rows = sorted(r.op_rows(), key=lambda o: -o.get("measured_ms", o.get("predicted_ms", 0.0)))[:TOP_OPS]
    return [(o["index"], o["op"].removeprefix("aten."), o["module"] or "(model)", o.get("kind", "-"),
             ms(o["measured_ms"]) if "measured_ms" in o else "-",
             ms(o["predicted_ms"]) if "predicted_ms" in o else "-", o.get("bound", "-")) for o in rows]


TOP_OP_HEADERS = ("#", "op", "module", "kind", "measured ms", "predicted ms", "bound")


def _kind_time_table(r: LatencyResult, md: bool = False) -> str:
    if r.op_times is None and r.prediction is None:
        return ""
    if md:
        out = (f"\n#### {r.model}: time by kind\n\n{_kind_time_caption(r)}\n\n"
               + md_table(KIND_TIME_HEADERS, _kind_time_rows(r), "lrrrrlrrrrr"))
        if r.op_times is not None:
            out += f"\nthe {TOP_OPS} slowest ops\n\n" + md_table(TOP_OP_HEADERS, _top_op_rows(r), "rllllrrl")
        return out
    out = f"\n{r.model}: time by kind; {_kind_time_caption(r)}\n" + text_table(KIND_TIME_HEADERS,
                                                                                 _kind_time_rows(r), "lrrrrlrrrrr")
    if r.op_times is not None:
        out += f"\nthe {TOP_OPS} slowest ops (all of them: --format json)\n" + text_table(
            TOP_OP_HEADERS, _top_op_rows(r), "rllllrrl")
    return out


LAYER_HEADERS = ("name", "type", "kind", "time ms", "share of time", "MACs", "share of MACs", "time/MAC share")
KIND_HEADERS = ("kind", "calls", "time ms", "share of time", "MACs", "share of MACs", "time/MAC share")


def _layer_rows(r: LatencyResult) -> list[tuple]:
    return [(layer.name or "(model)", layer.type, layer.kind, ms(layer.time_ms), _pct(layer.time_share),
             f"{layer.macs:,}", _pct(layer.mac_share), _ratio(layer.time_per_mac_share)) for layer in r.layers]


def _kind_rows(r: LatencyResult) -> list[tuple]:
    return [(k["kind"], k["calls"], ms(k["time_ms"]), _pct(k["time_share"]), f"{k['macs']:,}",
             _pct(k["mac_share"]), _ratio(k["time_share_over_mac_share"])) for k in by_kind(r.layers)]


def _layer_caption(r: LatencyResult) -> str:
    return (f"per layer: {r.layer_time_method}, summed over each module's own ops, "
            f"{ms(r.profiled_forward_ms)} ms in all (benchmark median {ms(r.median_ms)} ms; the Python between "
            "the ops is in neither). A module's own time and MACs exclude its children's; time/MAC share > 1: "
            "more of the time than of the MACs.")


def _per_layer_table(r: LatencyResult) -> str:
    return (f"\n{r.model}: {_layer_caption(r)}\n\nby kind\n"
            + text_table(KIND_HEADERS, _kind_rows(r), "lrrrrrr")
            + "\nby module\n" + text_table(LAYER_HEADERS, _layer_rows(r), "lllrrrrr"))


def _per_layer_md(r: LatencyResult) -> str:
    return (f"\n#### {r.model}: per layer\n\n{_layer_caption(r)}\n\n"
            + md_table(KIND_HEADERS, _kind_rows(r), "lrrrrrr") + "\n"
            + md_table(LAYER_HEADERS, _layer_rows(r), "lllrrrrr"))


def _compare_headers(c: Comparison) -> tuple[str, ...]:
    headers = ("model", "input", "median ms", "IQR ms", "images/s", "MACs", "GFLOP/s", "latency ratio",
               "MACs ratio")
    headers += ("predicted ms", "pred/meas") if any(row.result.prediction is not None for row in c.rows) else ()
    return headers + (("paper ms", "paper ratio") if c.paper_source else ())


NAME_WIDTH = 48  # text_table's cut


def _name(r: LatencyResult, width: int | None) -> str:
    """The model's name and its markers; a long name is cut, never the markers."""
    marks = (" (partial)" if r.macs_not_counted else "") + (" (noisy)" if r.noisy else "")
    name = r.model
    if width is not None and len(name) + len(marks) > width:
        name = name[: max(width - len(marks) - 1, 1)] + "…"
    return name + marks


def _compare_rows(c: Comparison, width: int | None = None) -> list[tuple]:
    rows = []
    for row in c.rows:
        r = row.result
        cells = (_name(r, width), shape_str(r.input_shape), ms(r.median_ms),
                 ms(r.iqr_ms), f"{r.throughput:,.1f}", human(r.macs), f"{r.achieved_gflops:,.2f}",
                 _ratio(row.latency_ratio), _ratio(row.macs_ratio))
        if any(x.result.prediction is not None for x in c.rows):
            cells += ("-", "-") if r.prediction is None else (ms(r.predicted_ms), _ratio(r.predicted_over_measured))
        if c.paper_source:
            cells += ("-" if row.paper_ms is None else f"{row.paper_ms:g}", _ratio(row.paper_ratio))
        rows.append(cells)
    return rows


def _compare_caption(results: Sequence[LatencyResult], c: Comparison) -> list[str]:
    settings = sorted({_setting(r) for r in results})
    lines = [f"on {'; '.join(settings)}; sorted by median latency; ratios are to {c.baseline} "
             "(the first model given), all measured in this run, the models' timed blocks taking turns",
             "MACs: multiply-accumulates, whole batch (meta trace); GFLOP/s achieved = 2 x MACs / median"]
    if c.spearman is None and len(c.rows) < SPEARMAN_MIN_PAIRS:
        lines.append(f"Spearman's rank correlation of MACs and latency: not given for {len(c.rows)} models "
                     f"(two are always in order or reversed, ±1: it needs {SPEARMAN_MIN_PAIRS} or more)")
    elif c.spearman is None:
        lines.append("Spearman's rank correlation of MACs and latency: undefined (the models' MACs, or their "
                     "latencies, are all equal)")
    else:
        lines.append(f"Spearman's rank correlation of MACs and latency: {c.spearman:+.2f} "
                     f"over {len(c.rows)} models (+1: MACs order the models exactly as their latency does)")
    if c.paper_source:
        lines.append(f"paper ms: the paper's measurement, not ours ({c.paper_source}); "
                     "compare its ratios with the measured ones, not the milliseconds")
    noisy = [r.model for r in results if r.noisy]
    if noisy:
        lines.append(f"noisy (IQR over {_pct(NOISY_IQR)} of the median): {', '.join(noisy)}")
    partial = [f"{r.model} ({r.macs_not_counted} op call{'s' if r.macs_not_counted != 1 else ''})"
               for r in results if r.macs_not_counted]
    if partial:
        lines.append(f"partial: MACs leave out op calls without a cost rule (see archlab count): {', '.join(partial)}")
    lines += [f"note: {note}" for note in dict.fromkeys(n for r in results for n in r.notes)]
    return lines


CSV_KEYS = ("model", "input_shape", "device", "dtype", "channels_last", "threads", "batch", "median_ms", "iqr_ms",
            "noisy", "throughput", "macs", "achieved_gflops", "macs_status")
LAYER_CSV_KEYS = ("name", "type", "kind", "calls", "time_ms", "time_share", "macs", "mac_share",
                  "time_share_over_mac_share")


def _csv(results: Sequence[LatencyResult], c: Comparison | None) -> str:
    if any(r.layers is not None for r in results):
        rows = [[r.model] + [layer.to_dict()[k] for k in LAYER_CSV_KEYS] for r in results for layer in r.layers]
        return csv_table(("model",) + LAYER_CSV_KEYS, rows)
    extra: dict[int, list[Any]] = {}
    keys = CSV_KEYS
    ordered = list(results)
    if c is not None:
        keys += ("latency_ratio", "macs_ratio", "paper_ms", "paper_ratio")
        ordered = [row.result for row in c.rows]
        extra = {id(row.result): [row.latency_ratio, row.macs_ratio, row.paper_ms, row.paper_ratio]
                 for row in c.rows}
    predicted = any(r.prediction is not None for r in results)
    if predicted:
        keys += ("predicted_ms", "predicted_over_measured")
    rows = []
    for r in ordered:
        d = r.to_dict()
        d["input_shape"] = shape_str(r.input_shape)
        rows.append([d[k] for k in CSV_KEYS] + extra.get(id(r), [])
                    + ([r.predicted_ms, r.predicted_over_measured] if predicted else []))
    return csv_table(keys, rows)


def _table(results: Sequence[LatencyResult], c: Comparison | None) -> str:
    if c is None:
        r = results[0]
        out = _title(r) + "\n" + text_table(None, _lines(r), "lrl", max_width=200)
    else:
        out = (text_table(_compare_headers(c), _compare_rows(c, NAME_WIDTH), "ll" + "r" * 11, max_width=NAME_WIDTH)
               + "\n".join(_compare_caption(results, c)) + "\n")
    return (out + "".join(_kind_time_table(r) for r in results)
            + "".join(_per_layer_table(r) for r in results if r.layers is not None))


def _md(results: Sequence[LatencyResult], c: Comparison | None) -> str:
    if c is None:
        r = results[0]
        out = f"### {_title(r)}\n\n" + md_table(("quantity", "value", "what"), _lines(r), "lrl")
    else:
        out = (md_table(_compare_headers(c), _compare_rows(c), "ll" + "r" * 11) + "\n"
               + "\n\n".join(_compare_caption(results, c)) + "\n")
    return (out + "".join(_kind_time_table(r, md=True) for r in results)
            + "".join(_per_layer_md(r) for r in results if r.layers is not None))


def render(results: Sequence[LatencyResult], fmt: str, comparison: Comparison | None = None) -> str:
    """``archlab latency``'s output in ``fmt``; ``comparison`` (from
    ``archlab.measure.ranking.compare``) is required for several results."""
    if len(results) > 1 and comparison is None:
        raise ValueError("several results need their comparison")
    c = comparison if len(results) > 1 else None
    return formats.render(fmt, table=lambda: _table(results, c),
                          json=lambda: to_json(results[0].to_dict() if c is None else c.to_dicts(results)),
                          csv=lambda: _csv(results, c), md=lambda: _md(results, c))
