"""``archlab verify``: every quantitative claim of the course's tables, recomputed.

The claims live in a data file (``archlab/data/course_claims.toml``), one ``[[claim]]`` per
number or shape the course prints: where it is, what it is about, the quantity that
recomputes it (a function registered below, reading a real model's meta trace or counting
real layers) and the value as printed. Nothing here knows the answers; the data file holds
the course's numbers and this module computes ours.

Tolerance follows the printing: a value printed with k decimals allows half a unit in its
last digit ("4.2" M: ±0.05 M); an integer count, a shape or a layer list must match exactly.
Trailing zeros of an integer are significant unless the course marks the value as approximate
("~140M": ±5 M).

Status of a row:

* ``ok``: within tolerance;
* ``known-discrepancy``: outside it, and the data file records the cause (an erratum, a
  rounding, a counting convention, a variant) with evidence: computations shown beside the
  row, some of which must reproduce the printed value (``reproduces``) or the row fails;
* ``FAIL``: anything else. A row recorded as a known discrepancy that now agrees is ``ok``,
  with a note saying the record is stale.
"""

from __future__ import annotations

import ast
import fnmatch
import inspect
import operator
import os
import re
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any, Callable

from archlab.errors import UserError

SCHEMA_VERSION = 1
DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "data", "course_claims.toml")
STATUSES = ("ok", "known-discrepancy", "FAIL")
CAUSES = {
    "erratum": "the printed value contradicts the source's own definition of the network",
    "rounded-down": "the printed value truncates the count instead of rounding it",
    "convention": "the printed value counts something else (a stated counting convention)",
    "variant": "the printed value is for another variant of the network",
    "idealisation": "the printed value is an idealised law; the built network departs from it as shown",
}
# unit -> (scale, suffix as printed). "Ki" is GoogLeNet's K = 1024.
UNITS = {"": (1, ""), "x": (1, "x"), "k": (1e3, "k"), "Ki": (1024, "K"), "M": (1e6, "M"), "G": (1e9, "G")}
ROW_FIELDS = {"id", "section", "where", "claim", "course", "value", "text", "unit", "approx", "course_formula", "vars",
              "status", "cause", "explanation", "evidence"}
EVIDENCE_FIELDS = {"label", "unit", "reproduces"}


class ClaimsFailed(UserError):
    """Some claims FAIL: one line on stderr and exit code 1 (the report is written first)."""

    exit_code = 1


# --- the computations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Quantity:
    name: str
    fn: Callable[..., Any]
    exact: bool  # an integer count, a shape or a string: compared exactly
    params: dict[str, inspect.Parameter]

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.fn) or ""


QUANTITIES: dict[str, Quantity] = {}


def quantity(exact: bool = False):
    """Register a computation: ``fn(ctx, *, arg=...)``; its keyword-only arguments are the
    keys a data row may give (those without default are required)."""

    def register(fn):
        params = {n: p for n, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY}
        QUANTITIES[fn.__name__] = Quantity(fn.__name__, fn, exact, params)
        return fn

    return register


class _Model:
    """One registered model, built on the meta device and traced once; module-level lookups."""

    def __init__(self, spec: str) -> None:
        import torch

        from archlab.analysis.counting import op_cost
        from archlab.analysis.trace import trace
        from archlab.api import resolve

        resolved = resolve(spec)
        self.spec = spec
        self.label = resolved.label
        self.input_shape = resolved.input_shape
        self.module = resolved.build(device="meta")
        self.trace = trace(self.module, torch.empty(resolved.input_shape, device="meta"))
        self.calls = {}
        for call in self.trace.calls:
            self.calls.setdefault(call.name, call)
        self.prefix = [0]
        self.weight_op = []  # ops of conv and linear layers (the papers' "weight layers")
        for op in self.trace.ops:
            kind, macs, _ = op_cost(op, self.trace)
            self.prefix.append(self.prefix[-1] + macs)
            self.weight_op.append(kind in ("conv", "linear") and macs > 0)
        self._rf = None

    def call(self, name: str):
        call = self.calls.get(name)
        if call is None or not name:
            raise UserError(f"{self.label} has no module '{name}' (see 'archlab trace {self.spec} --depth 4')")
        return call

    def submodule(self, name: str):
        self.call(name)
        return self.module.get_submodule(name)

    def macs_of(self, call) -> int:
        return self.prefix[call.end_op] - self.prefix[call.first_op]

    def shape(self, vid: int) -> tuple[int, ...]:
        return self.trace.values[vid].shape

    def children(self, call) -> list:
        return [c for c in self.trace.calls if c.parent == call.index]

    @property
    def rf(self):
        if self._rf is None:
            from archlab.analysis.receptive_field import receptive_fields

            self._rf = receptive_fields(self.trace)
        return self._rf


