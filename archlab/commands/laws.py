"""``archlab dwsc``, ``archlab compare``, ``archlab efficientnet``: the course's cost laws,
by formula and by counting the real network, side by side."""

from __future__ import annotations

import math
from typing import List, Optional

import typer

from archlab.cli import FORMAT, OUTPUT, Format, _emit, _settle, app
from archlab.errors import UserError
from archlab.laws import DWSC_DEFAULTS  # light: archlab.laws imports torch only when it counts


@app.command("dwsc")
def dwsc_cmd(
    k: int = typer.Option(DWSC_DEFAULTS["k"], "--k", help="Kernel size D_K."),
    m: int = typer.Option(DWSC_DEFAULTS["m"], "--m", help="Input channels M."),
    n: int = typer.Option(DWSC_DEFAULTS["n"], "--n", help="Output channels N."),
    size: int = typer.Option(DWSC_DEFAULTS["size"], "--size", help="Side of the input feature map (D_G at stride 1: "
                             "'same' padding, asymmetric for an even kernel)."),
    stride: int = typer.Option(DWSC_DEFAULTS["stride"], "--stride", help="Stride of the convolution."),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="KEY=A..B (doubling) or KEY=A,B,C, e.g. n=64..2048."),
    fmt: Format = FORMAT,
    output: Optional[str] = OUTPUT,
) -> None:
    """Standard vs depthwise-separable convolution: the course's formulas beside real layers counted."""
    from archlab import laws
    from archlab.report import laws_report

    _settle()
    if sweep:
        key, values = laws.parse_sweep(sweep)
        base = {"k": k, "m": m, "n": n, "size": size, "stride": stride}
        results = [laws.dwsc(**{**base, key: v}) for v in values]
        _emit(laws_report.render_sweep(key, results, fmt.value), output)
    else:
        _emit(laws_report.render_dwsc(laws.dwsc(k, m, n, size, stride), fmt.value), output)


@app.command("compare")
def compare_cmd(
    models: List[str] = typer.Argument(..., help="Model specs; one model with --alpha/--rho (or alpha=/res= in its "
                                       "spec) compares a variant with its baseline."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Width multiplier of the variant (one model); or "
                                          "alpha= in the spec, not both."),
    rho: Optional[str] = typer.Option(None, "--rho", help="Resolution in pixels (> 1) or multiplier in (0, 1] of the "
                                      "default resolution; or res= in the spec, not both."),
    latency: bool = typer.Option(False, "--latency", help="Also measure latency (CPU, batch 1)."),
    min_time: Optional[float] = typer.Option(None, "--min-time", help="With --latency: seconds of timed forwards per "
                                             "model (default 1)."),
    fmt: Format = FORMAT,
    output: Optional[str] = OUTPUT,
) -> None:
    """Compare a width/resolution variant with its baseline, or several models side by side.

    One model: the baseline is the model at alpha = 1 and its default resolution (the spec's other
    options kept); the variant takes alpha from alpha= in the spec or --alpha, and its resolution from
    res= in the spec or --rho."""
    from archlab import laws
    from archlab.report import laws_report
    from archlab.spec import parse_spec

    _settle()
    if min_time is not None:
        if not (min_time > 0 and math.isfinite(min_time)):
            raise UserError(f"--min-time must be a positive number of seconds, got {min_time}")
        if not latency:
            raise UserError("--min-time sets how long --latency times each model; add --latency or drop --min-time")
    min_time = 1.0 if min_time is None else min_time
    scaling = alpha is not None or rho is not None
    if len(models) == 1 and not scaling:
        spec = parse_spec(models[0])
        scaling = "alpha" in spec.options or spec.res is not None
    if scaling:
        if len(models) != 1:
            raise UserError("--alpha/--rho compare one model with its baseline; name exactly one model")
        c = laws.compare_scaling(models[0], alpha, rho, course_lookup=laws.course_mobilenet_row)
        if latency:  # in the data: JSON and CSV carry it as fields, table and md as a line
            c = laws.with_latency(c, min_time=min_time)
        _emit(laws_report.render_scaling(c, fmt.value), output)
        return
    if len(models) < 2:
        raise UserError("compare needs two or more models, or one model with --alpha or --rho (or alpha=/res= in "
                        "its spec)")
    rows = laws.compare_models(models, latency=latency, min_time=min_time)
    _emit(laws_report.render_compare(rows, fmt.value, latency=latency), output)


@app.command("efficientnet")
def efficientnet_cmd(
    phi: Optional[float] = typer.Option(None, "--phi", help="Compound coefficient φ (0 to 20; default 1)."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Depth base α (default 1.2)."),
    beta: Optional[float] = typer.Option(None, "--beta", help="Width base β (default 1.1)."),
    gamma: Optional[float] = typer.Option(None, "--gamma", help="Resolution base γ (default 1.15)."),
    search: bool = typer.Option(False, "--search", help="Grid-search α, β, γ (step 0.05) with α·β²·γ² ≈ 2, at φ = 1; "
                                "takes no --phi/--alpha/--beta/--gamma/--report."),
    report: Optional[str] = typer.Option(None, "--report", help="Write a report: md, json or html (to -o, default "
                                         "reports/efficientnet-phi{φ}.{ext}); takes no -f."),
    fmt: Optional[Format] = typer.Option(None, "--format", "-f", help="Output format (default table); not with "
                                         "--report, which names its own."),
    output: Optional[str] = OUTPUT,
) -> None:
    """EfficientNet's compound scaling: d = α^φ, w = β^φ, r = γ^φ, predicted vs measured cost."""
    from archlab import laws
    from archlab.report import laws_report

    _settle()
    if search:
        given = [flag for flag, value in (("--phi", phi), ("--alpha", alpha), ("--beta", beta), ("--gamma", gamma),
                                          ("--report", report)) if value is not None]
        if given:
            raise UserError(f"--search enumerates α, β, γ on a grid at φ = 1; it takes no {', '.join(given)}")
        _emit(laws_report.render_search(laws.grid_search(), (fmt or Format.table).value), output)
        return
    phi = 1.0 if phi is None else phi
    alpha = 1.2 if alpha is None else alpha
    beta = 1.1 if beta is None else beta
    gamma = 1.15 if gamma is None else gamma
    if report is not None:
        if report not in ("md", "json", "html"):
            raise UserError(f"unknown --report '{report}' (choose md, json or html)")
        if fmt is not None:
            raise UserError(f"--report {report} writes a {report} file; -f/--format is for the printed output "
                            "without --report")
        path = output or _default_report_path(f"efficientnet-phi{phi:g}.{report}")
        laws_report.check_report_path(report, path)  # before the counting, not after it
        result = laws.compound(phi, alpha, beta, gamma, curve=True)
        written = laws_report.write_report(result, report, path)
        print("wrote " + ", ".join(written))
        return
    _emit(laws_report.render_compound(laws.compound(phi, alpha, beta, gamma), (fmt or Format.table).value), output)


def _default_report_path(name: str) -> str:
    """reports/NAME, creating reports/ in the current directory when it is missing."""
    import os

    try:
        os.makedirs("reports", exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the folder 'reports' for the report: {e.strerror}; "
                        "use -o to choose where it goes") from None
    return os.path.join("reports", name)
