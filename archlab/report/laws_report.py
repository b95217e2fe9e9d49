"""Renderers for ``archlab dwsc``, ``archlab compare`` and ``archlab efficientnet``."""

from __future__ import annotations

import base64
import html
import os
from typing import Any

from archlab.errors import UserError
from archlab.laws import CompareRow, CompoundResult, DwscResult, ScalingComparison
from archlab.report.formats import csv_table, human, human_bytes, md_table, to_json
from archlab.report.text import text_table

# --- dwsc --------------------------------------------------------------------------------------


def _dwsc_rows(r: DwscResult) -> list[tuple]:
    def same(a, b):
        return "yes" if a == b else "NO"

    return [
        ("standard: multiplications", "D_K²·M·D_G²·N", f"{r.formula_standard_macs:,}", f"{r.standard_macs:,}",
         same(r.formula_standard_macs, r.standard_macs)),
        ("separable: multiplications", "D_G²·M·(D_K² + N)", f"{r.formula_separable_macs:,}", f"{r.separable_macs:,}",
         same(r.formula_separable_macs, r.separable_macs)),
        ("standard: parameters", "D_K²·M·N", f"{r.formula_standard_params:,}", f"{r.standard_params:,}",
         same(r.formula_standard_params, r.standard_params)),
        ("separable: parameters", "M·(D_K² + N)", f"{r.formula_separable_params:,}", f"{r.separable_params:,}",
         same(r.formula_separable_params, r.separable_params)),
        ("ratio separable / standard", "1/N + 1/D_K²", f"{r.formula_ratio:.6f}", f"{r.ratio:.6f}",
         same(round(r.formula_ratio, 12), round(r.ratio, 12))),
    ]


DWSC_HEADERS = ("quantity", "formula", "by formula", "counted (real nn.Conv2d layers)", "agree")


def render_dwsc(r: DwscResult, fmt: str) -> str:
    title = (f"D_K = {r.k}, M = {r.m}, N = {r.n}, a {r.size}x{r.size} input, stride {r.stride}: D_G = {r.out_size} "
             "(multiplications = multiply-accumulates; parameters without bias)")
    if fmt == "json":
        return to_json(r.to_dict())
    rows = _dwsc_rows(r)
    if fmt == "csv":
        return csv_table(DWSC_HEADERS, rows)
    if fmt == "md":
        return f"### {title}\n\n" + md_table(DWSC_HEADERS, rows, "llrrl")
    tail = f"1/D_K² = {1 / r.k**2:.6f}: the ratio's limit as N grows\n"
    return title + "\n" + text_table(DWSC_HEADERS, rows, "llrrl") + tail


SWEEP_HEADERS = ("value", "D_G", "standard MACs", "separable MACs", "ratio (counted)", "1/N + 1/D_K²", "1/D_K²")


def render_sweep(key: str, results: list[DwscResult], fmt: str) -> str:
    if fmt == "json":
        return to_json({"sweep": key, "rows": [r.to_dict() for r in results]})
    rows = [(getattr(r, key), r.out_size, f"{r.standard_macs:,}", f"{r.separable_macs:,}", f"{r.ratio:.6f}",
             f"{r.formula_ratio:.6f}", f"{1 / r.k**2:.6f}") for r in results]
    headers = (key,) + SWEEP_HEADERS[1:]
    if fmt == "csv":
        return csv_table(headers, rows)
    if fmt == "md":
        return md_table(headers, rows, "rrrrrrr")
    agree = all(r.agrees for r in results)
    return (f"sweep over {key}: separable / standard multiplications, counted on real layers "
            f"({'equal to the formula in every row' if agree else 'DIFFERENT from the formula'})\n"
            + text_table(headers, rows, "rrrrrrr"))


# --- compare -------------------------------------------------------------------------------------


def _scaling_rows(c: ScalingComparison) -> list[tuple]:
    rows = [
        ("params", f"{c.baseline['params']:,}", f"{c.variant['params']:,}", f"{c.measured['params_ratio']:.4f}",
         f"{c.predicted['params_ratio']:.4f} (α²)", f"{c.params_law_error_percent:+.1f}%"),
        ("MACs", f"{c.baseline['macs']:,}", f"{c.variant['macs']:,}", f"{c.measured['macs_ratio']:.4f}",
         f"{c.predicted['macs_ratio']:.4f} (α²ρ²)", f"{c.macs_law_error_percent:+.1f}%"),
    ]
    return rows


