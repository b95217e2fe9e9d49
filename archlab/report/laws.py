"""Renderers for the cost laws of ``archlab.analysis.laws``: ``archlab dwsc``, ``archlab compare``
of one model against its own scaling law (``archlab compare`` of several models is in
``archlab.report.compare``) and ``archlab efficientnet``, whose report pages are written by
``archlab.report.files``."""

from __future__ import annotations

import base64
import html
from typing import Any, Sequence

from archlab.analysis.laws import CompoundResult, DwscResult, ScalingComparison
from archlab.report import formats
from archlab.report.formats import PARTIAL, csv_table, md_table, ops_text, text_table, to_json
from archlab.units import human

# --- dwsc --------------------------------------------------------------------------------------


def _dwsc_rows(r: DwscResult) -> list[tuple]:
    def same(a: object, b: object) -> str:
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
DWSC_CSV_HEADERS = ("quantity", "unit", "formula", "by_formula", "counted", "agree")


def _dwsc_csv_rows(r: DwscResult) -> list[tuple]:
    """Raw numbers, one row per quantity; the unit column names what each row counts."""
    def same(a: object, b: object) -> str:
        return "true" if a == b else "false"

    macs, params = "multiply-accumulates", "weights (no bias)"
    return [
        ("standard_macs", macs, "D_K^2*M*D_G^2*N", r.formula_standard_macs, r.standard_macs,
         same(r.formula_standard_macs, r.standard_macs)),
        ("separable_macs", macs, "D_G^2*M*(D_K^2 + N)", r.formula_separable_macs, r.separable_macs,
         same(r.formula_separable_macs, r.separable_macs)),
        ("standard_params", params, "D_K^2*M*N", r.formula_standard_params, r.standard_params,
         same(r.formula_standard_params, r.standard_params)),
        ("separable_params", params, "M*(D_K^2 + N)", r.formula_separable_params, r.separable_params,
         same(r.formula_separable_params, r.separable_params)),
        ("macs_ratio", "ratio (separable / standard)", "1/N + 1/D_K^2", r.formula_ratio, r.ratio,
         same(round(r.formula_ratio, 12), round(r.ratio, 12))),
    ]


def _padding_note(r: DwscResult) -> str:
    before, after = r.padding
    if before == after:
        return ""
    return (f", 'same' padding {before} before and {after} after (an even kernel: nn.ZeroPad2d, then the "
            "convolution)")


def _dwsc_title(r: DwscResult) -> str:
    return (f"D_K = {r.k}, M = {r.m}, N = {r.n}, a {r.size}x{r.size} input, stride {r.stride}{_padding_note(r)}: "
            f"D_G = {r.out_size} (multiplications = multiply-accumulates; parameters without bias)")


def _dwsc_table(r: DwscResult) -> str:
    tail = f"1/D_K² = {1 / r.k**2:.6f}: the ratio's limit as N grows\n"
    return _dwsc_title(r) + "\n" + text_table(DWSC_HEADERS, _dwsc_rows(r), "llrrl") + tail


def render_dwsc(r: DwscResult, fmt: str) -> str:
    """``archlab dwsc``'s output in ``fmt``: the formulas beside the counted layers."""
    return formats.render(fmt, table=lambda: _dwsc_table(r), json=lambda: to_json(r.to_dict()),
                          csv=lambda: csv_table(DWSC_CSV_HEADERS, _dwsc_csv_rows(r)),
                          md=lambda: f"### {_dwsc_title(r)}\n\n" + md_table(DWSC_HEADERS, _dwsc_rows(r), "llrrl"))


SWEEP_HEADERS = ("value", "D_G", "standard MACs", "separable MACs", "ratio (counted)", "1/N + 1/D_K²", "1/D_K²")


def _sweep_rows(key: str, results: Sequence[DwscResult]) -> list[tuple]:
    return [(getattr(r, key), r.out_size, f"{r.standard_macs:,}", f"{r.separable_macs:,}", f"{r.ratio:.6f}",
             f"{r.formula_ratio:.6f}", f"{1 / r.k**2:.6f}") for r in results]


def _sweep_csv(key: str, results: Sequence[DwscResult]) -> str:
    return csv_table((key, "out_size_px", "standard_macs", "separable_macs", "macs_ratio", "formula_ratio",
                      "limit_ratio"),
                     [(getattr(r, key), r.out_size, r.standard_macs, r.separable_macs, r.ratio, r.formula_ratio,
                       1 / r.k**2) for r in results])


def _sweep_table(key: str, results: Sequence[DwscResult]) -> str:
    agree = all(r.agrees for r in results)
    return (f"sweep over {key}: separable / standard multiplications, counted on real layers "
            f"({'equal to the formula in every row' if agree else 'DIFFERENT from the formula'})\n"
            + text_table((key,) + SWEEP_HEADERS[1:], _sweep_rows(key, results), "rrrrrrr"))