class Context:
    """Traces cached per model spec for one run (each model is traced once)."""

    def __init__(self) -> None:
        self._models: dict[str, _Model] = {}

    def model(self, spec: str) -> _Model:
        if spec not in self._models:
            self._models[spec] = _Model(spec)
        return self._models[spec]

    def compute(self, spec: dict[str, Any], vars: dict[str, Any] | None = None) -> Any:
        q = QUANTITIES[spec["quantity"]]
        kwargs = {k: v for k, v in spec.items() if k != "quantity"}
        if "vars" in q.params and "vars" not in kwargs:
            kwargs["vars"] = vars or {}
        return q.fn(self, **kwargs)


def _hwc(shape: tuple[int, ...], layout: str = "hwc") -> str:
    """An activation shape as the course prints it: H x W x C (a vector is 1 x 1 x C)."""
    if len(shape) == 4:
        _, c, h, w = shape
    elif len(shape) == 2:
        (_, c), h, w = shape, 1, 1
    else:
        return "x".join(map(str, shape))
    return {"hwc": f"{h}x{w}x{c}", "hw": f"{h}x{w}", "c": str(c)}[layout]


def _pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, tuple) else (v, v)


def _check_layout(layout: str) -> None:
    if layout not in ("hwc", "hw", "c"):
        raise UserError(f"layout must be hwc, hw or c, got '{layout}'")


@quantity()
def params(ctx: Context, *, model: str, modules: list = (), exclude_types: list = ()) -> int:
    """Parameters (weights, biases, batch-norm scale and shift) of the model or of ``modules``;
    ``exclude_types`` leaves out modules of those classes (e.g. BatchNorm2d)."""
    m = ctx.model(model)
    roots = [m.submodule(n) for n in modules] or [m.module]
    total = sum(p.numel() for r in roots for p in r.parameters())
    excluded = sum(p.numel() for r in roots for sub in r.modules() if type(sub).__name__ in exclude_types
                   for p in sub.parameters(recurse=False))
    return total - excluded


@quantity()
def weights(ctx: Context, *, model: str, modules: list = ()) -> int:
    """Weights of the convolution and linear layers of the model or of ``modules``; no biases."""
    from torch import nn

    m = ctx.model(model)
    roots = [m.submodule(n) for n in modules] or [m.module]
    return sum(sub.weight.numel() for r in roots for sub in r.modules()
               if isinstance(sub, (nn.modules.conv._ConvNd, nn.Linear)))


@quantity()
def macs(ctx: Context, *, model: str, modules: list = (), exclude: list = ()) -> int:
    """Multiply-accumulates (the papers' mult-adds) of the model or of ``modules``, leaving out the
    module calls whose names match the ``exclude`` globs (e.g. 'fc', '*.downsample')."""
    m = ctx.model(model)
    scope = [m.call(n) for n in modules] or [m.trace.calls[0]]
    total = sum(m.macs_of(c) for c in scope)
    taken: list[tuple[int, int]] = []
    for c in m.trace.calls:
        if c.depth == 0 or not any(fnmatch.fnmatchcase(c.name, p) for p in exclude):
            continue
        inside = any(s.first_op <= c.first_op and c.end_op <= s.end_op for s in scope)
        if inside and not any(a <= c.first_op and c.end_op <= b for a, b in taken):
            taken.append((c.first_op, c.end_op))
            total -= m.macs_of(c)
    return total


@quantity()
def neurons(ctx: Context, *, model: str, modules: list = ()) -> int:
    """Units of the network: output elements of every convolution and linear layer (of ``modules``)."""
    m = ctx.model(model)
    ops = _ops_in(m, modules)
    return sum(m.trace.values[op.outputs[0]].numel for op in ops if m.weight_op[op.index])


def _ops_in(m: _Model, modules) -> list:
    if not modules:
        return m.trace.ops
    ranges = [(c.first_op, c.end_op) for c in (m.call(n) for n in modules)]
    return [op for op in m.trace.ops if any(a <= op.index < b for a, b in ranges)]


@quantity(exact=True)
def weight_layers(ctx: Context, *, model: str, modules: list = ()) -> int:
    """Depth in weight layers: convolution and linear layers on the longest path of the data flow
    (a network's 'N layers'; within ``modules``, the course table's 'depth' column). Pooling and
    shortcuts add nothing; parallel branches count once."""
    m = ctx.model(model)
    depth: dict[int, int] = {}
    best = 0
    for op in _ops_in(m, modules):
        d = max((depth.get(v, 0) for v in op.inputs), default=0) + (1 if m.weight_op[op.index] else 0)
        for v in op.outputs:
            depth[v] = d
        best = max(best, d)
    return best


@quantity(exact=True)
def output_size(ctx: Context, *, model: str, module: str, layout: str = "hwc") -> str:
    """Output shape of a module as H x W x C (``layout`` hw: H x W; c: channels)."""
    _check_layout(layout)
    m = ctx.model(model)
    return _hwc(m.shape(m.call(module).outputs[0]), layout)


@quantity(exact=True)
def input_size(ctx: Context, *, model: str, module: str = "", layout: str = "hwc") -> str:
    """Input shape of a module (of the model when ``module`` is not given) as H x W x C."""
    _check_layout(layout)
    m = ctx.model(model)
    shape = m.shape(m.call(module).inputs[0]) if module else m.input_shape
    return _hwc(shape, layout)


