"""Renderers for ``archlab compare`` of several models side by side (``archlab.analysis.compare``);
one model against its scaling law is rendered by ``archlab.report.laws.render_scaling``."""

from __future__ import annotations

from typing import Any

from archlab.analysis.compare import CompareRow
from archlab.analysis.costs import unsupported_json
from archlab.report import formats
from archlab.report.formats import PARTIAL, csv_table, md_table, ops_text, text_table, to_json
from archlab.units import human, human_bytes

COMPARE_HEADERS = ("model", "params", "MACs", "FLOPs", "RF", "param memory", "inference peak", "params ÷ first",
                   "MACs ÷ first")


def _compare_cells(rows: list[CompareRow], first: CompareRow, latency: bool) -> list[tuple]:
    out = []
    for r in sorted(rows, key=lambda x: x.macs):
        name = r.model + (PARTIAL if r.status == "partial" else "")
        cells = (name, f"{r.params:,}", f"{r.macs:,}", human(r.flops), r.rf if r.rf is not None else "-",
                 human_bytes(r.params_bytes), human_bytes(r.activation_peak_bytes),
                 _ratio(r.params, first.params), _ratio(r.macs, first.macs))
        if latency:
            cells += (f"{r.latency_ms:.2f}" + (" (noisy)" if r.latency_noisy else ""), _ratio(r.latency_ms, first.latency_ms))
        if _training(rows):
            cells += (f"{r.training_macs:,}" if r.training_macs is not None else "-",
                      f"{r.training_macs / r.macs:.3f}" if r.training_macs is not None and r.macs else "-",
                      human_bytes(r.training_peak_bytes) if r.training_peak_bytes is not None else "-")
        out.append(cells)
    return out


def _training(rows: list[CompareRow]) -> bool:
    """Whether the rows carry the training view (compare --training)."""
    return any(r.optimizer is not None for r in rows)


TRAINING_HEADERS = ("training MACs", "training ÷ forward", "training peak")


def _div(a: float, b: float) -> float | None:
    """a / b, or None where the first model has none of it (a model without parameters)."""
    return a / b if b else None


def _ratio(a: float, b: float) -> str:
    x = _div(a, b)
    if x is None:
        return "-"
    return f"{x:.3f}" + (f" ({1 / x:.1f}x fewer)" if 0 < x < 1 else "")


COMPARE_CSV_HEADERS = ("model", "params", "macs", "flops", "rf_px", "params_bytes", "activation_peak_bytes",
                       "params_ratio", "macs_ratio")  # then latency_ms, latency_ratio with --latency; status last


def _compare_csv_rows(rows: list[CompareRow], first: CompareRow, latency: bool) -> list[tuple]:
    def raw(x: object) -> object:
        return "-" if x is None else x

    out = []
    for r in sorted(rows, key=lambda x: x.macs):
        cells = (r.model, r.params, r.macs, r.flops, raw(r.rf), r.params_bytes, r.activation_peak_bytes,
                 raw(_div(r.params, first.params)), raw(_div(r.macs, first.macs)))
        if latency:
            cells += (r.latency_ms, raw(_div(r.latency_ms, first.latency_ms)))
        if _training(rows):
            cells += (raw(r.training_macs), raw(r.training_peak_bytes))
        out.append(cells + (r.status,))
    return out


def _partial_caption(rows: list[CompareRow]) -> str:
    partial = [r for r in rows if r.status == "partial"]
    if not partial:
        return ""
    return ("PARTIAL counts: " + "; ".join(f"{r.model} runs ops archlab has no cost rule for "
                                           f"({ops_text(r.unsupported_ops)})" for r in partial)
            + ": their MACs and FLOPs leave them out\n")