def render_sweep(key: str, results: Sequence[DwscResult], fmt: str) -> str:
    """``archlab dwsc --sweep``'s output in ``fmt``: one row per value of ``key``."""
    return formats.render(fmt, table=lambda: _sweep_table(key, results),
                          json=lambda: to_json({"sweep": key, "rows": [r.to_dict() for r in results]}),
                          csv=lambda: _sweep_csv(key, results),
                          md=lambda: md_table((key,) + SWEEP_HEADERS[1:], _sweep_rows(key, results), "rrrrrrr"))


# --- compare -------------------------------------------------------------------------------------


def _scaling_rows(c: ScalingComparison) -> list[tuple]:
    def macs(side: dict[str, Any]) -> str:
        return f"{side['macs']:,}" + (PARTIAL if side.get("status") == "partial" else "")

    rows = [
        ("params", f"{c.baseline['params']:,}", f"{c.variant['params']:,}", f"{c.measured['params_ratio']:.4f}",
         f"{c.predicted['params_ratio']:.4f} (α²)", f"{c.params_law_error_percent:+.1f}%"),
        ("MACs", macs(c.baseline), macs(c.variant), f"{c.measured['macs_ratio']:.4f}",
         f"{c.predicted['macs_ratio']:.4f} (α²ρ²)", f"{c.macs_law_error_percent:+.1f}%"),
    ]
    return rows


SCALING_HEADERS = ("quantity", "baseline", "variant", "measured ratio", "predicted ratio", "law off by")
SCALING_CSV_HEADERS = ("quantity", "baseline_model", "baseline", "variant_model", "variant", "measured_ratio",
                       "predicted_ratio", "law", "law_error_percent", "baseline_status", "variant_status")


def _scaling_csv_rows(c: ScalingComparison) -> list[tuple]:
    """One row per quantity; with --latency a latency_ms row (milliseconds; measured_ratio is
    variant / baseline, and no law predicts it: '-')."""
    status = (c.baseline.get("status", "complete"), c.variant.get("status", "complete"))
    rows = [
        ("params", c.baseline["model"], c.baseline["params"], c.variant["model"], c.variant["params"],
         c.measured["params_ratio"], c.predicted["params_ratio"], "alpha^2", c.params_law_error_percent, *status),
        ("macs", c.baseline["model"], c.baseline["macs"], c.variant["model"], c.variant["macs"],
         c.measured["macs_ratio"], c.predicted["macs_ratio"], "alpha^2*rho^2", c.macs_law_error_percent, *status),
    ]
    if c.latency is not None:
        lat = c.latency
        rows.append(("latency_ms", c.baseline["model"], lat["baseline_ms"], c.variant["model"], lat["variant_ms"],
                     "-" if lat["ratio"] is None else lat["ratio"], "-", "-", "-", *status))
    return rows


def _scaling_latency_line(c: ScalingComparison) -> str:
    lat = c.latency
    ratio = "-" if lat["ratio"] is None else f"{lat['ratio']:.3f}"
    return (f"latency (CPU, batch 1, median): baseline {lat['baseline_ms']:.2f} ms, "
            f"variant {lat['variant_ms']:.2f} ms, "
            f"ratio {ratio} (MACs ratio {c.measured['macs_ratio']:.3f})")


def _scaling_title(c: ScalingComparison) -> str:
    if c.rho_requested is None:
        rho = f"ρ = {c.rho:.4f} (resolution {c.resolution} px)"
    else:  # the multiplier asked for does not land on a whole pixel: the effective ρ is what was counted
        rho = (f"ρ = {c.rho:.6g} (resolution {c.resolution} px: ρ = {c.rho_requested:g} asked for, rounded to "
               "whole pixels)")
    return (f"{c.model}: α = {c.alpha:g}, {rho} against α = 1 at {c.baseline['model']}'s default resolution "
            f"({c.default_resolution} px)")


def _causes_text(c: ScalingComparison, quantity: str) -> str:
    """The causes of a law's departure, largest first, each with its share in percentage points
    (they add up to the departure)."""
    shown = [x for x in c.causes.get(quantity, []) if abs(x["points"]) >= 0.05]
    if not shown:
        return "no single cause stands out"
    return ", ".join(f"{x['text']} ({x['points']:+.1f} points)" for x in shown)