@quantity(exact=True)
def patch(ctx: Context, *, model: str, module: str) -> str:
    """Patch size / stride of a convolution or pooling layer, as 'KxK/S'."""
    m = ctx.model(model)
    a = m.call(module).attrs
    if "kernel_size" not in a:
        raise UserError(f"module '{module}' of {m.label} has no kernel (not a convolution or pooling layer)")
    (kh, kw), (s, _) = _pair(a["kernel_size"]), _pair(a.get("stride", 1))
    return f"{kh}x{kw}/{s}"


@quantity(exact=True)
def channels(ctx: Context, *, model: str, module: str) -> int:
    """Output channels of a convolution (out features of a linear layer)."""
    m = ctx.model(model)
    a = m.call(module).attrs
    if "out_channels" in a:
        return a["out_channels"]
    if "out_features" in a:
        return a["out_features"]
    raise UserError(f"module '{module}' of {m.label} is not a convolution or linear layer")


def _conv_desc(call) -> tuple[int, int, int, int, int]:
    a = call.attrs
    (kh, kw), (s, _) = _pair(a["kernel_size"]), _pair(a.get("stride", 1))
    return kh, kw, s, a["out_channels"], a.get("groups", 1)


@quantity(exact=True)
def layer_list(ctx: Context, *, model: str, module: str) -> str:
    """A block's layers in the VGG paper's notation: 'conv<k>-<channels>', 'LRN', 'FC-<features>'."""
    m = ctx.model(model)
    out = []
    for c in m.children(m.call(module)):
        if c.type == "Conv2d":
            kh, _, _, cout, _ = _conv_desc(c)
            out.append(f"conv{kh}-{cout}")
        elif c.type == "Linear":
            out.append(f"FC-{c.attrs['out_features']}")
        elif c.type == "LocalResponseNorm":
            out.append("LRN")
    return " ".join(out)


@quantity(exact=True)
def layer_spec(ctx: Context, *, model: str, module: str) -> str:
    """One layer as the ResNet table writes it: 'KxK, C, stride S' or 'KxK max pool, stride S'."""
    m = ctx.model(model)
    c = m.call(module)
    if c.type == "Conv2d":
        kh, kw, s, cout, _ = _conv_desc(c)
        return f"{kh}x{kw}, {cout}, stride {s}"
    if c.type in ("MaxPool2d", "AvgPool2d"):
        (kh, kw), (s, _) = _pair(c.attrs["kernel_size"]), _pair(c.attrs.get("stride", 1))
        return f"{kh}x{kw} {'max' if c.type == 'MaxPool2d' else 'average'} pool, stride {s}"
    raise UserError(f"module '{module}' of {m.label} is {c.type}, not a convolution or pooling layer")


@quantity(exact=True)
def stage_blocks(ctx: Context, *, model: str, module: str) -> str:
    """A ResNet stage as its table cell: '[KxK, C; ...] xN', the main-branch convolutions of its
    blocks (shortcut projections left out) and the number of blocks."""
    m = ctx.model(model)
    cells = []
    for block in m.children(m.call(module)):
        convs = [c for c in m.children(block) if c.type == "Conv2d"]
        cells.append("[" + "; ".join(f"{kh}x{kw}, {cout}" for kh, kw, _, cout, _ in map(_conv_desc, convs)) + "]")
    distinct = list(dict.fromkeys(cells))
    return f"{distinct[0]} x{len(cells)}" if len(distinct) == 1 else " + ".join(distinct)


@quantity(exact=True)
def stacked_rf(ctx: Context, *, model: str, end: str, start: str = "") -> str:
    """Receptive field of the layers after ``start`` (the input when not given) up to ``end``, in
    units of ``start``'s feature map: (RF_end - RF_start) / jump_start + 1, as 'HxW'."""
    m = ctx.model(model)
    f_end = m.rf.of(m.call(end).outputs[0])
    f_start = m.rf.of(m.call(start).outputs[0]) if start else m.rf.of(m.trace.inputs[0])
    if f_end is None or f_start is None:
        raise UserError(f"no receptive field at '{end or start}' of {m.label}")
    size = [(f_end.rf[a] - f_start.rf[a]) / f_start.jump[a] + 1 for a in range(2)]
    return "x".join(str(int(s)) if float(s).is_integer() else f"{s:g}" for s in size)


_TABLE1_COLUMNS = ("type", "filter", "input")


