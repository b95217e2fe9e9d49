"""Receptive fields: hand-computed tiny graphs, the course's and published values, and an
empirical check that back-propagates from one output unit to the input pixels it depends on."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archlab
from archlab.analysis.receptive_field import receptive_fields
from archlab.trace.run import trace
from archlab.api.layers import receptive_field


def _field(model, *shape):
    tr = trace(model, torch.empty(1, *shape, device="meta"))
    rf = receptive_fields(tr)
    return rf.of(tr.outputs[0]), rf


def conv(k=3, s=1, p=None, d=1, c=2):
    return nn.Conv2d(c, c, k, s, (d * (k - 1)) // 2 if p is None else p, dilation=d)


@pytest.mark.parametrize("layers, rf, jump, start", [
    ([conv()], 3, 1, 0),
    ([conv(), conv()], 5, 1, 0),  # the course: two stacked 3x3 layers see 5x5
    ([conv(), conv(), conv()], 7, 1, 0),  # three see 7x7
    ([conv(d=2)], 5, 1, 0),  # dilation 2: a 3x3 kernel spans 5
    ([conv(k=2, s=2, p=0)], 2, 2, 0.5),  # 2x2 stride 2: centre between pixels 0 and 1
    ([conv(s=2, p=1), conv()], 7, 2, 0),  # a 3x3 at jump 2 adds 2*2
    ([nn.MaxPool2d(2), conv()], 6, 2, 0.5),
    ([conv(k=7, s=2, p=3), nn.MaxPool2d(3, 2, 1)], 11, 4, 0),  # ResNet's stem
])
def test_chains(layers, rf, jump, start):
    f, _ = _field(nn.Sequential(*layers), 2, 32, 32)
    assert f.rf == (rf, rf) and f.jump == (jump, jump) and f.start == (start, start)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = conv(), conv()

    def forward(self, x):
        return self.b(self.a(x)) + x


class TwoBranches(nn.Module):
    def __init__(self):
        super().__init__()
        self.b1, self.b5 = conv(k=1), conv(k=5)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b5(x)], 1)


def test_residual_add_takes_the_larger_field():
    f, rf = _field(Residual(), 2, 16, 16)
    assert f.rf == (5, 5) and not rf.misaligned


def test_concat_takes_the_larger_field():
    f, rf = _field(TwoBranches(), 2, 16, 16)
    assert f.rf == (5, 5) and not rf.misaligned


class Misaligned(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = conv(k=2, p=0)

    def forward(self, x):
        return self.a(x) + x[:, :, 1:, 1:]  # centres 0.5 and 1: the grids do not line up


def test_misaligned_merge_is_reported_and_the_union_taken():
    f, rf = _field(Misaligned(), 2, 9, 9)
    assert len(rf.misaligned) == 1
    m = rf.misaligned[0]
    assert m.starts == ((0.5, 0.5), (1.0, 1.0))
    assert f.rf == (2, 2) and f.start == (0.5, 0.5)  # pixels [0, 1] and [1, 1]: the union is [0, 1]


def test_transposed_conv_and_upsampling_divide_the_jump():
    f, _ = _field(nn.Sequential(conv(k=2, s=2, p=0), nn.ConvTranspose2d(2, 2, 2, stride=2)), 2, 16, 16)
    assert f.jump == (1, 1) and f.rf == (2, 2)
    f, _ = _field(nn.Sequential(conv(k=2, s=2, p=0), nn.Upsample(scale_factor=2)), 2, 16, 16)
    # the upsampled grid: unit o sits at (o + 0.5)/2 - 0.5 on the coarse grid, i.e. at input pixel o
    assert f.jump == (1, 1) and f.rf == (2, 2) and f.start == (0, 0)
    f, _ = _field(nn.Sequential(conv(k=2, s=2, p=0), nn.Upsample(scale_factor=2, mode="bilinear")), 2, 16, 16)
    assert f.rf == (4, 4)  # bilinear interpolation reads two neighbours at jump 2


def test_global_pooling_ends_the_field_and_a_gate_is_flagged():
    class SE(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(x.mean((2, 3), keepdim=True))

    f, _ = _field(nn.Sequential(conv(), SE()), 2, 8, 8)
    assert f.rf == (3, 3) and f.global_context
    f, _ = _field(nn.Sequential(conv(), nn.AdaptiveAvgPool2d(1), nn.Flatten()), 2, 8, 8)
    assert f is None


@pytest.mark.parametrize("spec, layer, rf", [
    ("vgg16", "features.block5.conv3", 196),  # published: 196 after conv5_3
    ("vgg16", "features.block5.pool", 212),  # and 212 after the last pooling layer
    ("vgg16", "features.block1.conv2", 5),  # the course: two stacked 3x3 see 5x5
    ("alexnet_owt", "features.pool5", 195),  # Araujo et al. 2019, "Computing receptive fields of CNNs"
    ("resnet50", "layer4", 483),  # same source, resnet_v1_50
    ("inception_v3", "Mixed_7c", 1311),  # same source
    ("mobilenet", "features", 315),  # same source, mobilenet_v1
])
def test_published_receptive_fields(spec, layer, rf):
    result = receptive_field(spec, depth=4)
    row = next(r for r in result.layers if r["name"] == layer)
    assert row["rf"] == rf


def test_rf_json_reports_the_last_spatial_layer_and_the_input_overflow():
    d = receptive_field("vgg16", depth=1).to_dict()
    assert d["rf"] == 212 and d["rf_layer"]["name"] == "features.block5.pool"
    assert {"name", "rf", "jump", "start"} <= set(d["layers"][0])
    assert d["rf_layer"]["exceeds_input"] is False
    assert receptive_field("resnet50").rf["exceeds_input"] is True  # 483 > 224


# --- measured against real gradients -------------------------------------------------------


class _Stop(Exception):
    pass


def measured_region(model, layer, input_size, samples=64, seed=0):
    """The input pixels one centre unit of ``layer`` depends on, found by back-propagation:
    weights made positive and inputs positive keep every ReLU open; the union over random
    inputs lets each max-pool window pass gradient through each of its positions."""
    torch.manual_seed(seed)
    model.eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    captured = {}

    def hook(module, args, output):
        captured["out"] = output
        raise _Stop

    module = dict(model.named_modules())[layer]
    handle = module.register_forward_hook(hook)
    x = torch.rand(samples, *input_size, requires_grad=True)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    out = captured["out"]
    oy, ox = out.shape[-2] // 2, out.shape[-1] // 2
    out[:, :, oy, ox].sum().backward()
    hit = x.grad.abs().sum((0, 1)) > 0
    rows = hit.any(1).nonzero().flatten()
    cols = hit.any(0).nonzero().flatten()
    return (oy, ox), (int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max()))


def analytic_region(spec, layer, input_size, unit):
    tr, _ = archlab.trace.run.trace_model(spec, input_size=input_size)
    rf = receptive_fields(tr)
    call = [c for c in tr.calls if c.name == layer][-1]
    f = rf.of(call.outputs[0])
    region = []
    for axis, o in enumerate(unit):
        centre = f.start[axis] + o * f.jump[axis]
        half = (f.rf[axis] - 1) / 2
        lo, hi = max(0, int(centre - half)), min(input_size[axis + 1] - 1, int(centre + half))
        region.append((lo, hi))
    return f, tuple(region)


@pytest.mark.parametrize("spec, layer, input_size", [
    ("vgg16@adaptive_pool=true", "features.block3", (3, 64, 64)),  # a plain chain of convs and pools
    ("resnet18", "layer2", (3, 128, 128)),  # residual adds, with projection shortcuts
    ("googlenet", "inception3a", (3, 224, 224)),  # parallel branches concatenated, LRN
])
def test_analytic_field_equals_the_measured_one(spec, layer, input_size):
    model = archlab.build(spec)
    unit, rows, cols = measured_region(model, layer, input_size)
    f, (a_rows, a_cols) = analytic_region(spec, layer, input_size, unit)
    assert rows == a_rows and cols == a_cols, (f, unit)
    assert rows[1] - rows[0] + 1 == f.rf[0], "the field fits inside the input, so nothing is clipped"


# --- the audit's cases (B12): 1-D models, ops in the model's own forward, adaptive pooling with
# --- non-divisible sizes, reflection/replication padding and pixel (un)shuffle


def measured_extent(model, input_size, samples=16, seed=0):
    """The widest dependency region of the model's output units, per spatial axis, by back-
    propagation as in ``measured_region``: every unit on the output's diagonal (for a 1-D output,
    every unit) is back-propagated, since on some grids (adaptive pooling) units differ in width."""
    torch.manual_seed(seed)
    model.eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    x = torch.rand(samples, *input_size, requires_grad=True)
    out = model(x)
    line = out.dim() == 3
    n = out.shape[-1] if line else min(out.shape[-2:])
    widest = [0, 0]
    for i in range(n):
        unit = out[:, :, i] if line else out[:, :, i * out.shape[-2] // n, i * out.shape[-1] // n]
        (grad,) = torch.autograd.grad(unit.sum(), x, retain_graph=True)
        hit = grad.abs().sum((0, 1)) > 0
        hit = hit[None] if line else hit
        for axis, h in enumerate((hit.any(1), hit.any(0))):
            idx = h.nonzero().flatten()
            widest[axis] = max(widest[axis], int(idx.max() - idx.min() + 1))
    return tuple(widest)


def _model_field(model, input_size):
    from archlab.analysis.receptive_field import headline

    tr = trace(model, torch.empty(1, *input_size, device="meta"))
    rf = receptive_fields(tr)
    return headline(tr, rf), rf


class RootAdd(nn.Module):
    """The audit's ``misal``: the output is a functional add in the model's own forward."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Conv2d(3, 4, 2, stride=2)

    def forward(self, x):
        return self.a(x) + self.b(x)