def _scaling_notes(c: ScalingComparison) -> list[str]:
    notes = []
    if abs(c.params_law_error_percent) > 0.5:
        notes.append(f"params ≈ α² is off by {c.params_law_error_percent:+.1f}%: " + _causes_text(c, "params"))
    if abs(c.macs_law_error_percent) > 0.5:
        notes.append(f"cost ∝ α²ρ² is off by {c.macs_law_error_percent:+.1f}%: " + _causes_text(c, "macs"))
    if c.course:
        notes.append("the course's table: " + ", ".join(f"{k} {v}" for k, v in c.course.items()))
    sides = (("baseline", c.baseline), ("variant", c.variant))
    notes[:0] = [f"PARTIAL count: the {name} {side['model']} runs ops archlab has no cost rule for "
                 f"({ops_text(side['unsupported_ops'])}); its MACs leave them out"
                 for name, side in sides if side.get("status") == "partial"]
    return notes


def _scaling_table(c: ScalingComparison) -> str:
    latency = _scaling_latency_line(c) + "\n" if c.latency is not None else ""
    return (_scaling_title(c) + "\n" + text_table(SCALING_HEADERS, _scaling_rows(c), "lrrrrr")
            + "".join(f"note: {n}\n" for n in _scaling_notes(c)) + latency)


def _scaling_md(c: ScalingComparison) -> str:
    latency = f"\n{_scaling_latency_line(c)}\n" if c.latency is not None else ""
    return (f"### {_scaling_title(c)}\n\n" + md_table(SCALING_HEADERS, _scaling_rows(c), "lrrrrr")
            + "".join(f"\n- {n}" for n in _scaling_notes(c)) + "\n" + latency)


def render_scaling(c: ScalingComparison, fmt: str) -> str:
    """``archlab compare MODEL --alpha/--rho``'s output in ``fmt``: measured ratios against the law's."""
    return formats.render(fmt, table=lambda: _scaling_table(c), json=lambda: to_json(c.to_dict()),
                          csv=lambda: csv_table(SCALING_CSV_HEADERS, _scaling_csv_rows(c)), md=lambda: _scaling_md(c))


# --- efficientnet ------------------------------------------------------------------------------


def _compound_rows(r: CompoundResult) -> list[tuple]:
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


def _compound_csv_rows(r: CompoundResult) -> list[tuple]:
    """The scaling table as raw numbers, one quantity a row, with its unit."""
    rows = [
        ("phi", "compound coefficient", r.phi, "coefficient"),
        ("alpha", "depth base", r.alpha, "coefficient"),
        ("beta", "width base", r.beta, "coefficient"),
        ("gamma", "resolution base", r.gamma, "coefficient"),
        ("depth", "alpha^phi", r.depth, "multiplier"),
        ("width", "beta^phi", r.width, "multiplier"),
        ("resolution_multiplier", "gamma^phi", r.resolution_multiplier, "multiplier"),
        ("resolution", "B0's resolution x gamma^phi, rounded", r.resolution, "px"),
        ("constraint", "alpha*beta^2*gamma^2", r.constraint, "ratio"),
        ("predicted_cost_ratio", "(alpha*beta^2*gamma^2)^phi", r.predicted_cost_ratio, "ratio"),
        ("measured_cost_ratio", "macs / macs(B0)", r.measured_cost_ratio, "ratio"),
        ("params", "built network", r.params, "weights"),
        ("macs", "built network", r.macs, "multiply-accumulates"),
        ("flops", "2 x macs", 2 * r.macs, "floating-point operations"),
    ]
    if r.official:
        o = r.official
        rows += [
            ("official_width", o["model"], o["width"], "multiplier"),
            ("official_depth", o["model"], o["depth"], "multiplier"),
            ("official_resolution", o["model"], o["resolution"], "px"),
            ("official_params", o["model"], o["params"], "weights"),
            ("official_macs", o["model"], o["macs"], "multiply-accumulates"),
            ("params_diff_percent", f"params against {o['model']}", o["params_diff_percent"], "percent"),
            ("macs_diff_percent", f"macs against {o['model']}", o["macs_diff_percent"], "percent"),
        ]
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


def _compound_table(r: CompoundResult) -> str:
    title = f"EfficientNet compound scaling, φ = {r.phi:g} (α = {r.alpha:g}, β = {r.beta:g}, γ = {r.gamma:g})"
    return "\n".join([title, text_table(None, _compound_rows(r), "lll", max_width=120),
                      text_table(STAGE_HEADERS, _stage_rows(r), "rlrrr"), _why_not_exact(r)]) + "\n"


def render_compound(r: CompoundResult, fmt: str) -> str:
    """``archlab efficientnet``'s output in ``fmt`` (the md form without the plot of ``--report md``)."""
    return formats.render(fmt, table=lambda: _compound_table(r), json=lambda: to_json(r.to_dict()),
                          csv=lambda: csv_table(("quantity", "rule", "value", "unit"), _compound_csv_rows(r)),
                          md=lambda: render_compound_md(r, plot=None))