def _table1_cells(m: _Model, call) -> dict[str, str]:
    """One layer as a row of MobileNet's Table 1: type / stride, filter shape, input size. A global
    average pool is a single window over the whole map; its stride is written s1, as the paper does."""
    in_shape = m.shape(call.inputs[0])
    if call.type == "Conv2d":
        kh, kw, s, cout, groups = _conv_desc(call)
        cin = call.attrs["in_channels"]
        dw = groups == cin == cout and groups > 1
        filt = f"{kh}x{kw}x{cin} dw" if dw else f"{kh}x{kw}x{cin // groups}x{cout}"
        return {"type": f"Conv{' dw' if dw else ''} / s{s}", "filter": filt, "input": _hwc(in_shape)}
    if call.type in ("AdaptiveAvgPool2d", "AvgPool2d"):
        out = m.shape(call.outputs[0])
        if call.type == "AdaptiveAvgPool2d" and out[-2:] != (1, 1):
            raise UserError(f"'{call.name}' is not a global pool")
        k = f"{in_shape[-2]}x{in_shape[-1]}" if call.type == "AdaptiveAvgPool2d" else \
            "x".join(map(str, _pair(call.attrs["kernel_size"])))
        return {"type": "Avg Pool / s1", "filter": f"Pool {k}", "input": _hwc(in_shape)}
    if call.type == "Linear":
        a = call.attrs
        return {"type": "FC / s1", "filter": f"{a['in_features']}x{a['out_features']}", "input": _hwc(in_shape)}
    raise UserError(f"'{call.name}' ({call.type}) is not a layer of MobileNet's Table 1")


@quantity(exact=True)
def table1_row(ctx: Context, *, model: str, modules: list, columns: list = _TABLE1_COLUMNS) -> str:
    """Layers as rows of MobileNet's Table 1, 'type / stride | filter shape | input size' (the
    ``columns`` asked for); identical repeated layers as one row prefixed 'Nx'."""
    m = ctx.model(model)
    bad = [c for c in columns if c not in _TABLE1_COLUMNS]
    if bad or not modules:
        raise UserError(f"table1_row needs modules and columns among {', '.join(_TABLE1_COLUMNS)}")
    rows = [" | ".join(_table1_cells(m, m.call(n))[c] for c in columns) for n in modules]
    distinct = list(dict.fromkeys(rows))
    if len(distinct) == 1:
        return distinct[0] if len(rows) == 1 else f"{len(rows)}x {distinct[0]}"
    return "; ".join(rows)


_STAGE_COLUMNS = ("operator", "resolution", "channels", "layers")


@quantity(exact=True)
def stage_row(ctx: Context, *, model: str, module: str, columns: list = _STAGE_COLUMNS) -> str:
    """A stage as a row of EfficientNet's Table 1, read from the built network: operator
    ('Conv3x3', 'MBConv6, k5x5': expansion = hidden / input channels, depthwise kernel),
    input resolution, output channels, number of layers."""
    m = ctx.model(model)
    call = m.call(module)
    kids = m.children(call)
    if call.type == "ConvBNAct":
        kh, kw, *_ = _conv_desc(next(c for c in kids if c.type == "Conv2d"))
        operator_ = f"Conv{kh}x{kw}"
        siblings = m.children(m.trace.calls[call.parent])
        tail = [c.type for c in m.trace.calls if c.first_op >= call.end_op]
        if siblings[-1] is call and "AdaptiveAvgPool2d" in tail and "Linear" in tail:
            operator_ += " & Pooling & FC"
        layers = 1
    else:
        first = kids[0]
        inner = {c.name.rsplit(".", 1)[-1]: c for c in m.children(first)}
        dw = next(c for c in m.children(inner["depthwise"]) if c.type == "Conv2d")
        kh, kw, *_ = _conv_desc(dw)
        expand = dw.attrs["out_channels"] // m.shape(first.inputs[0])[1]
        operator_ = f"MBConv{expand}, k{kh}x{kw}"
        layers = len(kids)
    cells = {"operator": operator_, "resolution": _hwc(m.shape(call.inputs[0]), "hw"),
             "channels": str(m.shape(call.outputs[0])[1]), "layers": str(layers)}
    if any(c not in _STAGE_COLUMNS for c in columns):
        raise UserError(f"stage_row columns must be among {', '.join(_STAGE_COLUMNS)}")
    return " | ".join(cells[c] for c in columns)


_DWSC_LAYERS = ("standard", "depthwise", "pointwise", "separable")


@quantity()
def dwsc(ctx: Context, *, layer: str, count: str, vars: dict) -> int:
    """MACs or params of real nn.Conv2d layers (no bias) counted by archlab: a standard DKxDK
    convolution from M to N maps, its depthwise part, its pointwise part, or both (separable), on
    a DGxDG map ('same' padding, stride 1). ``vars``: DK, M, N, DG, and optionally the width and
    resolution multipliers alpha (M, N -> alpha M, alpha N) and rho (DG -> rho DG)."""
    import torch
    from torch import nn

    from archlab.api import count as count_api

    if layer not in _DWSC_LAYERS or count not in ("macs", "params"):
        raise UserError(f"dwsc needs layer in {', '.join(_DWSC_LAYERS)} and count macs or params")
    k, m, n, g = _dwsc_sizes(vars)
    with torch.device("meta"):
        dw = nn.Conv2d(m, m, k, padding=k // 2, groups=m, bias=False)
        pw = nn.Conv2d(m, n, 1, bias=False)
        module = {"standard": lambda: nn.Conv2d(m, n, k, padding=k // 2, bias=False),
                  "depthwise": lambda: dw, "pointwise": lambda: pw,
                  "separable": lambda: nn.Sequential(dw, pw)}[layer]()
    result = count_api(module, input_size=(m, g, g), depth=0)
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


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}


def evaluate(expr: str, vars: dict[str, Any]) -> float:
    """Arithmetic (+ - * / ** and parentheses) over numbers and the names in ``vars``."""

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value,
                                                                                                      bool):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in vars:
                raise UserError(f"formula '{expr}': unknown name '{node.id}'")
            return vars[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.operand))
        raise UserError(f"formula '{expr}': only numbers, names and + - * / ** are allowed")

    try:
        tree = ast.parse(str(expr), mode="eval")
    except SyntaxError:
        raise UserError(f"formula '{expr}' is not an arithmetic expression") from None
    try:
        return walk(tree)
    except ZeroDivisionError:
        raise UserError(f"formula '{expr}' divides by zero") from None


