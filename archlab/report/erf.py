"""Renderers for ``archlab rf --effective``: each layer's effective field beside its exact one."""

from __future__ import annotations

from typing import Any

from archlab.analysis.erf import STABLE_WITHIN, THRESHOLDS, ERFLayer, ERFResult
from archlab.report import formats
from archlab.report.formats import csv_table, md_table, text_table, to_json
from archlab.units import shape_str

HEADERS = ("name", "type", "output", "RF", "ERF95", "ERF95/RF", "sigma", "fit residual",
           *(f"area {t}%" for t in THRESHOLDS))
ALIGN = "lll" + "r" * (len(HEADERS) - 3)
CSV_HEADERS = ("name", "type", "depth", "output_shape", "rf_h", "rf_w", "window_y0", "window_y1", "window_x0",
               "window_x1", "centre_y", "centre_x", "erf95", "erf95_half_samples", "erf95_ratio", "sigma_y", "sigma_x",
               "fit_residual", *(f"area_ratio_{t}" for t in THRESHOLDS))


def _hw(v: tuple[Any, Any] | None) -> str:
    if v is None:
        return "-"
    return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"


def _sigma(layer: ERFLayer) -> str:
    sy, sx = layer.metrics.sigma
    return f"{sy:.1f}" if f"{sy:.1f}" == f"{sx:.1f}" else f"{sy:.1f}x{sx:.1f}"


def _percent(x: float) -> str:
    """A share of the input's area, in percent, to three significant digits at most."""
    p = 100 * x
    return f"{p:.3g}%" if p < 100 else f"{p:.0f}%"


def _cells(layer: ERFLayer, indent: bool = True) -> tuple:
    ratio = layer.erf95_ratio
    erf95 = str(layer.metrics.erf95)
    if not layer.settled:
        erf95 += "*"
    return (("  " * (layer.depth - 1) if indent else "") + layer.name, layer.type, shape_str(layer.out_shape),
            _hw(layer.rf), erf95, "-" if ratio is None else f"{ratio:.2f}", _sigma(layer),
            f"{layer.metrics.fit_residual:.2f}", *(_percent(layer.metrics.area_ratio[t]) for t in THRESHOLDS))


def _weights_text(result: ERFResult) -> str:
    if result.weights == "init":
        seeds = result.seeds
        builds = f"{len(seeds)} build{'s' if len(seeds) != 1 else ''}, seed{'s' if len(seeds) != 1 else ''} " + (
            f"{seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else str(seeds[0]))
        return f"the model's own initialization ({builds}, the samples split evenly among them)"
    if result.weights == "uniform":
        return "uniform (each conv/linear layer's weights all 1/fan_in, biases zero)"
    return "as given (the weights the model was built with)"


def summary_lines(result: ERFResult) -> list[str]:
    """The header: what was run (samples, weights, device), what the columns mean, whether it is stable."""
    half = (result.samples + 1) // 2
    lines = [f"effective receptive field: {result.samples} random input{'s' if result.samples != 1 else ''} "
             f"(standard normal) on {result.device}, weights {_weights_text(result)}",
             "RF: the centre unit's exact field; ERF95: side of the smallest square centred on that unit holding 95% "
             "of |d unit / d input| (input pixels); sigma: a Gaussian fit's, input pixels; area t%: the smallest "
             "centred square holding t% of it, as a share of the input's area (RepLKNet's ratio)"]
    moved = [lay for lay in result.layers if lay.erf95_half is not None and lay.erf95_half != lay.metrics.erf95]
    worst = max(moved, key=lambda lay: abs(lay.erf95_half - lay.metrics.erf95) / lay.metrics.erf95, default=None)
    largest = "" if worst is None else (f" (largest change: {worst.name}, {worst.erf95_half} from {half}, "
                                        f"{worst.metrics.erf95} from {result.samples})")
    within = f"{100 * STABLE_WITHIN:.0f}%"
    if result.samples < 2:
        lines.append("stability: one sample, not checked")
    elif worst is None:
        lines.append(f"stable: every layer's ERF95 is the same from {half} of the {result.samples} samples")
    elif result.stable:
        lines.append(f"stable: every layer's ERF95 from {half} of the {result.samples} samples is within {within} "
                     f"(or 2 pixels) of its value from all{largest}")
    else:
        unsettled = [lay for lay in result.layers if not lay.settled]
        lines.append(f"not stable: ERF95 of {len(unsettled)} layer{'s' if len(unsettled) != 1 else ''} (marked *) "
                     f"from {half} of the samples differs by more than {within} (and 2 pixels){largest}; use more "
                     f"--samples")
    lines.extend(f"note: {n}" for n in result.notes if not n.startswith(("init:", "uniform:")))
    return lines


def _title(result: ERFResult) -> str:
    return f"{result.label}  input {shape_str(result.input_shape)}"


def _table(result: ERFResult) -> str:
    body = text_table(HEADERS, [_cells(lay) for lay in result.layers], ALIGN)
    return "\n".join([_title(result), *summary_lines(result), "", body])


def _csv(result: ERFResult) -> str:
    rows = []
    for lay in result.layers:
        d = lay.to_dict()
        rf = d["rf"] or [None, None]
        window = d["window"] or [None] * 4
        rows.append((d["name"], d["type"], d["depth"], shape_str(d["output_shape"]), *rf, *window, *d["centre"],
                     d["erf95"], d["erf95_half_samples"], d["erf95_ratio"], *d["sigma"], d["fit_residual"],
                     *(d["area_ratio"][str(t)] for t in THRESHOLDS)))
    return csv_table(CSV_HEADERS, rows)


def _md(result: ERFResult) -> str:
    summary = "\n".join(f"- {line}" for line in summary_lines(result))
    return f"### {_title(result)}\n\n{summary}\n\n" + md_table(HEADERS, [_cells(lay, False) for lay in result.layers],
                                                                ALIGN)


def render_erf(result: ERFResult, fmt: str) -> str:
    """``archlab rf --effective``'s output in ``fmt`` (table, json, csv or md)."""
    return formats.render(fmt, table=lambda: _table(result), json=lambda: to_json(result.to_dict()),
                          csv=lambda: _csv(result), md=lambda: _md(result))