def _curve_rows(r: CompoundResult) -> list[tuple]:
    return [(p["phi"], f"{p['params']:,}", f"{p['macs']:,}", f"{p['predicted_cost_ratio']:.3f}",
             f"{p['measured_cost_ratio']:.3f}") for p in r.curve]


CURVE_HEADERS = ("φ", "params", "MACs", "predicted cost ratio", "measured cost ratio")


def render_compound_md(r: CompoundResult, plot: str | None) -> str:
    """The markdown report; ``plot`` is the relative path of its image, or None for none."""
    out = [f"# EfficientNet compound scaling, φ = {r.phi:g}\n",
           f"α = {r.alpha:g}, β = {r.beta:g}, γ = {r.gamma:g}. Generated by `archlab efficientnet`; MACs are "
           "multiply-accumulates (FLOPs = 2 x MACs) at the scaled resolution, batch 1.\n",
           "## Scaling\n", md_table(("quantity", "rule", "value"), _compound_rows(r), "llr"),
           "\n## Stages (read from the built network)\n", md_table(STAGE_HEADERS, _stage_rows(r), "rlrrr")]
    if _why_not_exact(r):
        out.append("\n" + _why_not_exact(r) + "\n")
    if r.curve:
        out += ["\n## Cost against φ\n", md_table(CURVE_HEADERS, _curve_rows(r), "rrrrr")]
    if plot:
        out.append(f"\n![MACs and params against phi]({plot})\n")
    return "\n".join(out)


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _markdown_to_html(r: CompoundResult) -> str:
    parts = [f"<h1>EfficientNet compound scaling, φ = {r.phi:g}</h1>",
             f"<p>α = {r.alpha:g}, β = {r.beta:g}, γ = {r.gamma:g}. MACs are multiply-accumulates "
             "(FLOPs = 2 × MACs) at the scaled resolution, batch 1.</p>",
             "<h2>Scaling</h2>", _html_table(("quantity", "rule", "value"), _compound_rows(r)),
             "<h2>Stages</h2>", _html_table(STAGE_HEADERS, _stage_rows(r))]
    if _why_not_exact(r):
        parts.append(f"<p>{html.escape(_why_not_exact(r))}</p>")
    if r.curve:
        parts += ["<h2>Cost against φ</h2>", _html_table(CURVE_HEADERS, _curve_rows(r))]
    return "".join(parts)


def render_compound_html(r: CompoundResult, png: bytes) -> str:
    """The self-contained html report: the tables, and the plot ``png`` inlined."""
    img = base64.b64encode(png).decode("ascii")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>EfficientNet φ = "
            f"{html.escape(str(r.phi))}</title><style>body{{font-family:sans-serif;max-width:60em;margin:auto}}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
            "</style></head><body>" + _markdown_to_html(r) +
            f"<figure id='fig-phi'><img alt='MACs and params against phi' src='data:image/png;base64,{img}'>"
            "</figure></body></html>\n")


SEARCH_HEADERS = ("α", "β", "γ", "α·β²·γ²", "resolution", "params", "MACs", "")


SEARCH_NOTE = ("'<- paper': the paper's pick, Tan & Le 2019 Section 3.3. {n} candidates with α·β²·γ² within 2 ± 0.1 on a 0.05 grid, at φ = 1, sorted by MACs. The paper "
               "picks among them by ImageNet accuracy, which needs training each network: out of scope for archlab.\n")


def _search_cells(rows: Sequence[dict[str, Any]]) -> list[tuple]:
    return [(r["alpha"], r["beta"], r["gamma"], f"{r['constraint']:.4f}", r["resolution"], f"{r['params']:,}",
             f"{r['macs']:,}", "<- paper" if r["paper"] else "") for r in rows]


def _search_csv(rows: Sequence[dict[str, Any]]) -> str:
    return csv_table(("alpha", "beta", "gamma", "constraint", "resolution_px", "params", "macs", "paper"),
                     [(r["alpha"], r["beta"], r["gamma"], r["constraint"], r["resolution"], r["params"], r["macs"],
                       int(r["paper"])) for r in rows])


def render_search(rows: list[dict[str, Any]], fmt: str) -> str:
    """``archlab efficientnet --search``'s output in ``fmt``: the grid's candidates, sorted by MACs."""
    note = SEARCH_NOTE.format(n=len(rows))
    return formats.render(
        fmt, table=lambda: text_table(SEARCH_HEADERS, _search_cells(rows), "rrrrrrrl") + note,
        json=lambda: to_json({"candidates": rows, "note": "accuracy needs training each candidate; archlab only counts"}),
        csv=lambda: _search_csv(rows),
        md=lambda: md_table(SEARCH_HEADERS, _search_cells(rows), "rrrrrrrl") + "\n" + note)