@quantity()
def formula(ctx: Context, *, expr: str, vars: dict) -> float:
    """A stated formula evaluated (for evidence: e.g. what a printed value would imply)."""
    return evaluate(expr, vars)


# --- the data file ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    index: int  # 1-based position in the file
    id: str
    section: str
    where: str
    claim: str
    course: str  # as printed
    value: str | None  # the printed number (numeric claims); None: a text claim
    text: str | None  # a text claim's value when the printed cell says more (else the course string)
    unit: str
    approx: bool
    course_formula: str | None
    vars: dict[str, Any]
    compute: dict[str, Any]  # quantity and its arguments
    status: str | None  # the expected status: only "known-discrepancy" may be recorded
    cause: str | None
    explanation: str
    evidence: tuple[dict[str, Any], ...]
    about: str = ""  # the group's note (conventions shared by its rows)
    origin: str = ""  # file, group and row: where errors point

    @property
    def quantity(self) -> Quantity:
        return QUANTITIES[self.compute["quantity"]]

    @property
    def numeric(self) -> bool:
        return self.value is not None or self.course_formula is not None

    @property
    def model(self) -> str | None:
        return self.compute.get("model")


@dataclass(frozen=True)
class Fact:
    section: str
    text: str
    why: str


@dataclass(frozen=True)
class ClaimData:
    path: str
    claims: tuple[Claim, ...]
    facts: tuple[Fact, ...]


def load(path: str | None = None) -> ClaimData:
    """Read and validate a claims file; a malformed one raises a UserError naming the file and row.

    The file holds ``[[group]]`` tables (shared fields, an optional ``about`` text and ``rows``:
    one inline table per claim, inheriting the group's fields), ``[[discrepancy]]`` records (the
    cause of a known discrepancy, by claim id) and ``[[fact]]`` entries (claims that are facts,
    not computations, listed in the report and not checked).
    """
    import tomllib

    shown = path or "archlab/data/course_claims.toml"  # as reports name the shipped file, from anywhere
    path = path or DEFAULT_DATA
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"claims file '{shown}' does not exist") from None
    except OSError as e:
        raise UserError(f"cannot read claims file '{shown}': {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{shown}: not valid TOML: {e}") from None
    unknown = set(doc) - {"group", "discrepancy", "fact"}
    if unknown:
        raise UserError(f"{shown}: unknown top-level key(s) {', '.join(sorted(unknown))} "
                        "(expected [[group]], [[discrepancy]], [[fact]])")
    records = _discrepancies(doc.get("discrepancy", []), shown)
    groups = doc.get("group", [])
    if not isinstance(groups, list) or not groups:
        raise UserError(f"{shown}: no [[group]] of claims")
    claims, seen = [], set()
    for g, group in enumerate(groups, start=1):
        rows = group.get("rows") if isinstance(group, dict) else None
        if not isinstance(rows, list) or not rows:
            raise UserError(f"{shown}: group #{g}: missing 'rows' (an array of inline tables, one per claim)")
        about = group.get("about", "")
        defaults = {k: v for k, v in group.items() if k not in ("rows", "about")}
        for r, row in enumerate(rows, start=1):
            rid = row.get("id") if isinstance(row, dict) else None
            where = f"{shown}: group #{g}, row #{r}" + (f" ('{rid}')" if isinstance(rid, str) else " (no id)")
            if not isinstance(row, dict):
                raise UserError(f"{where}: not a table")
            if isinstance(rid, str) and rid in seen:
                raise UserError(f"{where}: the id '{rid}' is used twice")
            merged = defaults | row
            record = records.pop(rid, None) if isinstance(rid, str) else None
            if record is not None:
                merged |= record
            claim = _claim(merged, len(claims) + 1, where, about)
            seen.add(claim.id)
            claims.append(claim)
    if records:
        raise UserError(f"{shown}: [[discrepancy]] for unknown claim id(s): {', '.join(sorted(records))}")
    facts = []
    for i, row in enumerate(doc.get("fact", []), start=1):
        missing = [k for k in ("section", "text", "why") if not isinstance(row.get(k), str)]
        if missing:
            raise UserError(f"{shown}: fact #{i}: missing or non-text field(s) {', '.join(missing)}")
        facts.append(Fact(row["section"], row["text"], row["why"]))
    return ClaimData(shown, tuple(claims), tuple(facts))