class RootCat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 5, padding=2)

    def forward(self, x):
        return torch.cat([self.b(x), self.a(x)], 1)  # 'a' runs last but sees less than the output


class GridSample(nn.Module):
    """An op without a rule (grid_sample) and a conv after it: the field past it is unknown."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        grid = torch.zeros(x.shape[0], 8, 8, 2, device=x.device)
        return self.b(F.grid_sample(self.a(x), grid, align_corners=False))


@pytest.mark.parametrize("model, input_size", [
    # 1-D: Conv1d, dilation, MaxPool1d (traced as a 2-D pool on an unsqueezed map), AdaptiveAvgPool1d
    (nn.Sequential(nn.Conv1d(3, 8, 5, stride=2), nn.ReLU(), nn.Conv1d(8, 8, 3, dilation=2), nn.MaxPool1d(2)), (3, 64)),
    (nn.Sequential(nn.Conv1d(3, 4, 3), nn.AdaptiveAvgPool1d(7), nn.Conv1d(4, 2, 3, padding=1)), (3, 40)),
    (nn.Sequential(nn.Conv1d(3, 4, 3), nn.ReflectionPad1d((2, 1)), nn.Conv1d(4, 2, 5)), (3, 40)),
    # adaptive pooling, Out not dividing In: windows of 9 and 10 pixels 8.86 apart (the audit's 27 vs 30)
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(7), nn.Conv2d(4, 2, 3)), (3, 64, 64)),
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(5), nn.Conv2d(4, 4, 2), nn.Conv2d(4, 2, 2)), (3, 40, 40)),
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveMaxPool2d(5), nn.Conv2d(4, 2, 3, stride=2)), (3, 33, 33)),
    # reflection and replication padding, symmetric and not
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReflectionPad2d(2), nn.Conv2d(4, 2, 3)), (3, 32, 32)),
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReplicationPad2d((1, 2, 0, 3)), nn.Conv2d(4, 2, 5)), (3, 32, 32)),
    # pixel shuffle (the jump divided by r) and unshuffle (an r x r window, the jump times r)
    (nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.PixelShuffle(2), nn.Conv2d(4, 2, 3, padding=1)), (3, 32, 32)),
    (nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.PixelUnshuffle(2), nn.Conv2d(16, 2, 3, padding=1)), (3, 32, 32)),
    # the output made by a functional op in the model's forward
    (RootAdd(), (3, 32, 32)),
    (RootCat(), (3, 32, 32)),
], ids=["conv1d", "conv1d-adaptive", "conv1d-reflect", "adaptive-62to7", "adaptive-38to5-two-convs",
        "adaptive-max-strided", "reflection-pad", "replication-pad-asym", "pixel-shuffle", "pixel-unshuffle",
        "root-add", "root-cat"])
def test_model_field_equals_the_widest_measured_one(model, input_size):
    h, rf = _model_field(model, input_size)
    assert h is not None and h.field is not None and not rf.unsupported, (h, rf.unsupported)
    assert tuple(h.field.rf) == measured_extent(model, input_size), h.field
    assert h.value == h.call.outputs[0] or h.call.depth == 0


def test_the_headline_names_the_forward_op_that_makes_the_output():
    h, _ = _model_field(RootAdd(), (3, 32, 32))
    assert h.call.depth == 0 and h.op == "add" and h.name == "add (in the model's forward)"
    assert h.field.rf == (3, 3)  # not 'b''s 2: the output sees the union of both convs' fields


def test_the_headline_names_the_module_when_the_forward_only_keeps_its_field():
    class FinalRelu(nn.Module):  # DenseNet ends its forward with F.relu on features' output
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))

        def forward(self, x):
            return F.relu(self.features(x)).mean((2, 3))

    h, _ = _model_field(FinalRelu(), (3, 16, 16))
    assert h.name == "features.1" and h.field.rf == (5, 5)  # the deepest call returning the value


def test_a_field_past_an_op_without_a_rule_is_unknown_not_an_earlier_layers():
    h, rf = _model_field(GridSample(), (3, 16, 16))
    assert h.name == "b" and h.field is None and h.unknown_since == "aten.grid_sampler_2d.default"
    assert rf.unsupported == {"aten.grid_sampler_2d.default": 1}


def test_grid_sample_that_keeps_the_size_is_not_taken_for_an_element_wise_op():
    class SameSize(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = conv()

        def forward(self, x):
            grid = torch.zeros(x.shape[0], *x.shape[-2:], 2, device=x.device)
            return self.a(x) + F.grid_sample(self.a(x), grid, align_corners=False)

    h, rf = _model_field(SameSize(), (2, 8, 8))
    assert h.field is None and h.unknown_since == "aten.grid_sampler_2d.default", h


def test_one_d_models_are_analysed_along_their_axis_and_say_so():
    f, rf = _field(nn.Sequential(nn.Conv1d(3, 4, 5, stride=2), nn.Conv1d(4, 4, 3, padding=1)), 3, 32)
    assert f.rf == (1, 9) and f.jump == (1, 2) and f.start == (0, 2)
    assert any("1-D" in n for n in rf.notes)
    _, rf = _field(nn.Sequential(nn.Conv3d(3, 4, 3)), 3, 8, 8, 8)
    assert any("depth axis is not analysed" in n for n in rf.notes)


def test_adaptive_pooling_takes_the_widest_window_and_a_fractional_jump():
    f, _ = _field(nn.AdaptiveAvgPool2d(7), 2, 62, 62)
    # windows floor(62i/7) .. ceil(62(i+1)/7) - 1 are 9 or 10 wide; units are 62/7 apart
    assert f.rf == (10, 10) and f.jump == (62 / 7, 62 / 7) and f.start == (4, 4)
    f, _ = _field(nn.AdaptiveAvgPool2d(7), 2, 56, 56)  # divisible: 8 wide, 8 apart, as a plain pool
    assert f.rf == (8, 8) and f.jump == (8, 8) and f.snap is None


def test_reflection_padding_moves_the_first_centre_like_zero_padding():
    for pad in (nn.ReflectionPad2d((1, 2, 3, 0)), nn.ZeroPad2d((1, 2, 3, 0)), nn.ReplicationPad2d((1, 2, 3, 0))):
        f, rf = _field(nn.Sequential(conv(), pad), 2, 16, 16)
        assert f.rf == (3, 3) and f.start == (-3, -1) and not rf.unsupported, pad


def test_rf_view_reports_the_root_add():
    d = receptive_field(RootAdd(), input_size=(3, 32, 32)).to_dict()
    assert d["rf"] == 3


# --- up-sampling (issue 15): the field depends on the unit's position; every phase measured


def _thin(model):
    """The same geometry with one channel everywhere (convolutions and transposed convolutions
    keep kernel, stride, padding and dilation; batch norm goes): the input pixels a unit depends on
    do not depend on the channel counts, and back-propagating through VGG-wide layers is slow."""
    for name, m in list(model.named_modules()):
        parent, _, leaf = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            setattr(owner, leaf, type(m)(1, 1, m.kernel_size, m.stride, m.padding, dilation=m.dilation))
        elif isinstance(m, nn.BatchNorm2d):
            setattr(owner, leaf, nn.Identity())
    return model


def _avg_pools(model):
    """Max-pooling passes gradient to one position per window, so a single input would not show
    the whole window: the same windows averaged pass it to all (the field is the window's)."""
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.MaxPool2d):
            parent, _, leaf = name.rpartition(".")
            owner = model.get_submodule(parent) if parent else model
            setattr(owner, leaf, nn.AvgPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode))
    return model


