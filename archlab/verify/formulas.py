"""Quantities from real layers counted by archlab and from stated formulas: standard vs
depthwise-separable convolution, EfficientNet's compound rule, ratios, arithmetic evidence."""

from __future__ import annotations

from archlab.analysis.count import count_model
from archlab.analysis.laws import dwsc_layers
from archlab.errors import UserError
from archlab.verify.quantities import Context, evaluate, quantity


_DWSC_LAYERS = ("standard", "depthwise", "pointwise", "separable")


@quantity()
def dwsc(ctx: Context, *, layer: str, count: str, vars: dict) -> int:
    """MACs or params of real nn.Conv2d layers (no bias) counted by archlab: a standard DKxDK
    convolution from M to N maps, its depthwise part, its pointwise part, or both (separable), on
    a DGxDG map ('same' padding, stride 1). ``vars``: DK, M, N, DG, and optionally the width and
    resolution multipliers alpha (M, N -> alpha M, alpha N) and rho (DG -> rho DG)."""
    if layer not in _DWSC_LAYERS or count not in ("macs", "params"):
        raise UserError(f"dwsc needs layer in {', '.join(_DWSC_LAYERS)} and count macs or params")
    k, m, n, g = _dwsc_sizes(vars)
    # the layers archlab dwsc counts (the docstring above is printed in verify's md report)
    result = count_model(dwsc_layers(k, m, n)[layer], input_size=(m, g, g), depth=0)
    return result.macs if count == "macs" else result.params


def _dwsc_sizes(vars: dict) -> tuple[int, int, int, int]:
    missing = [k for k in ("DK", "M", "N", "DG") if k not in vars]
    if missing:
        raise UserError(f"dwsc needs vars {', '.join(missing)}")
    alpha, rho = vars.get("alpha", 1), vars.get("rho", 1)
    sizes = (vars["DK"], alpha * vars["M"], alpha * vars["N"], rho * vars["DG"])
    if not all(float(s).is_integer() and s >= 1 for s in sizes):
        raise UserError(f"dwsc sizes must be positive integers after alpha and rho, got {sizes}")
    return tuple(int(s) for s in sizes)


@quantity()
def dwsc_ratio(ctx: Context, *, count: str, vars: dict) -> float:
    """Depthwise-separable over standard convolution, MACs or params, both counted on real layers."""
    sep = dwsc(ctx, layer="separable", count=count, vars=vars)
    return sep / dwsc(ctx, layer="standard", count=count, vars=vars)


_COMPOUND = ("depth", "width", "resolution", "cost")


@quantity()
def compound(ctx: Context, *, phi: float, which: str) -> float:
    """EfficientNet's compound scaling as archlab's builder computes it (its alpha, beta, gamma):
    depth d = alpha^phi, width w = beta^phi, resolution r = gamma^phi, cost d * w^2 * r^2."""
    from archlab.models.efficientnet import compound_coefficients

    if which not in _COMPOUND:
        raise UserError(f"compound 'which' must be one of {', '.join(_COMPOUND)}, got '{which}'")
    d, w, r = compound_coefficients(phi)
    return {"depth": d, "width": w, "resolution": r, "cost": d * w * w * r * r}[which]


@quantity()
def ratio(ctx: Context, *, of: dict, to: dict) -> float:
    """One computed quantity divided by another (each a table with its own 'quantity')."""
    num, den = ctx.compute(of), ctx.compute(to)
    if not den:
        raise UserError("ratio: the denominator is zero")
    return num / den


@quantity()
def formula(ctx: Context, *, expr: str, vars: dict) -> float:
    """A stated formula evaluated (for evidence: e.g. what a printed value would imply)."""
    return evaluate(expr, vars)