def _discrepancies(records: Any, shown: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(records, list):
        raise UserError(f"{shown}: 'discrepancy' must be an array of tables ([[discrepancy]])")
    for i, rec in enumerate(records, start=1):
        rid = rec.get("id") if isinstance(rec, dict) else None
        if not isinstance(rid, str):
            raise UserError(f"{shown}: discrepancy #{i}: missing 'id' (the claim it explains)")
        extra = set(rec) - {"id", "cause", "explanation", "evidence"}
        if extra:
            raise UserError(f"{shown}: discrepancy #{i} ('{rid}'): unknown field(s) {', '.join(sorted(extra))}")
        if rid in out:
            raise UserError(f"{shown}: discrepancy #{i} ('{rid}'): recorded twice")
        out[rid] = {k: v for k, v in rec.items() if k != "id"} | {"status": "known-discrepancy"}
    return out


def _claim(row: dict[str, Any], index: int, where: str, about: str = "") -> Claim:
    def bad(msg: str) -> UserError:
        return UserError(f"{where}: {msg}")

    for key in ("id", "section", "where", "claim", "course"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise bad(f"missing field '{key}' (text)")
    compute = {k: v for k, v in row.items() if k not in ROW_FIELDS}
    _check_compute(compute, bad)
    value = row.get("value")
    if value is not None:
        if not isinstance(value, str):
            raise bad("'value' must be the printed number as text (e.g. \"4.2\"), so that its digits are kept")
        try:
            Decimal(value)
        except ArithmeticError:
            raise bad(f"'value' is not a number: '{value}'") from None
        if value.lstrip("-") not in row["course"].replace(",", ""):
            raise bad(f"'value' {value} does not appear in the printed course value '{row['course']}'")
    unit = row.get("unit", "")
    if unit not in UNITS:
        raise bad(f"unknown unit '{unit}' (known: {', '.join(repr(u) for u in UNITS)})")
    course_formula = row.get("course_formula")
    if course_formula is not None and value is not None:
        raise bad("give either 'value' or 'course_formula', not both")
    vars_ = row.get("vars", {})
    if not isinstance(vars_, dict) or not all(isinstance(v, (int, float)) for v in vars_.values()):
        raise bad("'vars' must be a table of numbers")
    if course_formula is not None:
        try:
            evaluate(course_formula, vars_)
        except UserError as e:
            raise bad(str(e)) from None
    status = row.get("status")
    if status is not None and status != "known-discrepancy":
        raise bad(f"'status' can only record 'known-discrepancy', got '{status}'")
    cause, explanation = row.get("cause"), row.get("explanation", "")
    if not isinstance(explanation, str):
        raise bad("'explanation' must be text")
    if status:
        if cause not in CAUSES:
            raise bad(f"a known-discrepancy needs a 'cause' among {', '.join(CAUSES)}")
        if len(explanation.split()) < 8:
            raise bad("a known-discrepancy needs a written 'explanation' of its cause")
        if not row.get("evidence"):
            raise bad("a known-discrepancy needs 'evidence': at least one computation shown beside it")
    elif cause is not None:
        raise bad("'cause' is only for rows with status = \"known-discrepancy\"")
    evidence = row.get("evidence", [])
    if not isinstance(evidence, list):
        raise bad("'evidence' must be an array of tables ([[claim.evidence]])")
    for j, ev in enumerate(evidence, start=1):
        if not isinstance(ev, dict) or not isinstance(ev.get("label"), str):
            raise bad(f"evidence #{j}: needs a 'label'")
        if ev.get("unit", unit) not in UNITS:
            raise bad(f"evidence #{j}: unknown unit '{ev.get('unit')}'")
        if ev.get("reproduces") not in (None, "nearest", "down"):
            raise bad(f"evidence #{j}: 'reproduces' must be \"nearest\" or \"down\"")
        if ev.get("reproduces") and value is None:
            raise bad(f"evidence #{j}: 'reproduces' needs the row's printed 'value'")
        _check_compute({k: v for k, v in ev.items() if k not in EVIDENCE_FIELDS}, lambda m: bad(f"evidence #{j}: {m}"))
    text = row.get("text")
    if text is not None and (not isinstance(text, str) or value is not None or course_formula is not None):
        raise bad("'text' (the value of a text claim) must be text, and not beside 'value' or 'course_formula'")
    return Claim(index, row["id"], row["section"], row["where"], row["claim"], row["course"], value, text, unit,
                 bool(row.get("approx", False)), course_formula, dict(vars_), compute, status, cause,
                 " ".join(explanation.split()), tuple(evidence), " ".join(about.split()), where)


def _check_compute(spec: dict[str, Any], bad: Callable[[str], UserError]) -> None:
    name = spec.get("quantity")
    if name is None:
        raise bad("missing field 'quantity'")
    q = QUANTITIES.get(name)
    if q is None:
        raise bad(f"unknown quantity '{name}' (known: {', '.join(sorted(QUANTITIES))})")
    given = set(spec) - {"quantity"}
    unknown = given - set(q.params)
    if unknown:
        raise bad(f"quantity '{name}' takes no {', '.join(sorted(unknown))} "
                  f"(it takes: {', '.join(q.params) or 'nothing'})")
    missing = [p for p, par in q.params.items() if par.default is par.empty and p not in given and p != "vars"]
    if missing:
        raise bad(f"quantity '{name}' needs {', '.join(missing)}")
    for key in given:
        want, v = q.params[key].annotation, spec[key]
        ok = {"str": isinstance(v, str), "list": isinstance(v, list) and all(isinstance(x, str) for x in v),
              "dict": isinstance(v, dict), "float": isinstance(v, (int, float)) and not isinstance(v, bool)}[want]
        if not ok:
            raise bad(f"quantity '{name}': '{key}' must be {_KIND_WORDS[want]}")
        if want == "dict" and key in ("of", "to"):
            _check_compute(v, lambda m, k=key: bad(f"'{k}': {m}"))


_KIND_WORDS = {"str": "text", "list": "a list of texts", "dict": "a table", "float": "a number"}


# --- checking ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    label: str
    value: Any
    unit: str
    reproduces: str | None
    reproduced: bool | None  # None: not a reproduction

    def display(self) -> str:
        return _display(self.value, self.unit, None)


@dataclass(frozen=True)
class Row:
    claim: Claim
    model: str | None  # resolved label of the model the row is about
    input: str | None  # its input, C x H x W
    course_value: Any  # number in the row's unit, or the normalised course string
    computed: Any  # raw computed value (a count, a ratio, a string)
    tolerance: float  # in the row's unit; 0: exact
    diff_percent: float | None
    status: str
    note: str
    evidence: tuple[Evidence, ...]

    @property
    def computed_in_unit(self) -> Any:
        return self.computed / UNITS[self.claim.unit][0] if self.claim.numeric else self.computed

    def computed_display(self) -> str:
        c = self.claim
        if not c.numeric:
            return str(self.computed)
        if self.tolerance == 0 and isinstance(self.computed, int) and not c.unit:
            return f"{self.computed:,}"
        decimals = max(_decimals(c.value), 0) + 2 if c.value is not None else None
        return _display(self.computed, c.unit, decimals)

    def tolerance_display(self) -> str:
        if self.tolerance == 0:
            return "exact"
        return f"±{_num(self.tolerance)}{UNITS[self.claim.unit][1]}"

    def to_dict(self) -> dict[str, Any]:
        c = self.claim
        return {
            "id": c.id, "section": c.section, "where": c.where, "claim": c.claim, "model": self.model,
            "input": self.input, "quantity": c.compute["quantity"], "course": c.course,
            "course_value": self.course_value, "unit": c.unit, "computed": self.computed,
            "computed_in_unit": self.computed_in_unit, "diff_percent": self.diff_percent,
            "tolerance": self.tolerance, "status": self.status, "cause": c.cause,
            "explanation": c.explanation, "note": self.note,
            "evidence": [{"label": e.label, "value": e.value, "unit": e.unit, "display": e.display(),
                          "reproduces": e.reproduces, "reproduced": e.reproduced} for e in self.evidence],
        }


def _num(x: float) -> str:
    return f"{x:,.10f}".rstrip("0").rstrip(".")


def _display(value: Any, unit: str, decimals: int | None) -> str:
    if isinstance(value, str):
        return value
    scale, suffix = UNITS[unit]
    x = value / scale
    if decimals is None:
        if isinstance(value, int) and scale == 1:
            return f"{value:,}{suffix}"
        decimals = 2 if abs(x) >= 1 else 4
    return f"{x:,.{decimals}f}{suffix}"


def _decimals(printed: str) -> int:
    s = printed.strip().lstrip("+-")
    return len(s.split(".", 1)[1]) if "." in s else 0


def _places(printed: str, approx: bool) -> int:
    """Decimal places of the last significant printed digit; negative for the trailing zeros of
    an approximate integer ('~140': -1, the tens)."""
    places = _decimals(printed)
    digits = printed.strip().lstrip("+-")
    if places == 0 and approx and digits.rstrip("0"):
        places = -(len(digits) - len(digits.rstrip("0")))
    return places


def tolerance_of(printed: str, approx: bool = False) -> float:
    """Half a unit in the last significant printed digit: '4.2' -> 0.05; '569' -> 0.5; an
    approximate integer's trailing zeros are not significant: '~140' -> 5."""
    return 0.5 * 10.0 ** (-_places(printed, approx))


def _rounds_to(x: float, printed: str, mode: str, approx: bool) -> bool:
    """Does ``x``, rounded to the printed precision (half up, or down), print as ``printed``?"""
    step = Decimal(1).scaleb(-_places(printed, approx))
    n = (Decimal(repr(float(x))) / step).to_integral_value(rounding=ROUND_FLOOR if mode == "down" else ROUND_HALF_UP)
    return n * step == Decimal(printed)


def _normalise(text: str) -> str:
    """Compare shapes as printed: '×' is 'x', '224 × 224' is '224x224', runs of spaces are one."""
    text = " ".join(str(text).replace("×", "x").replace("−", "-").split())
    return re.sub(r"(?<=\d) ?x ?(?=\d)", "x", text)


def check(claim: Claim, ctx: Context) -> Row:
    """Recompute one claim and give it its status."""
    try:
        computed = ctx.compute(claim.compute, claim.vars)
        model = ctx.model(claim.model) if claim.model else None
        evidence = tuple(_evidence(ev, claim, ctx) for ev in claim.evidence)
    except UserError as e:
        raise UserError(f"{claim.origin}: {e}") from None
    label = model.label if model else None
    shape = "x".join(map(str, model.input_shape[1:])) if model else None
    note = ""
    if claim.numeric:
        if isinstance(computed, str):
            raise UserError(f"{claim.origin}: quantity '{claim.compute['quantity']}' gives "
                            f"text ('{computed}'); give the course value as 'course' without 'value'")
        scale = UNITS[claim.unit][0]
        if claim.course_formula is not None:
            course_value, tol = evaluate(claim.course_formula, claim.vars), 0.0
        else:
            course_value = float(Decimal(claim.value))
            exact = claim.quantity.exact and scale == 1 and "." not in claim.value and not claim.approx
            tol = 0.0 if exact else tolerance_of(claim.value, claim.approx)
        x = computed / scale
        diff = x - course_value
        diff_percent = 100 * diff / course_value if course_value else None
        within = abs(diff) <= tol + 1e-9 * max(1.0, abs(course_value))
    else:
        course_value, tol, diff_percent = _normalise(claim.text or claim.course), 0.0, None
        within = _normalise(computed) == course_value
    if within:
        status = "ok"
        if claim.status:
            note = "recorded as a known discrepancy, but it now agrees: the record is stale"
    elif claim.status == "known-discrepancy":
        failed = [e.label for e in evidence if e.reproduced is False]
        if failed:
            status = "FAIL"
            note = "the recorded cause no longer reproduces the course's value: " + "; ".join(failed)
        else:
            status = "known-discrepancy"
    else:
        status = "FAIL"
    return Row(claim, label, shape, course_value, computed, tol, diff_percent, status, note, evidence)


def _evidence(ev: dict[str, Any], claim: Claim, ctx: Context) -> Evidence:
    spec = {k: v for k, v in ev.items() if k not in EVIDENCE_FIELDS}
    value = ctx.compute(spec, claim.vars)
    unit = ev.get("unit", claim.unit)
    mode = ev.get("reproduces")
    reproduced = None
    if mode:
        reproduced = not isinstance(value, str) and _rounds_to(value / UNITS[claim.unit][0], claim.value, mode,
                                                               claim.approx)
    return Evidence(ev["label"], value, unit, mode, reproduced)


@dataclass(frozen=True)
class VerifyResult:
    data: str
    rows: tuple[Row, ...]
    facts: tuple[Fact, ...]
    only: str | None

    @property
    def summary(self) -> dict[str, int]:
        return {s: sum(1 for r in self.rows if r.status == s) for s in STATUSES}

    @property
    def failed(self) -> bool:
        return any(r.status == "FAIL" for r in self.rows)

    def raise_if_failed(self) -> None:
        failed = [r.claim.id for r in self.rows if r.status == "FAIL"]
        if failed:
            shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
            raise ClaimsFailed(f"{len(failed)} of {len(self.rows)} claims FAIL: {shown}")

    def summary_line(self) -> str:
        s = self.summary
        return f"{s['ok']} ok, {s['known-discrepancy']} known-discrepancy, {s['FAIL']} FAIL"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "data": self.data,
            "only": self.only,
            "units": {"MACs": "multiply-accumulates (the papers' mult-adds)",
                      "tolerance": "in the row's unit: half a unit in the last printed digit; 0: exact"},
            "summary": self.summary,
            "rows": [r.to_dict() for r in self.rows],
            "facts": [{"section": f.section, "text": f.text, "why": f.why} for f in self.facts],
        }


def verify(data: str | None = None, only: str | None = None) -> VerifyResult:
    """Recompute every claim of the data file (the shipped one by default); ``only``: a glob over
    the claim ids, e.g. 'mobilenet*'."""
    claims_data = load(data)
    claims = claims_data.claims
    if only:
        claims = tuple(c for c in claims if fnmatch.fnmatch(c.id.lower(), only.lower()))
        if not claims:
            raise UserError(f"no claim id matches '{only}' in {claims_data.path}")
    ctx = Context()
    rows = tuple(check(c, ctx) for c in claims)
    return VerifyResult(claims_data.path, rows, claims_data.facts if not only else (), only)


def course_value(model: str, alpha: float, resolution: int) -> dict[str, str] | None:
    """The course's MobileNet width/resolution-multiplier table entry for this variant, as printed
    ({claim: value}), or None when the tables have no such row. Reads the shipped data file."""
    from archlab.api import resolve

    out: dict[str, str] = {}
    for c in load().claims:
        if not c.where.lower().startswith(("width multiplier table", "resolution multiplier table")) or not c.model:
            continue
        r = resolve(c.model)
        if r.info.name == model and float(r.options.get("alpha", 1.0)) == float(alpha) \
                and r.input_shape[-1] == resolution:
            out.setdefault(c.claim, c.course)
    return out or None