def measured_windows(model, input_size, units):
    """The input rows and columns each output unit (y, x) depends on, by back-propagation with
    positive weights and a positive input (every ReLU open, no cancellation)."""
    model.eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    x = torch.rand(1, *input_size, requires_grad=True)
    out = model(x)
    out = out[-1] if isinstance(out, (list, tuple)) else out
    regions = []
    for y, x_ in units:
        (grad,) = torch.autograd.grad(out[:, :, y, x_].sum(), x, retain_graph=True)
        hit = grad.abs().sum((0, 1)) > 0
        rows, cols = hit.any(1).nonzero().flatten(), hit.any(0).nonzero().flatten()
        regions.append(((int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max()))))
    return out.shape[-2:], regions


@pytest.mark.parametrize("spec, input_size, widths", [
    ("unet@base=1", (1, 252, 252), (188, 204)),  # the values: 200 was the field of no unit
    ("fcn8s@num_classes=1", (3, 120, 120), None),  # transposed convolutions 4/2, 4/2, 16/8 and crops
    ("hourglass@stacks=2,features=2,num_joints=1", (3, 128, 128), None),  # nearest x2, adds, padding
])
def test_every_phase_of_an_up_sampled_field_equals_the_measured_one(spec, input_size, widths):
    from archlab.analysis.receptive_field import unit_window, headline

    tr, _ = archlab.trace.run.trace_model(spec, input_size=input_size)
    h = headline(tr, receptive_fields(tr))
    phase = h.field.phase
    assert phase is not None and phase[0] == phase[1]
    period = phase[0][0]
    assert period > 1  # the fields repeat over several units, not every unit
    model, size = archlab.build(spec), input_size
    if spec.startswith("fcn"):
        model, size = _thin(model), (1, *input_size[1:])
    _avg_pools(model)
    n = tr.values[h.value].shape[-1]
    first = max(0, n // 2 - period)
    units = [(first + r, first + r) for r in range(period)]
    out_hw, measured = measured_windows(model, size, units)
    assert tuple(out_hw) == tuple(tr.values[h.value].shape[-2:])
    seen = set()
    for (y, x_), (rows, cols) in zip(units, measured):
        expected = []
        for axis, o in enumerate((y, x_)):
            lo, hi = unit_window(phase[axis], o)
            seen.add(hi - lo + 1)
            expected.append((max(lo, 0), min(hi, input_size[axis + 1] - 1)))  # the input's border clips
        assert (rows, cols) == tuple(expected), (y, x_)
    lo, hi = min(seen), max(seen)
    d = receptive_field(spec, input_size=input_size, depth=1).to_dict()
    assert (d["rf_min"] if "rf_min" in d else d["rf_layer"]["rf_min"], d["rf"]) == (lo, hi) and lo < hi
    if widths:
        assert (lo, hi) == widths


def test_unet_field_varies_with_position_in_json_and_table():
    d = receptive_field("unet", res=252, depth=1).to_dict()
    top = d["rf_layer"]
    assert (d["rf"], top["rf_min"], top["rf_max"], top["period"]) == (204, 188, 204, 16)
    assert top["sees_padding"] is False
    rows = {r["name"]: r for r in d["layers"]}
    assert rows["up2"]["rf_min"] == rows["up2"]["rf"] == 188 and rows["up4"]["rf_min"] == 188
    assert rows["down1"]["period"] == 1 and rows["down1"]["rf_min"] == 5
    from archlab.report.receptive_field import render_rf
    text = render_rf(receptive_field("unet", res=252, depth=1), "table")
    assert "receptive field: 188 to 204 input pixels" in text and "188..204" in text
    assert "varies with position (period 16)" in text


def test_the_padding_note_needs_a_unit_that_reads_past_the_border():
    from archlab.report.receptive_field import render_rf
    text = render_rf(receptive_field("unet", res=188, depth=1), "table")
    assert "see padding" not in text and "no padding" in text  # unpadded convolutions only
    assert "units near the border see padding" in render_rf(receptive_field("resnet50", depth=1), "table")
    # a transposed convolution's border units miss neighbours: padding, as a padded convolution
    f, _ = _field(nn.Sequential(conv(k=2, s=2, p=0), nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1)), 2, 16, 16)
    from archlab.analysis.receptive_field import sees_padding
    assert sees_padding(f, (16, 16), (16, 16)) is True
    f, _ = _field(nn.Sequential(conv(k=2, s=2, p=0), nn.ConvTranspose2d(2, 2, 2, stride=2)), 2, 16, 16)
    assert sees_padding(f, (16, 16), (16, 16)) is False


