"""count --training: the backward pass traced on meta, checked against PyTorch's FlopCounterMode on every
registered model, and by hand on small models (frozen layers, depthwise, shared weights, linear)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archlab
from archlab.analysis.count import count_training
from archlab.trace.recorder import nested_tensors
from archlab.spec import Inputs
from archlab.trace.run import build, trace_training
from archlab.errors import UserError
from archlab.models.catalog import list_models
from conftest import assert_one_line_error

# the smallest of 64, 96, 224 (or the model's own input) at which each model runs; 64 unless named
RES = {"alexnet": None, "bn_inception": 224, "googlenet": 224, "inception_resnet_v2": 96, "inception_v2": None,
       "inception_v3": 96, "unet": 224, "lenet": None, "lenet5": None,
       **{v: 224 for v in ("vgg11", "vgg11_bn", "vgg11_lrn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg16c",
                           "vgg19", "vgg19_bn")}}
# the slowest to trace twice (forward + backward, archlab's and FlopCounterMode's): run under -m slow
SLOW = {"hourglass", "inception_resnet_v2", "densenet161", "densenet169", "densenet201", "efficientnet_b1",
        "efficientnet_b2", "efficientnet_b3", "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
        "efficientnet_phi", "resnet101", "resnet101_v1_5", "resnet152", "resnet152_v1_5"}


def _names() -> list[str]:
    return [m if isinstance(m, str) else m.name for m in list_models()]


def _flop_counter_total(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """FlopCounterMode's total for one training step (training-mode forward, loss = sum of the floating
    outputs, backward) on the meta device."""
    model.train()
    with FlopCounterMode(display=False) as counter:
        out = model(*inputs)
        loss = sum(t.sum() for t in nested_tensors(out) if t.is_floating_point() and t.requires_grad)
        loss.backward()
    return counter.get_total_flops()


def _flop_counter_grouped_excess(tt) -> int:
    """What FlopCounterMode's formula adds for grouped weight gradients: it counts a grouped convolution's
    weight gradient as conv(x^T, grad_out^T) with all Cin input channels paired with every output channel,
    which is `groups` times the true count Cout * Cin/groups * k * N * H'W' (see test_depthwise_by_hand)."""
    excess = 0
    for op in tt.trace.ops[tt.backward_start:]:
        if op.name == "convolution_backward" and op.attrs["output_mask"][1] and op.attrs["groups"] > 1:
            g, x, w = (tt.trace.values[v].shape for v in op.inputs[:3])
            true = math.prod(g) * math.prod(w[1:])
            excess += (op.attrs["groups"] - 1) * true
    return 2 * excess


def _params(name: str):
    marks = [pytest.mark.slow] if name in SLOW else []
    return pytest.param(name, marks=marks, id=name)


def test_every_model_is_listed():
    assert set(RES) <= set(_names())
    assert set(SLOW) <= set(_names())


@pytest.mark.parametrize("name", [_params(n) for n in _names()])
def test_training_macs_match_flop_counter(name):
    """2 x training MACs == FlopCounterMode's total over forward + backward, exactly; where the model has
    grouped convolutions, FlopCounterMode's total also has its grouped weight-gradient excess (by formula)."""
    built = build(name, Inputs(), res=RES.get(name, 64), batch=2)
    tt = trace_training(built.module, built.args)
    result = count_training(tt, built.label)
    assert result.status == "complete", result.unsupported_ops
    fresh = build(name, Inputs(), res=RES.get(name, 64), batch=2)
    expected = _flop_counter_total(fresh.module, fresh.args)
    assert 2 * result.training_macs + _flop_counter_grouped_excess(tt) == expected
    # the rows of the model's children and what lies outside them add up to the totals
    top = [l for l in result.layers if l.depth == 1]
    assert sum(l.input_grad_macs for l in top) <= result.training.input_grad_macs
    assert sum(l.weight_grad_macs for l in top) <= result.training.weight_grad_macs
    # the forward of a training step is the forward archlab counts
    assert result.macs == archlab.count(name, res=RES.get(name, 64), batch=2).macs