SCALING_HEADERS = ("quantity", "baseline", "variant", "measured ratio", "predicted ratio", "law off by")


def render_scaling(c: ScalingComparison, fmt: str) -> str:
    if fmt == "json":
        return to_json(c.to_dict())
    rows = _scaling_rows(c)
    if fmt == "csv":
        return csv_table(SCALING_HEADERS, rows)
    title = (f"{c.model}: α = {c.alpha:g}, ρ = {c.rho:.4f} (resolution {c.resolution} px) against α = 1 at "
             f"{c.baseline['model']}'s default resolution ({c.resolution / c.rho:.0f} px)")
    notes = []
    if abs(c.params_law_error_percent) > 0.5:
        notes.append(f"params ≈ α² is off by {c.params_law_error_percent:+.1f}%: not every layer scales as α²: "
                     "depthwise filters and the classifier scale as α (MobileNetV2's last 1x1 layer only grows "
                     "for α > 1), the first convolution still reads 3 channels, and channel counts are rounded")
    if abs(c.macs_law_error_percent) > 0.5:
        notes.append(f"cost ∝ α²ρ² is off by {c.macs_law_error_percent:+.1f}%: the depthwise layers and the "
                     "classifier cost ∝ α (not α²), and feature-map sides are rounded at each stride")
    if c.course:
        notes.append("the course's table: " + ", ".join(f"{k} {v}" for k, v in c.course.items()))
    if fmt == "md":
        return f"### {title}\n\n" + md_table(SCALING_HEADERS, rows, "lrrrrr") + "".join(f"\n- {n}" for n in notes) + "\n"
    return title + "\n" + text_table(SCALING_HEADERS, rows, "lrrrrr") + "".join(f"note: {n}\n" for n in notes)


COMPARE_HEADERS = ("model", "params", "MACs", "FLOPs", "RF", "param memory", "inference peak", "params ÷ first",
                   "MACs ÷ first")


def _compare_cells(rows: list[CompareRow], first: CompareRow, latency: bool) -> list[tuple]:
    out = []
    for r in sorted(rows, key=lambda x: x.macs):
        cells = (r.model, f"{r.params:,}", f"{r.macs:,}", human(r.flops), r.rf if r.rf is not None else "-",
                 human_bytes(r.params_bytes), human_bytes(r.activation_peak_bytes),
                 _ratio(r.params, first.params), _ratio(r.macs, first.macs))
        if latency:
            cells += (f"{r.latency_ms:.2f}", _ratio(r.latency_ms, first.latency_ms))
        out.append(cells)
    return out


def _ratio(a: float, b: float) -> str:
    if not b:
        return "-"
    x = a / b
    return f"{x:.3f}" + (f" ({1 / x:.1f}x fewer)" if x < 1 else "")


def render_compare(rows: list[CompareRow], fmt: str, latency: bool = False) -> str:
    first = rows[0]
    if fmt == "json":
        return to_json([{"model": r.model, "params": r.params, "macs": r.macs, "flops": r.flops, "rf": r.rf,
                         "params_bytes": r.params_bytes, "activation_peak_bytes": r.activation_peak_bytes,
                         "params_ratio": r.params / first.params, "macs_ratio": r.macs / first.macs,
                         **({"latency_ms": r.latency_ms, "latency_ratio": r.latency_ms / first.latency_ms}
                            if latency else {})}
                        for r in sorted(rows, key=lambda x: x.macs)])
    headers = COMPARE_HEADERS + (("latency ms", "latency ÷ first") if latency else ())
    cells = _compare_cells(rows, first, latency)
    if fmt == "csv":
        return csv_table(headers, cells)
    caption = (f"sorted by MACs (multiply-accumulates; FLOPs = 2 x MACs); ratios to {first.model}, the first "
               "model named; RF: receptive field of the last spatial layer, in input pixels; memory at fp32, batch 1")
    if fmt == "md":
        return md_table(headers, cells, "l" + "r" * (len(headers) - 1)) + "\n" + caption + "\n"
    return text_table(headers, cells, "l" + "r" * (len(headers) - 1), max_width=60) + caption + "\n"


