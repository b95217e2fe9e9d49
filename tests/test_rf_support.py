"""The exact receptive field checked by the gradient, on every registered model (issue 26).

For several layers of each model and several units of each layer (the centre unit, three corners,
and around the centre one unit of every phase where the field depends on the position: the
up-sampling models), the input gradient of that one unit is computed in float64 and its support
(the input pixels where |grad| > 0) must be EXACTLY the window that the rf analysis reports for
that unit (``Field.phase`` through ``unit_window``, clipped to the input). The gradient is the
independent reference: it is computed here, by autograd on the real model, and shares nothing
with the analysis but the model.

So that no pixel inside the window can get a zero gradient by accident, the model is made
monotone (every path from a pixel to the unit carries a positive factor):

* every convolution weight is drawn from [0.5, 1.5] and divided by its sum over each output
  channel's fan-in (each unit a positive weighted average: the activations stay near 1 through
  a hundred layers, so nothing overflows, saturates or underflows); every bias and batch-norm
  scale is drawn from [0.5, 1.5]; the input from [0.5, 1.5];
* batch norm runs in eval mode with mean 0 and variance 1 (a positive scale per channel);
* max pooling is swapped for average pooling of the same window (kernel, stride, padding,
  ceil_mode): max routes the gradient to one input of each window, the average to all of them;
* ReLU6 becomes ReLU (a positive activation above 6 would otherwise pass no gradient); ReLU,
  SiLU and the LeNets' scaled tanh are then strictly increasing on what they see;
* in-place activations are made out-of-place, so the captured layer output is the layer's;
* a squeeze-and-excitation gate (EfficientNet) reads a global pooling of the whole map: its
  pooled (1 x 1) value is detached, so the gradient shows the local field the analysis reports;
  the analysis flags such fields ``global_context``, and ``test_a_gated_field_depends_on_the_whole_input``
  checks that flag against the gradient with the gate left on;
* dropout is off (eval mode).

Left as they are: local response normalization (AlexNet, GoogLeNet, VGG-11-LRN),
whose cross-channel term is negative but, with alpha 1e-4 (or 5e-4) and activations of a
few units, far smaller than the direct term, so no sum cancels to an exact zero; average pooling
with or without the padding counted; LeNet-1989's constant padding with -1 (a constant: no gradient,
and tanh is increasing everywhere).

The analysis runs on a meta trace of the model as built (max pooling and all); the gradient runs
on the neutralized copy. Channel widths do not change which pixels a unit reads, so the wide
encoder-decoders are run narrow (``_REDUCED``), and models that take any resolution run at a
small one; the geometry (kernels, strides, padding, depth) is the model's own. Models whose fixed last
pool expects their own input size run at a smaller one with that pool made the size of the last map
(``_WHOLE_MAP_POOL``).

Findings when this test was written (every registered model at the resolutions below): the
support is one rectangle for every unit tested (no holes), and it equalled the unit's
``unit_window`` clipped to the input everywhere but on Inception v3 and Inception-ResNet v2 at 96
pixels: there the right and bottom edges of the gradient stopped 1 to 3 pixels short (94 or 92,
not 95). The analysis was wrong: their stems' stride-2 convolutions without padding on an even
size leave the last pixel to no unit, so no later unit depends on it, while the windows of
``Field.phase`` assume an unbounded input. The analysis now keeps the pixels each map reaches
(``RFAnalysis.cover``) and gives a unit's exact pixels as ``RFAnalysis.window``, which is what this
test compares with (tests/test_receptive_field.py has the small case). LeNet-1989's padding units
read only padding: their window is empty and their gradient zero everywhere.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import archlab
from archlab.analysis.receptive_field import receptive_fields, rf_of, unit_window
from archlab.models.catalog import list_models
from archlab.trace.run import trace


class _Stop(Exception):
    """Raised by the last hook: the rest of the forward is not needed."""


# name -> (spec, resolution or None for the model's own input, thin: convolutions narrowed to one channel)
# Widths only: a unit's input pixels do not depend on how many channels a layer has.
_REDUCED: dict[str, tuple[str, int | None, bool]] = {
    "unet": ("unet@base=1", 188, False),  # 188: the smallest input whose crops all line up
    "hourglass": ("hourglass@features=2,num_joints=1", 64, False),
    "fcn8s": ("fcn8s@num_classes=1", 64, True),  # FCN has no concatenation: one channel everywhere works
    "fcn16s": ("fcn16s@num_classes=1", 64, True),
    "fcn32s": ("fcn32s@num_classes=1", 64, True),
    "alexnet": ("alexnet", None, False),  # a fixed classifier: the model's own 227
    "alexnet_owt": ("alexnet_owt", None, False),
    "bn_inception": ("bn_inception", 96, False),  # 224 less 4 x 32: see _WHOLE_MAP_POOL
    "googlenet": ("googlenet", 96, False),  # 224 less 4 x 32: see _WHOLE_MAP_POOL
    "lenet": ("lenet", None, False),
    "lenet5": ("lenet5", None, False),
    "inception_v2": ("inception_v2", 139, False),  # 299 less 5 x 32: see _WHOLE_MAP_POOL
    "inception_v3": ("inception_v3", 96, False),
    "inception_resnet_v2": ("inception_resnet_v2", 96, False),
}
# spec -> (attribute, side): a fixed average pool that reads the whole last map (these models' tables:
# "pool 8x8" of Inception v2 at 299 pixels, "avg pool 7x7" of GoogLeNet and BN-Inception at 224), made the
# size of that map at the smaller input the test runs (a wrong side fails the trace: the classifier would get
# other features). The smaller input is the model's own less a multiple of 32, the network's total stride:
# every stride-2 layer then sees a map of the same parity as at the model's own size (Inception v2 at 139:
# 149/69, 147/67, 71/31, 35/15, 17/7), so it reads (or, with ceil_mode, overhangs) its map's last row and
# column as there, and every layer's field and its clipping at the input's edges work the same way; the
# last map is 3 x 3.
_WHOLE_MAP_POOL: dict[str, tuple[str, int]] = {"inception_v2": ("avgpool", 3), "googlenet": ("pool5", 3),
                                               "bn_inception": ("avgpool", 3)}
_FAST = {"lenet", "resnet18", "mobilenet_v2", "efficientnet_b0", "unet", "fcn8s", "hourglass", "densenet121",
         "vgg11"}


def _config(name: str) -> tuple[str, int | None, bool]:
    if name in _REDUCED:
        return _REDUCED[name]
    if name.startswith("efficientnet_b") and name != "efficientnet_b0":
        # B1..B7: B0's blocks deeper and wider; no concatenation, so one channel everywhere (B0 runs at full width)
        return name, 64, True
    if name.startswith("vgg"):
        return f"{name}@adaptive_pool=true", 64, False  # the classifier after an adaptive pool takes any size
    return name, 64, False  # global average pooling before the classifier: any size


def _params():
    for name in list_models():
        marks = () if name in _FAST else (pytest.mark.slow,)
        yield pytest.param(name, marks=marks, id=name)


def _replace(model: nn.Module, fn) -> None:
    for name, m in list(model.named_modules()):
        new = fn(m)
        if new is not None:
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, leaf, new)


def _thin(m: nn.Module):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        return type(m)(1, 1, m.kernel_size, m.stride, m.padding, dilation=m.dilation, bias=m.bias is not None)
    if isinstance(m, nn.BatchNorm2d):
        return nn.BatchNorm2d(1, eps=m.eps)
    if isinstance(m, nn.Linear):  # a classifier after global pooling: one feature in (traced, never run here)
        return nn.Linear(1, m.out_features, bias=m.bias is not None)
    return None


def _neutral(m: nn.Module):
    if isinstance(m, nn.MaxPool2d):
        assert m.dilation in (1, (1, 1)), "average pooling has no dilation"
        return nn.AvgPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)
    if isinstance(m, nn.AdaptiveMaxPool2d):
        return nn.AdaptiveAvgPool2d(m.output_size)
    if isinstance(m, nn.ReLU6):
        return nn.ReLU()
    if isinstance(m, nn.Linear):
        return _NoLinear()  # past every spatial layer: never reached before the forward stops
    return None


class _NoLinear(nn.Module):
    def forward(self, x):
        raise AssertionError("a linear layer ran before the last layer under test")


def _detach_global(module, args, out):
    if out.dim() == 4 and out.shape[-2:] == (1, 1) and args[0].shape[-2:] != (1, 1):
        return out.detach()
    return None


def monotone(model: nn.Module, seed: int = 0, gate: bool = False) -> nn.Module:
    """The model made monotone as the module's docstring says, in float64 (``gate``: keep the
    gradient through global pooling)."""
    model.eval()
    _replace(model, _neutral)
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
        if not gate and isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            m.register_forward_hook(_detach_global)
    model.double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            for p in m.parameters(recurse=False):
                p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) + 0.5)
                if p.dim() >= 2:
                    p /= p.sum(dim=tuple(range(1, p.dim())), keepdim=True)
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
    return model


def supports(model: nn.Module, input_shape, tasks, seed: int = 0) -> torch.Tensor:
    """(len(tasks), H, W) bool: sample n of a batch is back-propagated from its own task's unit
    (module name, (y, x)), so one forward and one backward give every unit's support; samples are
    independent in eval mode."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(len(tasks), *input_shape, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    modules = dict(model.named_modules())
    pending = {name for name, _ in tasks}
    picked: list[torch.Tensor] = []

    def hook_of(name):
        def hook(module, args, out):
            out = out[0] if isinstance(out, (tuple, list)) else out  # the trace's call.outputs[0]
            assert torch.is_tensor(out) and out.dim() == 4, (name, type(out))
            picked.extend(out[n, :, y, x_].sum() for n, (t, (y, x_)) in enumerate(tasks) if t == name)
            pending.discard(name)
            if not pending:
                raise _Stop
        return hook

    handles = [modules[name].register_forward_hook(hook_of(name)) for name in pending]
    try:
        model(x)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    assert not pending, f"not called: {pending}"
    (grad,) = torch.autograd.grad(torch.stack(picked).sum(), x)
    return grad.abs().sum(1) > 0