def test_depthwise_by_hand():
    # 1x1 conv 3->8, then a 3x3 depthwise conv (groups 8), input 2x3x10x10, padding 1: every map 10x10
    model = nn.Sequential(nn.Conv2d(3, 8, 1, bias=False), nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False))
    r = archlab.count(model, input_size=(3, 10, 10), batch=2, training=True)
    pointwise = 2 * 8 * 10 * 10 * 3  # N * Cout * H * W * Cin
    depthwise = 2 * 8 * 10 * 10 * 9  # N * C * H * W * k^2 (Cin/groups = 1)
    assert r.macs == pointwise + depthwise
    first, dw = r.layers
    assert (first.input_grad_macs, first.weight_grad_macs) == (0, pointwise)  # the input needs no gradient
    # dw's weight gradient: each of its 8*9 weights sums x * grad over N*H*W = 200 positions
    assert (dw.input_grad_macs, dw.weight_grad_macs) == (depthwise, 8 * 9 * 2 * 10 * 10)
    assert r.training_macs == pointwise + depthwise + pointwise + 2 * depthwise
    # FlopCounterMode pairs all 8 input channels with each output channel in the weight gradient: 8x too many
    with torch.device("meta"):
        fresh = nn.Sequential(nn.Conv2d(3, 8, 1, bias=False), nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False))
    total = _flop_counter_total(fresh, (torch.empty(2, 3, 10, 10, device="meta"),))
    assert total == 2 * (r.training_macs + 7 * depthwise)


def test_grouped_by_hand():
    # groups 2: each output channel sees Cin/groups = 2 of the 4 input channels
    model = nn.Sequential(nn.Conv2d(2, 4, 1, bias=False), nn.Conv2d(4, 6, 3, groups=2, bias=False))
    r = archlab.count(model, input_size=(2, 7, 7), batch=1, training=True)
    grouped = 1 * 6 * 5 * 5 * 2 * 9  # N * Cout * H'W' * Cin/groups * k^2
    assert r.layers[1].macs == grouped
    assert (r.layers[1].input_grad_macs, r.layers[1].weight_grad_macs) == (grouped, grouped)


def test_linear_by_hand():
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    r = archlab.count(model, input_size=(4,), batch=2, training=True)
    assert r.macs == 2 * 4 * 5 + 2 * 5 * 3
    l1, _, l2 = r.layers
    assert (l1.input_grad_macs, l1.weight_grad_macs) == (0, 40)  # the first layer: weight gradient only
    assert (l2.input_grad_macs, l2.weight_grad_macs) == (30, 30)
    assert r.training_macs == 70 + 40 + 60
    d = r.to_dict()
    for key, value in (("forward_macs", 70), ("backward_macs", 100), ("input_grad_macs", 30),
                       ("weight_grad_macs", 70), ("training_macs", 170)):
        assert d[key] == value
    assert {k: d["layers"][2][k] for k in ("forward_macs", "backward_macs", "input_grad_macs", "weight_grad_macs",
                                           "training_macs")} == {"forward_macs": 30, "backward_macs": 60,
                                                                 "input_grad_macs": 30, "weight_grad_macs": 30,
                                                                 "training_macs": 90}
    assert "not exactly 3" not in d["training"]["why_not_3"]  # the sentence gives the reason, the CLI the words
    assert "first layer" in d["training"]["why_not_3"]


def test_shared_weight_gets_both_gradients():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4, bias=False)

        def forward(self, x):
            return self.fc(self.fc(x))

    r = archlab.count(Twice(), input_size=(4,), batch=2, training=True)
    assert r.macs == 2 * 32
    # the first call: weight gradient only; the second: both; the two weight gradients add into one .grad
    assert (r.training.input_grad_macs, r.training.weight_grad_macs) == (32, 64)


