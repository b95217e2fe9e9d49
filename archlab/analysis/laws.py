"""The course's closed-form cost laws, each computed two ways: by its formula and by counting
the real network (or real layers), side by side.

* Depthwise-separable vs standard convolution (the course, after Howard et al. 2017):
  multiplications D_K²·M·D_G²·N vs D_G²·M·(D_K² + N), parameters D_K²·M·N vs M·(D_K² + N),
  ratio 1/N + 1/D_K².
* MobileNet's width multiplier α and resolution multiplier ρ: cost ∝ α²ρ², params ≈ α².
* EfficientNet's compound scaling: d = α^φ, w = β^φ, r = γ^φ, cost × (α·β²·γ²)^φ.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from archlab.errors import UserError, first_line

# --- depthwise-separable convolution -------------------------------------------------------


@dataclass(frozen=True)
class DwscResult:
    k: int
    m: int
    n: int
    size: int
    stride: int
    padding: tuple[int, int]  # zeros added before (left/top) and after (right/bottom): k - 1 in all
    out_size: int  # D_G: the side of the output feature map
    standard_macs: int  # counted on a real nn.Conv2d
    separable_macs: int  # counted on real depthwise + pointwise nn.Conv2d layers
    standard_params: int
    separable_params: int
    formula_standard_macs: int
    formula_separable_macs: int
    formula_standard_params: int
    formula_separable_params: int

    @property
    def ratio(self) -> float:
        return self.separable_macs / self.standard_macs

    @property
    def params_ratio(self) -> float:
        return self.separable_params / self.standard_params

    @property
    def formula_ratio(self) -> float:
        return 1 / self.n + 1 / self.k**2

    @property
    def agrees(self) -> bool:
        return (self.standard_macs, self.separable_macs, self.standard_params, self.separable_params) == (
            self.formula_standard_macs, self.formula_separable_macs, self.formula_standard_params,
            self.formula_separable_params)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["padding"] = list(self.padding)
        d.update(ratio=self.ratio, params_ratio=self.params_ratio, formula_ratio=self.formula_ratio,
                 formula_agrees_with_count=self.agrees,
                 units={"macs": "multiply-accumulates (the course's 'multiplications')", "params": "weights, no bias",
                        "size": "pixels", "out_size": "pixels", "padding": "pixels of zeros before, after"})
        return d


def _positive(name: str, value: int, minimum: int = 1) -> int:
    if not isinstance(value, int) or value < minimum:
        raise UserError(f"--{name} must be an integer >= {minimum}, got {value}")
    return value


# A tensor on the meta device still computes its storage size, numel x 4 bytes at fp32, as an int64.
MAX_ELEMENTS = (2**63 - 1) // 4


def same_padding(k: int) -> tuple[int, int]:
    """'same' padding for kernel k at stride 1: k - 1 zeros, (k-1)//2 before and k//2 after
    (symmetric, k//2 each side, for an odd kernel; one more after for an even one, as
    TensorFlow's 'SAME' does). The output side is then ceil(size / stride)."""
    return (k - 1) // 2, k // 2


def dwsc_layers(k: int, m: int, n: int, stride: int = 1) -> dict[str, Any]:
    """The real layers of the law, on the meta device, without bias: ``standard`` (a k×k
    convolution from M to N maps), ``depthwise`` (k×k, one filter per input map), ``pointwise``
    (1×1, M to N) and ``separable`` (depthwise then pointwise), each with 'same' padding
    (``same_padding``: an even kernel is padded asymmetrically by an nn.ZeroPad2d, since nn.Conv2d
    pads symmetrically only) and ``stride`` on the k×k convolution. ``archlab dwsc`` and the
    ``dwsc`` quantity of ``archlab verify`` count these same layers."""
    import torch
    from torch import nn

    before, after = same_padding(k)

    def conv(c_in: int, c_out: int, groups: int = 1) -> list[nn.Module]:
        if k > 1 and before != after:
            return [nn.ZeroPad2d((before, after, before, after)),
                    nn.Conv2d(c_in, c_out, k, stride, 0, groups=groups, bias=False)]
        return [nn.Conv2d(c_in, c_out, k, stride, before, groups=groups, bias=False)]

    with torch.device("meta"):
        depthwise = nn.Sequential(*conv(m, m, groups=m))
        pointwise = nn.Conv2d(m, n, 1, bias=False)
        return {"standard": nn.Sequential(*conv(m, n)), "depthwise": depthwise, "pointwise": pointwise,
                "separable": nn.Sequential(depthwise, pointwise)}


# The defaults of ``dwsc()`` and of ``archlab dwsc``: the course's example layer.
DWSC_DEFAULTS = {"k": 3, "m": 512, "n": 1024, "size": 14, "stride": 1}


def dwsc(k: int = 3, m: int = 512, n: int = 1024, size: int = 14, stride: int = 1) -> DwscResult:
    """Standard vs depthwise-separable convolution of an M-channel size×size map to N channels
    (defaults: the course's example, D_K = 3, M = 512, N = 1024, 14x14, as ``archlab dwsc``),
    kernel k, 'same' padding (see ``same_padding``: an even kernel is padded asymmetrically by an
    nn.ZeroPad2d, so the map keeps its side), with ``stride``; D_G = ceil(size / stride) is the
    output side."""
    from archlab.analysis.count import count_model

    for name, value in (("k", k), ("m", m), ("n", n), ("size", size), ("stride", stride)):
        _positive(name, value)
        if value > MAX_ELEMENTS:
            raise UserError(f"--{name} must be at most 2^61 - 1 (what a tensor can hold at fp32), got {value}")
    before, after = same_padding(k)
    out = (size + before + after - k) // stride + 1  # = ceil(size / stride) >= 1
    tensors = (("standard weight N x M x D_K x D_K", n * m * k * k), ("input M x size x size", m * size * size),
               ("padded input M x (size + D_K - 1)^2", m * (size + k - 1)**2), ("output N x D_G x D_G", n * out * out))
    for what, numel in tensors:
        if numel > MAX_ELEMENTS:
            shown = f"{numel:,}" if numel < 10**24 else f"{numel:.3e}"
            raise UserError(f"the layer is too large to build: its {what} is {shown}, more than a tensor can "
                            f"hold (2^61 - 1 elements at fp32); lower --k, --m, --n or --size")

    try:
        layers = dwsc_layers(k, m, n, stride)
    except (RuntimeError, OverflowError, TypeError, ValueError) as e:
        raise UserError(f"cannot build a {k}x{k} convolution from {m} to {n} channels: "
                        f"{first_line(e)}") from None
    s = count_model(layers["standard"], input_size=(m, size, size), depth=0)
    d = count_model(layers["separable"], input_size=(m, size, size), depth=0)
    g2 = out * out
    return DwscResult(
        k, m, n, size, stride, (before, after), out, s.macs, d.macs, s.params, d.params,
        formula_standard_macs=k * k * m * g2 * n, formula_separable_macs=g2 * m * (k * k + n),
        formula_standard_params=k * k * m * n, formula_separable_params=m * (k * k + n),
    )


def parse_sweep(text: str) -> tuple[str, list[int]]:
    """``n=64..2048`` (doubling) or ``n=64,128,1024`` -> ("n", [values])."""
    key, sep, rest = str(text).partition("=")
    key = key.strip().lower()
    if not sep or key not in ("k", "m", "n", "size", "stride"):
        raise UserError(f"--sweep expects KEY=A..B or KEY=A,B,C with KEY one of k, m, n, size, stride; got '{text}'")
    try:
        if ".." in rest:
            lo, hi = (int(x) for x in rest.split(".."))
            if lo < 1 or hi < lo:
                raise ValueError
            values = []
            v = lo
            while v <= hi:
                values.append(v)
                v *= 2
        else:
            values = [int(x) for x in rest.split(",")]
    except ValueError:
        raise UserError(f"--sweep expects KEY=A..B (doubling from A to B) or KEY=A,B,C; got '{text}'") from None
    if not values or len(values) > 64:
        raise UserError(f"--sweep gives {len(values)} values; between 1 and 64 are allowed")
    return key, values


# --- width and resolution multipliers ------------------------------------------------------


@dataclass(frozen=True)
class ScalingComparison:
    model: str  # the baseline's spec: the model at alpha = 1, default resolution, the spec's other options
    alpha: float
    resolution: int  # pixels: the variant's input side
    default_resolution: int  # pixels: the baseline's input side (the model's default)
    rho: float  # resolution / default_resolution: the effective multiplier
    baseline: dict[str, Any]
    variant: dict[str, Any]
    predicted: dict[str, float]
    measured: dict[str, float]
    course: dict[str, Any] | None = None
    rho_requested: float | None = None  # --rho as given, when rounding to whole pixels changed it
    # why the measured ratios depart from the laws: per quantity ("params", "macs"), the causes
    # (``law_causes``), each with its share of the departure in points of the predicted value
    causes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # measured by ``with_latency``: baseline_ms, variant_ms, ratio (variant / baseline), device, batch, statistic
    latency: dict[str, Any] | None = None

    @property
    def params_law_error_percent(self) -> float:
        return 100 * (self.measured["params_ratio"] - self.predicted["params_ratio"]) / self.predicted["params_ratio"]

    @property
    def macs_law_error_percent(self) -> float:
        return 100 * (self.measured["macs_ratio"] - self.predicted["macs_ratio"]) / self.predicted["macs_ratio"]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["params_law_error_percent"] = self.params_law_error_percent
        d["macs_law_error_percent"] = self.macs_law_error_percent
        d["laws"] = {"macs_ratio": "alpha^2 * rho^2 (the course's O(alpha^2 rho^2))", "params_ratio": "alpha^2"}
        d["units"] = {"resolution": "pixels", "default_resolution": "pixels", "params": "weights",
                      "macs": "multiply-accumulates, batch 1"}
        if self.latency is None:
            del d["latency"]
        else:
            d["units"]["latency"] = {"baseline_ms": "milliseconds", "variant_ms": "milliseconds",
                                     "ratio": "variant / baseline latency"}
        return d


def parse_rho(value: str | float, base: int) -> tuple[int, float]:
    """--rho: an integer > 1 is a resolution in pixels; a number in (0, 1] a multiplier of the
    default resolution ``base``, rounded to whole pixels (at least 1). Returns the resolution and
    the effective ρ = resolution / base, which differs from a multiplier that does not land on a
    whole pixel."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise UserError(f"--rho must be a resolution in pixels (an integer > 1) or a multiplier in (0, 1], "
                        f"got '{value}'") from None
    if not math.isfinite(x) or x <= 0:
        raise UserError(f"--rho must be greater than 0, got {value}")
    if x <= 1:
        res = max(1, round(base * x))
        return res, res / base
    if not x.is_integer():
        raise UserError(f"--rho above 1 is a resolution in pixels and must be an integer, got {value}")
    return int(x), int(x) / base


def compare_scaling(model: str, alpha: float | None = None, rho: str | float | None = None,
                    course_lookup: Callable[[str, float, int], dict[str, Any] | None] | None = None,
                    ) -> ScalingComparison:
    """A width/resolution variant of ``model`` against its baseline.

    The baseline is the model at α = 1 and its default resolution, with the spec's other
    options (``num_classes`` ...) kept. The variant takes α from the spec's ``alpha=`` or from
    ``alpha`` (else 1), and its resolution from the spec's ``res=`` or from ``rho`` (else the
    default); a value given both ways is refused. ρ = the variant's resolution / the default one.
    """
    from archlab.analysis.costs import unsupported_json
    from archlab.analysis.count import count_trace
    from archlab.models.resolve import resolve
    from archlab.spec import Inputs, ModelSpec, parse_spec
    from archlab.trace.run import build, trace_built

    spec = parse_spec(model)
    if spec.input_size is not None:
        raise UserError(f"'{model}': the alpha/rho comparison sets the resolution with res=N in the spec or "
                        "--rho, not input=")
    if spec.batch is not None:
        raise UserError(f"'{model}': the alpha/rho comparison is per image (batch 1); drop batch={spec.batch}")
    full = resolve(spec)  # checks the spec's options and types them
    info = full.info
    widths = "alpha" in info.options and info.family != "efficientnet"
    if not widths and (alpha is not None or "alpha" in spec.options):
        raise UserError(f"model '{info.name}' has no width multiplier: --alpha (alpha=) is for mobilenet and "
                        "mobilenet_v2; --rho (res=) works for any CNN")
    if "alpha" in full.options and alpha is not None and full.options["alpha"] != alpha:  # the same value is fine
        raise UserError(f"alpha is given twice with different values: alpha={spec.options['alpha']} in '{model}' and "
                        f"--alpha {alpha:g}; give it once")
    alpha = full.options.get("alpha", alpha if alpha is not None else 1.0)
    if not (isinstance(alpha, (int, float)) and 0 < alpha <= 4):
        raise UserError(f"alpha must be in (0, 4], got {alpha:g}" if isinstance(alpha, (int, float))
                        else f"alpha must be in (0, 4], got {alpha}")
    others = {k: v for k, v in spec.options.items() if k != "alpha"}
    base_options = {} if not widths or info.options["alpha"] == 1 else {"alpha": 1.0}
    base_spec = ModelSpec(info.name, {**others, **base_options})
    base = resolve(base_spec)
    res0 = base.input_shape[-1]
    rho_requested = None
    if spec.res is not None:
        res = spec.res
        if rho is not None and parse_rho(rho, res0)[0] != res:  # --rho naming the same resolution is fine
            raise UserError(f"the resolution is given twice with different values: res={spec.res} in '{model}' and "
                            f"--rho {rho}; give it once")
    elif rho is not None:
        res, _ = parse_rho(rho, res0)
        x = float(rho)
        if x <= 1 and x != res / res0:
            rho_requested = x
    else:
        res = res0
    rho_mult = res / res0
    base_built = build(base_spec, Inputs())
    base_trace = trace_built(base_built)
    b = count_trace(base_trace, base_built.label, depth=0)
    variant_alpha = alpha if widths else None
    try:
        var_built = build(ModelSpec(info.name, others), Inputs(), alpha=variant_alpha, res=res)
        var_trace = trace_built(var_built)
    except UserError as e:
        raise UserError(f"the variant at α = {alpha:g}, {res} px cannot be counted: {e}") from None
    v = count_trace(var_trace, var_built.label, depth=0)
    causes = {"macs": mac_law_causes(base_trace, var_trace, alpha, rho_mult),
              "params": param_law_causes(base_built.module, var_built.module, alpha)}

    def side(r) -> dict[str, Any]:
        return {"model": r.model, "params": r.params, "macs": r.macs, "status": r.status,
                "unsupported_ops": unsupported_json(r.unsupported_ops)}

    predicted = {"macs_ratio": alpha**2 * rho_mult**2, "params_ratio": alpha**2}
    measured = {"macs_ratio": v.macs / b.macs, "params_ratio": v.params / b.params}
    typed_others = {k: full.options[k] for k in others}
    defaults = all(info.options.get(k) == val for k, val in typed_others.items())
    course = course_lookup(info.name, alpha, res) if course_lookup and defaults else None
    return ScalingComparison(
        model=b.model, alpha=alpha, resolution=res, default_resolution=res0, rho=rho_mult,
        baseline=side(b), variant=side(v),
        predicted=predicted, measured=measured, course=course, rho_requested=rho_requested, causes=causes,
    )


# --- why a measured ratio departs from α²ρ² (or α²) ---------------------------------------------
# cause -> what it says; the shares are exact: a layer of baseline cost b whose variant costs
# b·c·s (c: its channel ratio, s: its spatial ratio) departs from b·α²ρ² by
# b·c·(s - ρ²) (resolution) + b·ρ²·(c - α²) (width), summed by cause over the layers
LAW_CAUSES = {
    "classifier_resolution": "the layers after global pooling (the classifier, gates) do not scale with ρ²",
    "map_rounding": "feature-map sides are rounded at each stride (and never fall below 1 px)",
    "depthwise_width": "the depthwise layers cost ∝ α, not α²",
    "first_conv_width": "the first convolution reads the image's channels, whatever α: ∝ α",
    "classifier_width": "the classifier's outputs do not scale: ∝ α",
    "channel_rounding": "channel counts are rounded (or kept) away from α × the baseline's",
    "depthwise_params": "depthwise filters ∝ α, not α²",
    "first_conv_params": "the first convolution's filters read the image's channels: ∝ α",
    "classifier_params": "the classifier's weights ∝ α (its outputs do not scale)",
    "vector_params": "biases and batch-norm scales ∝ α",
    "graph_differs": "the variant's layers do not match the baseline's one for one: no split by cause",
}


def _causes(terms: dict[str, float], predicted: float) -> list[dict[str, Any]]:
    """Causes by decreasing share, in percentage points of the predicted value."""
    out = [{"cause": k, "text": LAW_CAUSES[k], "amount": v, "points": 100 * v / predicted}
           for k, v in terms.items() if predicted and abs(v) > 1e-9 * max(predicted, 1)]
    return sorted(out, key=lambda c: -abs(c["points"]))


def mac_law_causes(base: Any, variant: Any, alpha: float, rho: float) -> list[dict[str, Any]]:
    """The departure of the variant's MACs from α²ρ² × the baseline's, split by cause (traces of
    the same network at two widths or resolutions: their MAC-bearing ops match one for one)."""
    from archlab.analysis.costs import OpCosts
    from archlab.analysis.ops import ConvShape  # here, as OpCosts: the CLI reads this module without torch

    def mac_ops(trace):
        costs = OpCosts(trace)
        return [(op, m) for op, m in zip(trace.ops, costs.macs) if m], costs.total_macs

    (b_ops, b_total), (v_ops, v_total) = mac_ops(base), mac_ops(variant)
    predicted = b_total * alpha**2 * rho**2
    if len(b_ops) != len(v_ops) or any(ob.name != ov.name for (ob, _), (ov, _) in zip(b_ops, v_ops)):
        return _causes({"graph_differs": v_total - predicted}, predicted)
    terms = dict.fromkeys(("classifier_resolution", "map_rounding", "depthwise_width", "first_conv_width",
                           "classifier_width", "channel_rounding"), 0.0)
    for (ob, mb), (ov, mv) in zip(b_ops, v_ops):
        conv = ob.name == "convolution"
        sb, sv = (base.values[ob.outputs[0]].shape, variant.values[ov.outputs[0]].shape)
        if conv:
            spatial = math.prod(sv[2:]) / math.prod(sb[2:])
        else:  # linear, matmul: the positions are every dimension but the features (the last)
            spatial = (math.prod(sv[:-1]) / math.prod(sb[:-1])) if len(sb) > 1 else 1.0
        chan = mv / mb / spatial
        # a conv on 1x1 maps in the baseline runs after global pooling (a gate, a conv classifier)
        where = "map_rounding" if conv and math.prod(sb[2:]) > 1 else "classifier_resolution"
        terms[where] += mb * chan * (spatial - rho**2)
        if not conv:
            kind = "classifier_width"
        elif ConvShape.of_op(ob, base).per_channel:
            kind = "depthwise_width"
        elif ob.inputs[0] in base.inputs:
            kind = "first_conv_width"
        else:
            kind = "channel_rounding"
        terms[kind] += mb * rho**2 * (chan - alpha**2)
    return _causes(terms, predicted)


def param_law_causes(base: Any, variant: Any, alpha: float) -> list[dict[str, Any]]:
    """The departure of the variant's parameters from α² × the baseline's, split by cause (two
    builds of one network, matched by parameter name)."""
    b = dict(base.named_parameters())
    v = dict(variant.named_parameters())
    b_total, v_total = sum(p.numel() for p in b.values()), sum(p.numel() for p in v.values())
    predicted = b_total * alpha**2
    if b.keys() != v.keys():
        return _causes({"graph_differs": v_total - predicted}, predicted)
    terms = dict.fromkeys(("depthwise_params", "first_conv_params", "classifier_params", "vector_params",
                           "channel_rounding"), 0.0)
    image_channels = next((p.shape[1] for p in b.values() if p.dim() == 4), None)
    first = next((n for n, p in b.items() if p.dim() == 4), None)
    for name, pb in b.items():
        pv = v[name]
        if pb.dim() <= 1:
            kind = "vector_params"
        elif pb.dim() == 2:
            kind = "classifier_params"
        elif name == first and pb.shape[1] == pv.shape[1] == image_channels:
            kind = "first_conv_params"
        elif pb.dim() == 4 and pb.shape[1] == pv.shape[1] == 1:
            kind = "depthwise_params"
        else:
            kind = "channel_rounding"
        terms[kind] += pv.numel() - pb.numel() * alpha**2
    return _causes(terms, predicted)


def course_mobilenet_row(model: str, alpha: float, resolution: int) -> dict[str, Any] | None:
    """The course's MobileNet width/resolution table entry for this variant, when it has one
    (the numbers live in archlab/data, where `archlab verify` checks them)."""
    from archlab.models.course import course_value

    return course_value(model, alpha, resolution)


# --- compound scaling ------------------------------------------------------------------------


@dataclass(frozen=True)
class CompoundResult:
    phi: float
    alpha: float
    beta: float
    gamma: float
    depth: float
    width: float
    resolution_multiplier: float
    resolution: int
    constraint: float  # alpha * beta^2 * gamma^2
    stages: list[dict[str, Any]]
    params: int
    macs: int
    b0_params: int
    b0_macs: int
    official: dict[str, Any] | None = None
    curve: list[dict[str, Any]] = field(default_factory=list)
    # with the curve: the official EfficientNet-B0..B7 as built (params, MACs), for the plot
    official_curve: list[dict[str, Any]] = field(default_factory=list)

    @property
    def predicted_cost_ratio(self) -> float:
        return self.constraint**self.phi

    @property
    def measured_cost_ratio(self) -> float:
        return self.macs / self.b0_macs

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(predicted_cost_ratio=self.predicted_cost_ratio, measured_cost_ratio=self.measured_cost_ratio,
                 units={"macs": "multiply-accumulates at the scaled resolution, batch 1"})
        return d


def _stage_table(spec: str) -> tuple[list[dict[str, Any]], int, int]:
    """Stage rows (operator, input resolution, channels, layers) read from the built network."""
    from archlab.analysis.count import count_trace
    from archlab.trace.run import trace_model
    from archlab.models.efficientnet import EFFICIENTNET_B0_TABLE1

    trace, label = trace_model(spec)
    c = count_trace(trace, label, depth=0)
    stages = []
    for i, row in enumerate(EFFICIENTNET_B0_TABLE1, start=1):
        call = next((x for x in trace.calls if x.name == f"features.stage{i}"), None)
        if call is None:
            continue
        in_shape = trace.values[call.inputs[0]].shape
        out_shape = trace.values[call.outputs[0]].shape
        blocks = sum(1 for x in trace.calls if x.parent == call.index)
        stages.append({"stage": i, "operator": row.operator, "resolution": f"{in_shape[-2]}x{in_shape[-1]}",
                       "channels": out_shape[1], "layers": blocks if i not in (1, 9) else 1})
    return stages, c.params, c.macs


def compound(phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15,
             curve: bool = False) -> CompoundResult:
    from archlab.models.efficientnet import EFFICIENTNET_COEFFICIENTS, compound_coefficients, compound_resolution

    d, w, r = compound_coefficients(phi, alpha, beta, gamma)
    spec = f"efficientnet_phi@phi={phi},alpha={alpha},beta={beta},gamma={gamma}"
    stages, params, macs = _stage_table(spec)
    _, b0_params, b0_macs = _stage_table("efficientnet_phi@phi=0")
    official = None
    if float(phi).is_integer() and 0 <= phi <= 7:
        key = f"b{int(phi)}"
        o_stages, o_params, o_macs = _stage_table(f"efficientnet_{key}")
        coef = EFFICIENTNET_COEFFICIENTS[key]
        official = {"model": f"efficientnet_{key}", "width": coef.width, "depth": coef.depth,
                    "resolution": coef.resolution, "params": o_params, "macs": o_macs,
                    "params_diff_percent": 100 * (params - o_params) / o_params,
                    "macs_diff_percent": 100 * (macs - o_macs) / o_macs}
    points = []
    official_points = []
    if curve:
        for p in range(8):
            _, pp, pm = _stage_table(f"efficientnet_phi@phi={p},alpha={alpha},beta={beta},gamma={gamma}")
            points.append({"phi": p, "params": pp, "macs": pm, "predicted_cost_ratio": (alpha * beta**2 * gamma**2)**p,
                           "measured_cost_ratio": pm / b0_macs})
            _, op, om = _stage_table(f"efficientnet_b{p}")
            official_points.append({"model": f"efficientnet_b{p}", "phi": p, "params": op, "macs": om})
    return CompoundResult(phi, alpha, beta, gamma, d, w, r, compound_resolution(phi, alpha, beta, gamma),
                          alpha * beta**2 * gamma**2, stages, params, macs, b0_params, b0_macs, official, points,
                          official_points)


# the (α, β, γ) the paper's grid search picked at φ = 1 (Tan & Le 2019, Section 3.3, step 1)
PAPER_COEFFICIENTS = (1.2, 1.1, 1.15)


def grid_search(step: float = 0.05, target: float = 2.0, tolerance: float = 0.1,
                limits: tuple[float, float, float] = (2.0, 1.5, 1.5),
                progress: Callable[[float, float | None, str], None] | None = None) -> list[dict[str, Any]]:
    """The paper's step 1 as a cost study: every (α, β, γ) on a grid with α·β²·γ² within
    target ± tolerance, with its network's params and MACs at φ = 1. (Choosing among them needs
    the accuracy of each trained network, which archlab does not train.) ``progress(done, total,
    what)`` is told before each network is counted (about 0.1 s each) and once at the end."""
    from archlab.analysis.count import count_model

    def axis(hi: float) -> list[float]:
        n = int(round((hi - 1.0) / step))
        return [round(1.0 + i * step, 4) for i in range(n + 1)]

    grid = [(a, b, g, a * b * b * g * g)
            for a, b, g in itertools.product(axis(limits[0]), axis(limits[1]), axis(limits[2]))]
    grid = [p for p in grid if abs(p[3] - target) <= tolerance]
    rows = []
    for i, (a, b, g, c) in enumerate(grid):
        if progress is not None:
            progress(i, len(grid), f"counting α = {a:g}, β = {b:g}, γ = {g:g}")
        r = count_model(f"efficientnet_phi@phi=1,alpha={a},beta={b},gamma={g}", depth=0)
        rows.append({"alpha": a, "beta": b, "gamma": g, "constraint": c, "resolution": r.input_shape[-1],
                     "params": r.params, "macs": r.macs, "paper": (a, b, g) == PAPER_COEFFICIENTS})
    if progress is not None:
        progress(len(grid), len(grid), "done")
    rows.sort(key=lambda x: x["macs"])
    return rows
