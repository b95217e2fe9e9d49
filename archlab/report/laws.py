"""Renderers for ``archlab dwsc``, ``archlab compare`` and ``archlab efficientnet``."""

from __future__ import annotations

import base64
import html
import os
from typing import Any

from archlab.errors import UserError
from archlab.analysis.compare import CompareRow
from archlab.analysis.laws import CompoundResult, DwscResult, ScalingComparison
from archlab.report.formats import csv_table, md_table, to_json
from archlab.units import human, human_bytes
from archlab.report.formats import text_table

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
DWSC_CSV_HEADERS = ("quantity", "unit", "formula", "by_formula", "counted", "agree")


def _dwsc_csv_rows(r: DwscResult) -> list[tuple]:
    """Raw numbers, one row per quantity; the unit column names what each row counts."""
    def same(a, b):
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


def render_dwsc(r: DwscResult, fmt: str) -> str:
    title = (f"D_K = {r.k}, M = {r.m}, N = {r.n}, a {r.size}x{r.size} input, stride {r.stride}{_padding_note(r)}: "
             f"D_G = {r.out_size} (multiplications = multiply-accumulates; parameters without bias)")
    if fmt == "json":
        return to_json(r.to_dict())
    if fmt == "csv":
        return csv_table(DWSC_CSV_HEADERS, _dwsc_csv_rows(r))
    rows = _dwsc_rows(r)
    if fmt == "md":
        return f"### {title}\n\n" + md_table(DWSC_HEADERS, rows, "llrrl")
    tail = f"1/D_K² = {1 / r.k**2:.6f}: the ratio's limit as N grows\n"
    return title + "\n" + text_table(DWSC_HEADERS, rows, "llrrl") + tail


SWEEP_HEADERS = ("value", "D_G", "standard MACs", "separable MACs", "ratio (counted)", "1/N + 1/D_K²", "1/D_K²")


def render_sweep(key: str, results: list[DwscResult], fmt: str) -> str:
    if fmt == "json":
        return to_json({"sweep": key, "rows": [r.to_dict() for r in results]})
    if fmt == "csv":
        return csv_table((key, "out_size_px", "standard_macs", "separable_macs", "macs_ratio", "formula_ratio",
                          "limit_ratio"),
                         [(getattr(r, key), r.out_size, r.standard_macs, r.separable_macs, r.ratio, r.formula_ratio,
                           1 / r.k**2) for r in results])
    rows = [(getattr(r, key), r.out_size, f"{r.standard_macs:,}", f"{r.separable_macs:,}", f"{r.ratio:.6f}",
             f"{r.formula_ratio:.6f}", f"{1 / r.k**2:.6f}") for r in results]
    headers = (key,) + SWEEP_HEADERS[1:]
    if fmt == "md":
        return md_table(headers, rows, "rrrrrrr")
    agree = all(r.agrees for r in results)
    return (f"sweep over {key}: separable / standard multiplications, counted on real layers "
            f"({'equal to the formula in every row' if agree else 'DIFFERENT from the formula'})\n"
            + text_table(headers, rows, "rrrrrrr"))


# --- compare -------------------------------------------------------------------------------------


PARTIAL = " (partial)"  # after a model's name, or its MACs, whose count leaves out ops with no cost rule


def _uncounted(ops) -> str:
    """'aten.cumsum.default x1, ...' from (op, calls) pairs or count's [{"op", "count"}] list."""
    pairs = [(o["op"], o["count"]) if isinstance(o, dict) else tuple(o) for o in ops]
    return ", ".join(f"{op} x{n}" for op, n in pairs)


def _scaling_rows(c: ScalingComparison) -> list[tuple]:
    def macs(side):
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