def test_frozen_backbone_by_hand():
    # everything but the classifier frozen: the backward is fc's weight gradient, nothing else
    r = archlab.count("resnet18", res=64, batch=2, training=True, freeze=("conv1", "bn1", "layer*"))
    assert r.training.input_grad_macs == 0
    assert r.training.weight_grad_macs == 2 * 512 * 1000
    assert r.trainable_params == 512 * 1000 + 1000
    assert r.training.frozen_params == 11_689_512 - 513_000
    fc = next(l for l in r.layers if l.name == "fc")
    assert (fc.input_grad_macs, fc.weight_grad_macs) == (0, 2 * 512 * 1000)
    # FlopCounterMode agrees when the same parameters have requires_grad False
    built = build("resnet18", Inputs(), res=64, batch=2)
    for name, p in built.module.named_parameters():
        if not name.startswith("fc."):
            p.requires_grad_(False)
    assert _flop_counter_total(built.module, built.args) == 2 * r.training_macs


def test_frozen_middle_still_passes_gradients():
    # conv1 trains, so layer1 must compute its input gradient, though its own weights are frozen
    r = archlab.count("resnet18", res=64, batch=2, training=True, freeze=("layer1",), depth=1)
    layer1 = next(l for l in r.layers if l.name == "layer1")
    assert (layer1.input_grad_macs, layer1.weight_grad_macs) == (layer1.macs, 0)
    conv1 = next(l for l in r.layers if l.name == "conv1")
    assert (conv1.input_grad_macs, conv1.weight_grad_macs) == (0, conv1.macs)


def test_user_model_untouched():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5))
    model.eval()
    archlab.count(model, input_size=(3, 8, 8), batch=2, training=True, freeze=("0",))
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert not any(m.training for m in model.modules())
    assert model[1].num_batches_tracked.item() == 0


def test_errors():
    with pytest.raises(UserError, match="--training"):
        archlab.count("resnet18", freeze=("layer1",))
    with pytest.raises(UserError, match="no module of the model matches"):
        archlab.count("resnet18", res=64, training=True, freeze=("nope*",))
    with pytest.raises(UserError, match="fvcore"):
        archlab.count("resnet18", training=True, engine="fvcore")


def test_cli_training(cli):
    r = cli("count", "lenet5", "--training", "--depth", "1")
    assert r.code == 0, r.err
    assert "training / forward" in r.out and "input-grad MACs" in r.out
    r = cli("count", "lenet5", "--training", "-f", "json")
    import json

    d = json.loads(r.out)
    assert d["training_macs"] == d["forward_macs"] + d["input_grad_macs"] + d["weight_grad_macs"]
    assert all("training_macs" in layer for layer in d["layers"])
    r = cli("count", "lenet5", "--freeze", "c1")
    assert r.code == 2 and "--training" in r.err


# one model for each family of backward ops: index_add (LeNet's connection tables), slice_backward (U-Net's
# crops), 3-d pooling (local response norm), depthwise and SiLU/sigmoid (MobileNetV2, EfficientNet), dropout
# and concatenation (VGG, DenseNet, Inception), max pooling and residual sums (ResNet)
FAMILIES = ("lenet5", "unet", "vgg11_lrn", "mobilenet_v2", "efficientnet_b0", "densenet121", "inception_v3",
            "resnet18")