def _json(rows: list[CompareRow], first: CompareRow, latency: bool) -> str:
    return to_json([{"model": r.model, "params": r.params, "macs": r.macs, "flops": r.flops, "rf": r.rf,
                     "params_bytes": r.params_bytes, "activation_peak_bytes": r.activation_peak_bytes,
                     "dtype": r.dtype, "batch": r.batch,
                     "params_ratio": _div(r.params, first.params), "macs_ratio": _div(r.macs, first.macs),
                     **({"latency_ms": r.latency_ms, "latency_ratio": _div(r.latency_ms, first.latency_ms),
                         "latency_noisy": r.latency_noisy}
                        if latency else {}),
                     **({"training_macs": r.training_macs, "training_peak_bytes": r.training_peak_bytes,
                         "optimizer": r.optimizer} if _training(rows) else {}),
                     "status": r.status,
                     "unsupported_ops": unsupported_json(r.unsupported_ops)}
                    for r in sorted(rows, key=lambda x: x.macs)])


def _csv(rows: list[CompareRow], first: CompareRow, latency: bool) -> str:
    return csv_table(COMPARE_CSV_HEADERS + (("latency_ms", "latency_ratio") if latency else ())
                     + (("training_macs", "training_peak_bytes") if _training(rows) else ()) + ("status",),
                     _compare_csv_rows(rows, first, latency))


def _headers(latency: bool, training: bool = False) -> tuple[str, ...]:
    return COMPARE_HEADERS + (("latency ms", "latency ÷ first") if latency else ()) + (TRAINING_HEADERS if training
                                                                                      else ())


def _batch_text(rows: list[CompareRow]) -> str:
    """'batch N' when every model was counted at the same batch, else each model's batch (a spec's
    batch= applies to its model only, so the MACs and memory of mixed batches are whole batches)."""
    batches = {r.batch for r in rows}
    if len(batches) == 1:
        return f"batch {batches.pop()}"
    return "at each model's batch: " + ", ".join(f"{r.model} batch {r.batch}" for r in rows)


def _noisy_caption(rows: list[CompareRow]) -> str:
    from archlab.measure.latency import NOISY_IQR

    noisy = [r.model for r in rows if r.latency_noisy]
    if not noisy:
        return ""
    return f"noisy (IQR over {100 * NOISY_IQR:.1f}% of the median): {', '.join(noisy)}\n"


def _dtype_word(rows: list[CompareRow]) -> str:
    """The one dtype of every model's memory, or 'each model's dtype' (the caption names them)."""
    kinds = {r.dtype for r in rows}
    return kinds.pop() if len(kinds) == 1 else "each model's dtype"


def _dtypes(rows: list[CompareRow]) -> str:
    """The dtype the memory columns are at: one for all, or each model's own, named."""
    word = _dtype_word(rows)
    return word if len({r.dtype for r in rows}) == 1 else (
        "each model's own dtype (" + ", ".join(f"{r.model} {r.dtype}" for r in rows) + ")")


def _caption(rows: list[CompareRow], first: CompareRow) -> str:
    training = ""
    if _training(rows):
        training = (f"training: one step, forward + backward MACs, and its predicted memory peak (parameters, "
                    f"gradients, {first.optimizer} state, activations), {_batch_text(rows)}; '-': the training "
                    "step fails at that batch\n")
    return (f"sorted by MACs (multiply-accumulates; FLOPs = 2 x MACs); ratios to {first.model}, the first "
            f"model named; RF: receptive field of the last spatial layer, in input pixels; memory at {_dtypes(rows)}, "
            + _batch_text(rows) + "\n" + training + _partial_caption(rows) + _noisy_caption(rows))


def _table(rows: list[CompareRow], first: CompareRow, latency: bool) -> str:
    headers = _headers(latency, _training(rows))
    return (text_table(headers, _compare_cells(rows, first, latency), "l" + "r" * (len(headers) - 1), max_width=60)
            + _caption(rows, first))


def _md(rows: list[CompareRow], first: CompareRow, latency: bool) -> str:
    headers = _headers(latency, _training(rows))  # a blank line between caption lines keeps them separate paragraphs
    return (md_table(headers, _compare_cells(rows, first, latency), "l" + "r" * (len(headers) - 1)) + "\n"
            + _caption(rows, first).replace("\n", "\n\n", 1))