def render_scaling(c: ScalingComparison, fmt: str) -> str:
    if fmt == "json":
        return to_json(c.to_dict())
    if fmt == "csv":
        return csv_table(SCALING_CSV_HEADERS, _scaling_csv_rows(c))
    rows = _scaling_rows(c)
    if c.rho_requested is None:
        rho = f"ρ = {c.rho:.4f} (resolution {c.resolution} px)"
    else:  # the multiplier asked for does not land on a whole pixel: the effective ρ is what was counted
        rho = (f"ρ = {c.rho:.6g} (resolution {c.resolution} px: ρ = {c.rho_requested:g} asked for, rounded to "
               "whole pixels)")
    title = (f"{c.model}: α = {c.alpha:g}, {rho} against α = 1 at {c.baseline['model']}'s default resolution "
             f"({c.default_resolution} px)")
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
    sides = (("baseline", c.baseline), ("variant", c.variant))
    notes[:0] = [f"PARTIAL count: the {name} {side['model']} runs ops archlab has no cost rule for "
                 f"({_uncounted(side['unsupported_ops'])}); its MACs leave them out"
                 for name, side in sides if side.get("status") == "partial"]
    if fmt == "md":
        latency = f"\n{_scaling_latency_line(c)}\n" if c.latency is not None else ""
        return (f"### {title}\n\n" + md_table(SCALING_HEADERS, rows, "lrrrrr") + "".join(f"\n- {n}" for n in notes)
                + "\n" + latency)
    latency = _scaling_latency_line(c) + "\n" if c.latency is not None else ""
    return (title + "\n" + text_table(SCALING_HEADERS, rows, "lrrrrr") + "".join(f"note: {n}\n" for n in notes)
            + latency)


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
            cells += (f"{r.latency_ms:.2f}", _ratio(r.latency_ms, first.latency_ms))
        out.append(cells)
    return out


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
    def raw(x):
        return "-" if x is None else x

    out = []
    for r in sorted(rows, key=lambda x: x.macs):
        cells = (r.model, r.params, r.macs, r.flops, raw(r.rf), r.params_bytes, r.activation_peak_bytes,
                 raw(_div(r.params, first.params)), raw(_div(r.macs, first.macs)))
        if latency:
            cells += (r.latency_ms, raw(_div(r.latency_ms, first.latency_ms)))
        out.append(cells + (r.status,))
    return out


def _partial_caption(rows: list[CompareRow]) -> str:
    partial = [r for r in rows if r.status == "partial"]
    if not partial:
        return ""
    return ("PARTIAL counts: " + "; ".join(f"{r.model} runs ops archlab has no cost rule for "
                                           f"({_uncounted(r.unsupported_ops)})" for r in partial)
            + ": their MACs and FLOPs leave them out\n")


def render_compare(rows: list[CompareRow], fmt: str, latency: bool = False) -> str:
    first = rows[0]
    if fmt == "json":
        return to_json([{"model": r.model, "params": r.params, "macs": r.macs, "flops": r.flops, "rf": r.rf,
                         "params_bytes": r.params_bytes, "activation_peak_bytes": r.activation_peak_bytes,
                         "params_ratio": _div(r.params, first.params), "macs_ratio": _div(r.macs, first.macs),
                         **({"latency_ms": r.latency_ms, "latency_ratio": _div(r.latency_ms, first.latency_ms)}
                            if latency else {}),
                         "status": r.status,
                         "unsupported_ops": [{"op": op, "count": n} for op, n in r.unsupported_ops]}
                        for r in sorted(rows, key=lambda x: x.macs)])
    if fmt == "csv":
        return csv_table(COMPARE_CSV_HEADERS + (("latency_ms", "latency_ratio") if latency else ()) + ("status",),
                         _compare_csv_rows(rows, first, latency))
    headers = COMPARE_HEADERS + (("latency ms", "latency ÷ first") if latency else ())
    cells = _compare_cells(rows, first, latency)
    caption = (f"sorted by MACs (multiply-accumulates; FLOPs = 2 x MACs); ratios to {first.model}, the first "
               "model named; RF: receptive field of the last spatial layer, in input pixels; memory at fp32, batch 1\n"
               + _partial_caption(rows))
    if fmt == "md":  # a blank line between caption lines keeps them separate paragraphs
        return md_table(headers, cells, "l" + "r" * (len(headers) - 1)) + "\n" + caption.replace("\n", "\n\n", 1)
    return text_table(headers, cells, "l" + "r" * (len(headers) - 1), max_width=60) + caption


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


def render_compound(r: CompoundResult, fmt: str) -> str:
    if fmt == "json":
        return to_json(r.to_dict())
    if fmt == "csv":
        return csv_table(("quantity", "rule", "value", "unit"), _compound_csv_rows(r))
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