@pytest.mark.parametrize("layers, widths, period", [
    ([conv(k=2, s=2, p=0), nn.Upsample(scale_factor=2)], (2, 2), 2),  # nearest: pairs read one unit
    ([conv(k=3, s=2, p=1), nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1)], (3, 5), 2),
    ([conv(k=2, s=2, p=0), nn.Upsample(scale_factor=2, mode="bilinear")], (4, 4), 2),
    ([nn.ConvTranspose2d(2, 2, 1, stride=2)], (1, 1), 2),  # odd units read nothing (only the bias)
    ([conv(k=2, s=2, p=0), nn.PixelShuffle(1)], (2, 2), 1),
])
def test_exact_windows_of_up_sampling_ops(layers, widths, period):
    from archlab.analysis.receptive_field import phase_widths
    f, _ = _field(nn.Sequential(*layers), 2, 16, 16)
    assert phase_widths(f.phase[0]) == widths and f.phase[0][0] == period


def test_an_up_sampled_field_measured_in_a_tiny_model():
    model = nn.Sequential(conv(k=3, s=2, p=1), nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1))
    f, _ = _field(model, 2, 16, 16)
    from archlab.analysis.receptive_field import unit_window
    _, measured = measured_windows(model, (2, 16, 16), [(6, 6), (7, 7)])
    for o, (rows, cols) in zip((6, 7), measured):
        assert rows == cols == unit_window(f.phase[0], o)