# --- efficientnet ------------------------------------------------------------------------------


def _scaling_table(r: CompoundResult) -> list[tuple]:
    rows = [
        ("depth d = α^φ", f"{r.alpha:g}^{r.phi:g}", f"{r.depth:.4f}"),
        ("width w = β^φ", f"{r.beta:g}^{r.phi:g}", f"{r.width:.4f}"),
        ("resolution r = γ^φ", f"{r.gamma:g}^{r.phi:g}", f"{r.resolution_multiplier:.4f} -> {r.resolution} px"),
        ("constraint α·β²·γ²", "≈ 2", f"{r.constraint:.5f}"),
        ("predicted cost ratio", "(α·β²·γ²)^φ", f"{r.predicted_cost_ratio:.4f}"),
        ("measured cost ratio", "MACs / MACs(B0)", f"{r.measured_cost_ratio:.4f}"),
        ("params", "built network", f"{r.params:,}"),
        ("MACs", "built network", f"{r.macs:,} ({human(r.macs)})"),
    ]
    if r.official:
        o = r.official
        rows.append((f"official {o['model']}", f"w={o['width']}, d={o['depth']}, {o['resolution']} px",
                     f"params {o['params']:,}, MACs {o['macs']:,}: the exact rule's network has "
                     f"{o['params_diff_percent']:+.1f}% params, {o['macs_diff_percent']:+.1f}% MACs"))
    return rows


STAGE_HEADERS = ("stage", "operator", "resolution", "channels", "layers")


def _stage_rows(r: CompoundResult) -> list[tuple]:
    return [(s["stage"], s["operator"], s["resolution"], s["channels"], s["layers"]) for s in r.stages]


def _why_not_exact(r: CompoundResult) -> str:
    if r.phi == 0:
        return ""
    return ("The measured ratio differs from (α·β²·γ²)^φ because the built network rounds: layers per stage are "
            "ceil(d·L̂) (a 1-layer stage becomes 2 as soon as d > 1), channels are w·Ĉ rounded to a multiple of 8, "
            "and the resolution is rounded to whole pixels; the stem and head are not repeated.")


def render_compound(r: CompoundResult, fmt: str) -> str:
    if fmt == "json":
        return to_json(r.to_dict())
    if fmt == "csv":
        return csv_table(("quantity", "rule", "value"), _scaling_table(r))
    if fmt == "md":
        return _markdown(r, plot=None)
    title = f"EfficientNet compound scaling, φ = {r.phi:g} (α = {r.alpha:g}, β = {r.beta:g}, γ = {r.gamma:g})"
    return "\n".join([title, text_table(None, _scaling_table(r), "lll", max_width=120),
                      text_table(STAGE_HEADERS, _stage_rows(r), "rlrrr"), _why_not_exact(r)]) + "\n"


def _curve_rows(r: CompoundResult) -> list[tuple]:
    return [(p["phi"], f"{p['params']:,}", f"{p['macs']:,}", f"{p['predicted_cost_ratio']:.3f}",
             f"{p['measured_cost_ratio']:.3f}") for p in r.curve]


CURVE_HEADERS = ("φ", "params", "MACs", "predicted cost ratio", "measured cost ratio")


def _markdown(r: CompoundResult, plot: str | None) -> str:
    out = [f"# EfficientNet compound scaling, φ = {r.phi:g}\n",
           f"α = {r.alpha:g}, β = {r.beta:g}, γ = {r.gamma:g}. Generated by `archlab efficientnet`; MACs are "
           "multiply-accumulates (FLOPs = 2 x MACs) at the scaled resolution, batch 1.\n",
           "## Scaling\n", md_table(("quantity", "rule", "value"), _scaling_table(r), "llr"),
           "\n## Stages (read from the built network)\n", md_table(STAGE_HEADERS, _stage_rows(r), "rlrrr")]
    if _why_not_exact(r):
        out.append("\n" + _why_not_exact(r) + "\n")
    if r.curve:
        out += ["\n## Cost against φ\n", md_table(CURVE_HEADERS, _curve_rows(r), "rrrrr")]
    if plot:
        out.append(f"\n![MACs and params against phi]({plot})\n")
    return "\n".join(out)