def plot_path(path: str) -> str:
    """Where ``--report md -o PATH`` puts its plot: beside the file the report really goes to
    (a symbolic link is followed, so that the markdown's relative image reference holds), as
    the same name with ``.png``."""
    source = os.path.realpath(path) if os.path.islink(path) else path
    return os.path.splitext(source)[0] + ".png"


def _check_md_paths(path: str, png_path: str) -> None:
    """Refuse what would lose or misplace the report or its plot, before either is written."""
    target = os.path.realpath(path)
    if os.path.exists(target) and not os.path.isfile(target):
        raise UserError(f"cannot write the md report to '{path}': it is not a regular file (a device, pipe or "
                        "socket); the report's plot goes beside it as a .png file, so -o must name a file")
    if os.path.splitext(target)[1].lower() == ".png" or os.path.realpath(png_path) == target:
        raise UserError(f"-o '{path}' is where the md report's plot goes ('{png_path}', the report's name with .png): "
                        "the plot and the markdown would overwrite each other; name the report e.g. "
                        f"'{os.path.splitext(path)[0]}.md'")
    png_target = os.path.realpath(png_path)
    if os.path.exists(png_target) and not os.path.isfile(png_target):
        what = "a directory" if os.path.isdir(png_target) else "not a regular file"
        raise UserError(f"cannot write the plot of the report '{path}' to '{png_path}': it is {what}")


def check_report_path(kind: str, path: str) -> None:
    """Refuse, before anything is computed or written, a ``path`` the report cannot go to."""
    target = os.path.realpath(path)
    if os.path.isdir(target):
        raise UserError(f"cannot write '{path}': it is a directory")
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise UserError(f"cannot write '{path}': directory '{os.path.dirname(os.path.abspath(path))}' does not exist")
    if kind == "md":
        _check_md_paths(path, plot_path(path))


def write_report(r: CompoundResult, kind: str, path: str) -> list[str]:
    """Write the self-contained report; returns the paths written. ``md`` also writes the plot
    beside it (see ``plot_path``): both are checked before either is written, the plot is taken
    back (removed, or its old content restored) when the markdown then cannot be written, and a
    failure names ``path``, the file asked for."""
    from archlab.report.files import write_atomic

    check_report_path(kind, path)
    if kind == "json":
        write_atomic(path, to_json(r.to_dict()))
        return [path]
    png = _plot_png(r)
    if kind == "md":
        png_path = plot_path(path)
        try:
            with open(png_path, "rb") as f:
                old_png = f.read()
        except FileNotFoundError:
            old_png = None
        except OSError as e:
            raise UserError(f"cannot write the plot of the report '{path}' to '{png_path}': {e.strerror}") from None
        try:
            write_atomic(png_path, png)
        except UserError as e:
            raise UserError(f"{e} (the plot of the report '{path}', written beside it)") from None
        try:
            write_atomic(path, _markdown(r, os.path.basename(png_path)))
        except BaseException:
            try:  # no plot without its report: take back what was just written
                if old_png is None:
                    os.unlink(png_path)
                else:
                    write_atomic(png_path, old_png)
            except (OSError, UserError):
                pass
            raise
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
    if fmt == "csv":
        return csv_table(("alpha", "beta", "gamma", "constraint", "resolution_px", "params", "macs"),
                         [(r["alpha"], r["beta"], r["gamma"], r["constraint"], r["resolution"], r["params"], r["macs"])
                          for r in rows])
    cells = [(r["alpha"], r["beta"], r["gamma"], f"{r['constraint']:.4f}", r["resolution"], f"{r['params']:,}",
              f"{r['macs']:,}") for r in rows]
    note = (f"{len(rows)} candidates with α·β²·γ² within 2 ± 0.1 on a 0.05 grid, at φ = 1, sorted by MACs. The paper "
            "picks among them by ImageNet accuracy, which needs training each network: out of scope for archlab.\n")
    if fmt == "md":
        return md_table(SEARCH_HEADERS, cells, "rrrrrrr") + "\n" + note
    return text_table(SEARCH_HEADERS, cells, "rrrrrrr") + note
