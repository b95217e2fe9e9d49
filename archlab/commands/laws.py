"""``archlab dwsc``, ``archlab compare``, ``archlab efficientnet``: the course's cost laws,
by formula and by counting the real network, side by side."""

from __future__ import annotations

from typing import List, Optional

import typer

from archlab.cli import FORMAT, OUTPUT, Format, _emit, _settle, app
from archlab.errors import UserError


@app.command("dwsc")
def dwsc_cmd(
    k: int = typer.Option(3, "--k", help="Kernel size D_K."),
    m: int = typer.Option(512, "--m", help="Input channels M."),
    n: int = typer.Option(1024, "--n", help="Output channels N."),
    size: int = typer.Option(14, "--size", help="Side of the input feature map (D_G at stride 1)."),
    stride: int = typer.Option(1, "--stride", help="Stride of the convolution."),
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
    models: List[str] = typer.Argument(..., help="Model specs; one model with --alpha/--rho compares a variant."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Width multiplier of the variant (one model)."),
    rho: Optional[str] = typer.Option(None, "--rho", help="Resolution in pixels (> 1) or multiplier in (0, 1]."),
    latency: bool = typer.Option(False, "--latency", help="Also measure latency (CPU, batch 1)."),
    min_time: float = typer.Option(1.0, "--min-time", help="With --latency: seconds of timed forwards per model."),
    fmt: Format = FORMAT,
    output: Optional[str] = OUTPUT,
) -> None:
    """Compare a width/resolution variant with its baseline, or several models side by side."""
    from archlab import laws
    from archlab.report import laws_report

    _settle()
    if alpha is not None or rho is not None:
        if len(models) != 1:
            raise UserError("--alpha/--rho compare one model with its baseline; name exactly one model")
        c = laws.compare_scaling(models[0], alpha if alpha is not None else 1.0, rho,
                                 course_lookup=laws.course_mobilenet_row)
        text = laws_report.render_scaling(c, fmt.value)
        if latency:
            text += _latency_note(c, min_time)
        _emit(text, output)
        return
    if len(models) < 2:
        raise UserError("compare needs two or more models, or one model with --alpha or --rho")
    rows = laws.compare_models(models, latency=latency, min_time=min_time)
    _emit(laws_report.render_compare(rows, fmt.value, latency=latency), output)


def _latency_note(c, min_time: float) -> str:
    from archlab.laws import latency_pair

    base, var = latency_pair(c.baseline["model"], c.variant["model"], min_time=min_time)
    return (f"latency (CPU, batch 1, median): baseline {base:.2f} ms, variant {var:.2f} ms, ratio {var / base:.3f} "
            f"(MACs ratio {c.measured['macs_ratio']:.3f})\n")


@app.command("efficientnet")
def efficientnet_cmd(
    phi: float = typer.Option(1.0, "--phi", help="Compound coefficient φ (0 to 20)."),
    alpha: float = typer.Option(1.2, "--alpha", help="Depth base α."),
    beta: float = typer.Option(1.1, "--beta", help="Width base β."),
    gamma: float = typer.Option(1.15, "--gamma", help="Resolution base γ."),
    search: bool = typer.Option(False, "--search", help="Grid-search α, β, γ (step 0.05) with α·β²·γ² ≈ 2."),
    report: Optional[str] = typer.Option(None, "--report", help="Write a report: md, json or html."),
    fmt: Format = FORMAT,
    output: Optional[str] = OUTPUT,
) -> None:
    """EfficientNet's compound scaling: d = α^φ, w = β^φ, r = γ^φ, predicted vs measured cost."""
    from archlab import laws
    from archlab.report import laws_report

    _settle()
    if search:
        _emit(laws_report.render_search(laws.grid_search(), fmt.value), output)
        return
    if report is not None:
        if report not in ("md", "json", "html"):
            raise UserError(f"unknown --report '{report}' (choose md, json or html)")
        result = laws.compound(phi, alpha, beta, gamma, curve=True)
        path = output or f"reports/efficientnet-phi{phi:g}.{report}"
        written = laws_report.write_report(result, report, path)
        print("wrote " + ", ".join(written))
        return
    _emit(laws_report.render_compound(laws.compound(phi, alpha, beta, gamma), fmt.value), output)
