"""Quantities read from a real model's meta trace: parameters, MACs, neurons, weight layers, shapes
as the course prints them, layer lists, stage rows, MobileNet Table 1 rows, receptive fields."""

from __future__ import annotations

import fnmatch

from archlab.analysis.per_layer import filter_shape, is_depthwise
from archlab.errors import UserError
from archlab.units import pair as _pair
from archlab.verify.quantities import Context, TracedModel, quantity


def _hwc(shape: tuple[int, ...], layout: str = "hwc") -> str:
    """An activation shape as the course prints it: H x W x C (a vector is 1 x 1 x C)."""
    if len(shape) == 4:
        _, c, h, w = shape
    elif len(shape) == 2:
        (_, c), h, w = shape, 1, 1
    else:
        return "x".join(map(str, shape))
    return {"hwc": f"{h}x{w}x{c}", "hw": f"{h}x{w}", "c": str(c)}[layout]


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


def _ops_in(m: TracedModel, modules) -> list:
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


def _table1_cells(m: TracedModel, call) -> dict[str, str]:
    """One layer as a row of MobileNet's Table 1: type / stride, filter shape, input size. A global
    average pool is a single window over the whole map; its stride is written s1, as the paper does."""
    in_shape = m.shape(call.inputs[0])
    if call.type == "Conv2d":
        s = _conv_desc(call)[2]
        dw = is_depthwise(call.attrs)
        return {"type": f"Conv{' dw' if dw else ''} / s{s}", "filter": filter_shape(call.attrs), "input": _hwc(in_shape)}
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