def test_a_1d_field_prints_as_one_number(cli):
    # Conv1d(k=5, stride 2) then Conv1d(k=3): rf 5 + (3 - 1) * 2 = 9, jump 2, first centre 2 + 1 * 2 = 4
    r = cli("rf", "torch.nn:Conv1d@in_channels=1,out_channels=2,kernel_size=11", "--input-size", "1,32")
    assert r.code == 0, r.err
    assert "receptive field: 11 input pixels at" in r.out and "jump 1, first centre at 5" in r.out, r.out
    res = archlab.receptive_field(nn.Sequential(nn.Conv1d(1, 2, 5, stride=2), nn.Conv1d(2, 2, 3)), input_size=(1, 32))
    from archlab.report.receptive_field import summary_lines

    assert summary_lines(res)[0].startswith("receptive field: 9 input pixels at"), summary_lines(res)
    assert "jump 2, first centre at 4" in summary_lines(res)[0]
    assert (res.rf["rf"], res.rf["jump"], res.rf["start"]) == (9, 2, 4)


class _TinyViT(nn.Module):
    """A patch embedding, then self-attention over the tokens: the convolutional field is the patch."""

    def __init__(self, d: int = 8, patch: int = 4, fused: bool = False):
        super().__init__()
        self.patch = nn.Conv2d(3, d, patch, stride=patch)
        self.qkv = nn.Linear(d, 3 * d)
        self.fused = fused

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)  # (N, tokens, d)
        q, k, v = self.qkv(t).chunk(3, dim=-1)
        if self.fused:
            return F.scaled_dot_product_attention(q, k, v)
        return (q @ k.transpose(-1, -2)).softmax(-1) @ v