def compare_figure(rows: list[CompareRow]) -> "FigureSpec":
    """The models side by side: params, MACs and the activation peak (bytes at each model's own dtype),
    one bar each."""
    from archlab.report.figures import FigureSpec, Series

    from archlab.units import binary_unit

    names = tuple(r.model for r in rows)
    # bars on a linear axis from 0: a bar's length is its value (on a log axis bars start at an
    # arbitrary floor and their lengths mislead); the peak in the binary unit of the largest one
    factor, unit = binary_unit(max(r.activation_peak_bytes for r in rows))
    return FigureSpec(
        key="compare", title="The models side by side (linear axes from 0)", xlabel="model",
        ylabels=("params", "MACs", f"activation peak ({unit}, {_dtype_word(rows)})"),
        series=(Series("params", tuple(r.params for r in rows), kind="bar", panel=0),
                Series("MACs", tuple(r.macs for r in rows), kind="bar", panel=1),
                Series(f"activation peak ({unit})", tuple(r.activation_peak_bytes / factor for r in rows),
                       kind="bar", panel=2)),
        xticklabels=names, logy=(False, False, False), size=(max(5.0, 1.0 + 0.8 * len(rows)), 7.0))


def _html(rows: list[CompareRow], first: CompareRow, latency: bool) -> str:
    import html

    from archlab.report.figures import svg_of
    from archlab.report.page import STYLE, html_table

    spec = compare_figure(rows)
    headers = _headers(latency, _training(rows))
    cells = [tuple(str(c) for c in row) for row in _compare_cells(rows, first, latency)]
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>archlab compare</title>"
            f"<style>{STYLE}</style></head><body>\n<h1>archlab compare: {html.escape(', '.join(r.model for r in rows))}"
            f"</h1>\n<figure id='fig-{spec.key}'>{svg_of(spec)}<figcaption>{html.escape(spec.title)}</figcaption>"
            f"</figure>\n{html_table(headers, cells)}\n<p>{html.escape(_caption(rows, first))}</p>\n</body></html>\n")


def render_compare(rows: list[CompareRow], fmt: str, latency: bool = False) -> str:
    """``archlab compare``'s output in ``fmt``: the models sorted by MACs, ratios to the first named
    (html: a page with the models side by side as bars, and the table)."""
    first = rows[0]
    if fmt == "html":
        return _html(rows, first, latency)
    return formats.render(fmt, table=lambda: _table(rows, first, latency), json=lambda: _json(rows, first, latency),
                          csv=lambda: _csv(rows, first, latency), md=lambda: _md(rows, first, latency))


def render_schemes(bills: list[Any], baselines: dict[str, int], fmt: str) -> str:
    """``archlab compare --training --world-size N --shard ...``: one rank's bills (``PerRankBill``) side by side,
    a column per scheme (or model), a row per component; html: a page with one stacked bar per column above the
    table (``archlab.report.training_memory``)."""
    from archlab.report import training_memory as tm

    if fmt != "html":
        return tm.render_schemes(bills, baselines, fmt)
    import html

    from archlab.report.figures import svg_of
    from archlab.report.page import STYLE, html_table

    spec = tm.rank_bills_figure(bills)
    names = ", ".join(dict.fromkeys(r.model for r in bills))
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>archlab compare --training</title>"
            f"<style>{STYLE}</style></head><body>\n<h1>archlab compare --training: {html.escape(names)}</h1>\n"
            f"<figure id='fig-{spec.key}'>{svg_of(spec)}<figcaption>{html.escape(spec.title)}</figcaption></figure>\n"
            f"{html_table(('per rank', *tm.columns(bills)), tm.scheme_rows(bills, baselines))}\n"
            f"<p>{html.escape(tm.schemes_caption(bills))}</p>\n</body></html>\n")