def _imports_after_training_counts(names) -> list[str]:
    import subprocess
    import sys

    code = (
        "import sys, archlab\n"
        f"res = {RES!r}\n"
        f"for n in {list(names)!r}:\n"
        "    archlab.count(n, res=res.get(n, 64), batch=2, depth=0, training=True)\n"
        "print('torch._dynamo' in sys.modules, 'sympy' in sys.modules)"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


def test_training_trace_does_not_import_dynamo_or_sympy():
    # `count --training` must stay within 1.5x of `count`: those imports cost ~2 s
    assert _imports_after_training_counts(FAMILIES) == ["False", "False"]


@pytest.mark.slow
def test_no_model_of_the_zoo_imports_dynamo_or_sympy_in_training():
    assert _imports_after_training_counts(_names()) == ["False", "False"]


@pytest.mark.parametrize("build", [
    lambda: nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 4, 3, groups=2), nn.Hardswish(), nn.AdaptiveAvgPool2d(1)),
    lambda: nn.Sequential(nn.ConvTranspose2d(3, 4, 2, stride=2), nn.SiLU(), nn.AvgPool2d(2), nn.Upsample(scale_factor=2),
                          nn.Sigmoid(), nn.Dropout(0.3), nn.Flatten(), nn.Linear(4 * 24 * 24, 5), nn.Softmax(-1)),
])
def test_backward_shapes_match_real_gradients(build):
    """The shape rules of the backward ops (archlab's, not PyTorch's meta kernels): every traced gradient of a
    parameter has the shape the real backward gives it."""
    torch.manual_seed(0)
    model = build()
    x = torch.randn(2, 3, 12, 12)
    model.train()
    model(x).sum().backward()
    real = {n: tuple(p.grad.shape) for n, p in model.named_parameters()}
    tt = trace_training(model, x)
    traced = sorted(tt.trace.values[g].shape for g in tt.param_grads)
    assert traced == sorted(real.values())


def test_compare_and_analyze_accept_the_training_view(cli):
    import json

    r = cli("compare", "lenet5", "resnet18", "--training", "-f", "json")
    assert r.code == 0, r.err
    rows = {row["model"]: row for row in json.loads(r.out)}
    assert rows["resnet18"]["training_macs"] == archlab.count("resnet18", training=True).training_macs
    assert rows["lenet5"]["training_peak_bytes"] > 0 and rows["lenet5"]["optimizer"] == "sgd"
    r = cli("compare", "lenet5", "resnet18", "--optimizer", "adam")
    assert r.code == 2 and "--training" in r.err
    report = archlab.analyze("resnet18", analyses=("count", "training"), res=64, batch=2, training=True,
                             optimizer="adam", freeze=("layer1",))
    d = report.to_dict()
    assert d["count"]["training_macs"] == report.count.training_macs
    assert d["training"]["optimizer"] == "adam" and d["training"]["frozen"] == ["layer1"]
    assert "training peak" in report._repr_markdown_()


def test_nothing_to_back_propagate_is_one_line(cli):
    # PyTorch's loss.backward() raises when no output needs a gradient: say so, do not invent a step
    assert_one_line_error(cli("count", "torch.nn:Identity", "--input-size", "4", "--training"),
                          "nothing to back-propagate")
    assert_one_line_error(cli("count", "lenet5", "--training", "--freeze", "*"), "nothing to back-propagate")
    with pytest.raises(UserError, match="nothing to back-propagate"):
        archlab.count(_ReturnsInt(), input_size=(4,), training=True)


class _ReturnsInt(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return int(self.fc(x).shape[-1])


class _CancellingAttention(nn.Module):
    """q @ k^T gives two input gradients and no weight gradient: exactly what the scale s lets the
    projections' input gradients make up, so training / forward is exactly 3."""

    def __init__(self, d: int = 4):
        super().__init__()
        self.s = nn.Parameter(torch.ones(d))
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)

    def forward(self, x):
        x = x * self.s
        return self.q(x) @ self.k(x).transpose(-1, -2)


def test_ratio_of_exactly_3_is_not_called_not_exactly_3(cli):
    t, d = 3, 4
    r = archlab.count(_CancellingAttention(d), input_size=(t, d), batch=1, training=True)
    assert r.macs == 2 * t * d * d + t * t * d
    assert r.training_macs == 3 * r.macs  # in: 2Td^2 + 2T^2d, weight: 2Td^2
    from archlab.report.count import training_lines

    row = next(row for row in training_lines(r) if row[0] == "training / forward")
    assert row[1] == "3.000" and "not exactly 3" not in row[2] and "exactly 3" in row[2]
    assert "not exactly" not in r.training_note()


def test_a_step_without_forward_macs_has_no_ratio(cli):
    r = cli("count", "torch.nn:BatchNorm1d@num_features=4", "--input-size", "4", "--batch", "2", "--training")
    assert r.code == 0, r.err
    assert "training / forward             -  no ratio: the forward has no MACs" in r.out