@pytest.mark.parametrize("fused", [False, True])
def test_attention_is_noted_as_seeing_the_whole_input(cli, fused):
    from archlab.report.receptive_field import summary_lines

    res = archlab.receptive_field(_TinyViT(fused=fused), input_size=(3, 16, 16))
    lines = summary_lines(res)
    assert lines[0].startswith("receptive field: 4 input pixels at 'patch'"), lines
    assert any(line.startswith("note: attention") and "whole input" in line for line in lines), lines
    # a classifier's softmax and linear layers mix no positions: no such note for a CNN
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 14 * 14, 5), nn.Softmax(-1))
    assert not any("attention" in line for line in summary_lines(archlab.receptive_field(cnn, input_size=(3, 16, 16))))


def test_a_units_window_stops_where_a_truncating_layer_drops_the_last_pixels():
    """A 3x3 stride-2 convolution without padding on 8 pixels has 3 units reading 0-2, 2-4, 4-6:
    pixel 7 is read by none, so no later unit depends on it, although the affine window of the
    last unit after a padded 3x3 convolution (unit 3 of the first map, padding) reaches 8. Found by
    tests/test_rf_support.py on Inception v3 at 96 pixels (conv2d_3b read up to pixel 94, not 95)."""
    from archlab.analysis.receptive_field import unit_window
    model = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3, padding=1))
    tr = trace(model, torch.empty(1, 1, 8, 8, device="meta"))
    rf = receptive_fields(tr)
    out = tr.outputs[0]
    assert unit_window(rf.of(out).phase[0], 2) == (2, 8)  # the window on an unbounded input
    assert rf.cover[out] == ((0, 6), (0, 6))
    assert rf.window(out, (2, 2)) == ((2, 6), (2, 6)) and rf.window(out, (0, 1)) == ((0, 4), (0, 6))
    _, measured = measured_windows(model, (1, 8, 8), [(2, 2), (0, 1)])
    assert measured == [((2, 6), (2, 6)), ((0, 4), (0, 6))]


def test_a_unit_reading_only_padding_has_no_window():
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ZeroPad2d(4))
    tr = trace(model, torch.empty(1, 1, 8, 8, device="meta"))
    rf = receptive_fields(tr)
    assert rf.window(tr.outputs[0], (0, 6)) == (None, (1, 3))


def test_window_refuses_a_field_whose_exact_windows_were_not_followed():
    from archlab.analysis.receptive_field import Field, RFAnalysis
    rf = RFAnalysis({7: Field((3, 3), (1, 1), (0.0, 0.0))})  # phase None: past _MAX_PERIOD, say
    with pytest.raises(ValueError, match="exact windows"):
        rf.window(7, (0, 0))