def window_mask(rf, vid, unit, hw) -> torch.Tensor:
    """The window the analysis reports for ``unit`` of value ``vid`` (``RFAnalysis.window``: the
    unit's ``unit_window`` clipped to the input pixels the maps before it reach), as an (H, W) mask."""
    mask = torch.zeros(hw, dtype=torch.bool)
    rows, cols = rf.window(vid, unit)
    if rows is not None and cols is not None:
        mask[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1] = True
    return mask


def _bounds(mask: torch.Tensor):
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    if not len(rows):
        return None
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


def layers_under_test(tr, rf, count: int = 6):
    """Calls at depth 1 and 2 with a spatial output and a field, each module called once: ``count``
    of them spread over the network in call order, and the last one."""
    calls = [c.name for c in tr.calls]
    found = [c for c in tr.calls if 0 < c.depth <= 2 and calls.count(c.name) == 1 and c.outputs
             and len(tr.values[c.outputs[0]].shape) == 4 and rf.of(c.outputs[0]) is not None]
    chosen = found[::max(1, len(found) // count)][:count]
    return chosen + [c for c in found[-1:] if c not in chosen]


def units_under_test(f, hw):
    """The centre, three corners, and around the centre one unit of every phase of the field."""
    h, w = hw
    units = {(h // 2, w // 2), (0, 0), (h - 1, w - 1), (0, w - 1)}
    period = max(f.phase[0][0], f.phase[1][0])
    if period > 1:
        units |= {(min(h - 1, h // 2 + r % f.phase[0][0]), min(w - 1, w // 2 + r % f.phase[1][0]))
                  for r in range(period)}
    return sorted(units)


def _check(spec: str, res: int | None, thin: bool) -> None:
    model = archlab.build(spec)
    if thin:
        _replace(model, _thin)
    if spec in _WHOLE_MAP_POOL:
        attribute, side = _WHOLE_MAP_POOL[spec]
        assert isinstance(getattr(model, attribute), nn.AvgPool2d)
        setattr(model, attribute, nn.AvgPool2d(side))
    tr, label = archlab.trace.run.trace_model(model, input_size=_input_size(spec, res, thin))
    rf = receptive_fields(tr)
    rows = {r["name"]: r for r in rf_of(tr, label, depth=2, rf=rf).layers}
    hw = tuple(tr.input_shape[-2:])
    tasks, fields, vids = [], {}, {}
    for call in layers_under_test(tr, rf):
        f = rf.of(call.outputs[0])
        assert f.phase is not None, f"{call.name}: the exact windows were not followed"
        fields[call.name], vids[call.name] = f, call.outputs[0]
        tasks += [(call.name, u) for u in units_under_test(f, tr.values[call.outputs[0]].shape[-2:])]
    hit = supports(monotone(model), tr.input_shape[1:], tasks)
    wrong = []
    for (name, unit), got in zip(tasks, hit):
        expected = window_mask(rf, vids[name], unit, hw)
        if not torch.equal(got, expected):
            wrong.append(f"{name} unit {unit}: reported {_bounds(expected)}, gradient {_bounds(got)}"
                         f"{'' if got.sum() == expected.sum() else ' (support of another shape)'}")
    assert not wrong, "\n".join(wrong)
    # the rf command's row: the widest and narrowest windows over the phases (all measured around the centre)
    compared = 0
    for name, f in fields.items():
        centre = [u for t, u in tasks if t == name and u not in _corners(tr, name)]
        windows = [[unit_window(f.phase[a], u[a]) for u in centre] for a in range(2)]
        inside = all(w[0] >= 0 and w[1] < hw[a] for a in range(2) for w in windows[a])
        full_period = all(len({u[a] % f.phase[a][0] for u in centre}) == f.phase[a][0] for a in range(2))
        if inside and full_period:
            widths = [[w[1] - w[0] + 1 for w in windows[a]] for a in range(2)]
            assert rows[name]["rf_hw"] == [max(widths[0]), max(widths[1])], name
            assert rows[name]["rf_min_hw"] == [min(widths[0]), min(widths[1])], name
            compared += 1
    assert compared, "no layer's centre windows lie inside the input: the rows were not compared"


def _corners(tr, name):
    call = next(c for c in tr.calls if c.name == name)
    h, w = tr.values[call.outputs[0]].shape[-2:]
    return {(0, 0), (h - 1, w - 1), (0, w - 1)} - {(h // 2, w // 2)}


def _input_size(spec: str, res: int | None, thin: bool):
    info_name = spec.split("@")[0]
    c, h, w = archlab.models.catalog.get_model_info(info_name).input_shape()
    if res is not None:
        h = w = res
    return (1 if thin else c, h, w)


@pytest.mark.parametrize("name", list(_params()))
def test_gradient_support_is_the_reported_window(name):
    spec, res, thin = _config(name)
    _check(spec, res, thin)


def test_a_gated_field_depends_on_the_whole_input():
    """EfficientNet's squeeze-and-excitation multiplies each unit by a gate computed from the
    whole map: the analysis flags the field ``global_context``, and with the gate's gradient left on,
    one unit's support is the whole input."""
    model = archlab.build("efficientnet_b0")
    tr = trace(model, torch.empty(1, 3, 64, 64, device="meta"))
    rf = receptive_fields(tr)
    call = next(c for c in tr.calls if c.name == "features.stage3")
    f = rf.of(call.outputs[0])
    assert f.global_context
    hit = supports(monotone(model, gate=True), (3, 64, 64), [("features.stage3", (0, 0))])
    assert bool(hit.all())
    assert not torch.equal(hit[0], window_mask(rf, call.outputs[0], (0, 0), (64, 64)))  # the local window


def test_a_unit_past_the_border_has_no_support():
    """LeNet-1989 pads its maps: the padding units' windows lie outside the input and their gradient is
    zero everywhere, as the empty clipped window says."""
    model = archlab.build("lenet")
    tr = trace(model, torch.empty(1, 1, 16, 16, device="meta"))
    rf = receptive_fields(tr)
    padded = [c for c in tr.calls if c.type in ("ZeroPad2d", "ConstantPad2d")]
    assert padded
    name = padded[0].name
    vid = padded[0].outputs[0]
    assert unit_window(rf.of(vid).phase[0], 0)[1] < 0 and rf.window(vid, (0, 0)) == (None, None)
    hit = supports(monotone(model), (1, 16, 16), [(name, (0, 0)), (name, (4, 4))])
    assert not bool(hit[0].any()) and torch.equal(hit[1], window_mask(rf, vid, (4, 4), (16, 16)))


def test_the_check_sees_a_wrong_window():
    """The comparison can fail: a 3 x 3 convolution's unit reads 3 x 3 pixels, not the 5 x 5 of two."""
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1))
    tr = trace(model, torch.empty(1, 1, 12, 12, device="meta"))
    rf = receptive_fields(tr)
    hit = supports(monotone(model), (1, 12, 12), [("0", (6, 6)), ("1", (6, 6))])
    assert _bounds(hit[0]) == (5, 7, 5, 7) and _bounds(hit[1]) == (4, 8, 4, 8)
    assert torch.equal(hit[1], window_mask(rf, tr.outputs[0], (6, 6), (12, 12)))
    assert not torch.equal(hit[0], window_mask(rf, tr.outputs[0], (6, 6), (12, 12)))