def _plot_png(r: CompoundResult) -> bytes:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("plots need matplotlib: pip install 'archlab[plot]' (or pip install matplotlib); "
                        "--report json and the table work without it") from None
    import io

    phis = [p["phi"] for p in r.curve]
    fig, ax1 = plt.subplots(figsize=(6, 4), dpi=100)
    ax1.semilogy(phis, [p["macs"] for p in r.curve], "o-", label="MACs (built network)")
    ax1.semilogy(phis, [r.b0_macs * p["predicted_cost_ratio"] for p in r.curve], "--", label="MACs(B0)·(αβ²γ²)^φ")
    ax1.semilogy(phis, [p["params"] for p in r.curve], "s-", label="params")
    ax1.set_xlabel("φ")
    ax1.set_ylabel("count (log scale)")
    ax1.set_title(f"EfficientNet compound scaling (α={r.alpha:g}, β={r.beta:g}, γ={r.gamma:g})")
    ax1.legend()
    ax1.grid(True, which="both", alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def write_report(r: CompoundResult, kind: str, path: str) -> list[str]:
    """Write the self-contained report; returns the paths written."""
    from archlab.report.formats import write_atomic

    if kind == "json":
        write_atomic(path, to_json(r.to_dict()))
        return [path]
    png = _plot_png(r)
    if kind == "md":
        png_path = os.path.splitext(path)[0] + ".png"
        write_atomic(png_path, png)
        write_atomic(path, _markdown(r, os.path.basename(png_path)))
        return [path, png_path]
    if kind == "html":
        body = _markdown_to_html(r)
        img = base64.b64encode(png).decode("ascii")
        page = ("<!doctype html><html><head><meta charset='utf-8'><title>EfficientNet φ = "
                f"{html.escape(str(r.phi))}</title><style>body{{font-family:sans-serif;max-width:60em;margin:auto}}"
                "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
                "</style></head><body>" + body +
                f"<img alt='MACs and params against phi' src='data:image/png;base64,{img}'></body></html>\n")
        write_atomic(path, page)
        return [path]
    raise UserError(f"unknown --report '{kind}' (choose md, json or html)")


def _html_table(headers, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _markdown_to_html(r: CompoundResult) -> str:
    parts = [f"<h1>EfficientNet compound scaling, φ = {r.phi:g}</h1>",
             f"<p>α = {r.alpha:g}, β = {r.beta:g}, γ = {r.gamma:g}. MACs are multiply-accumulates "
             "(FLOPs = 2 × MACs) at the scaled resolution, batch 1.</p>",
             "<h2>Scaling</h2>", _html_table(("quantity", "rule", "value"), _scaling_table(r)),
             "<h2>Stages</h2>", _html_table(STAGE_HEADERS, _stage_rows(r))]
    if _why_not_exact(r):
        parts.append(f"<p>{html.escape(_why_not_exact(r))}</p>")
    if r.curve:
        parts += ["<h2>Cost against φ</h2>", _html_table(CURVE_HEADERS, _curve_rows(r))]
    return "".join(parts)


SEARCH_HEADERS = ("α", "β", "γ", "α·β²·γ²", "resolution", "params", "MACs")


def render_search(rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return to_json({"candidates": rows, "note": "accuracy needs training each candidate; archlab only counts"})
    cells = [(r["alpha"], r["beta"], r["gamma"], f"{r['constraint']:.4f}", r["resolution"], f"{r['params']:,}",
              f"{r['macs']:,}") for r in rows]
    if fmt == "csv":
        return csv_table(SEARCH_HEADERS, cells)
    note = (f"{len(rows)} candidates with α·β²·γ² within 2 ± 0.1 on a 0.05 grid, at φ = 1, sorted by MACs. The paper "
            "picks among them by ImageNet accuracy, which needs training each network: out of scope for archlab.\n")
    if fmt == "md":
        return md_table(SEARCH_HEADERS, cells, "rrrrrrr") + "\n" + note
    return text_table(SEARCH_HEADERS, cells, "rrrrrrr") + note
