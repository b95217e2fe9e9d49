"""archlab/analysis/ops.py: op traits as registry tables, and the one classification of convolutions
that the per-layer notation, the timing kinds and the prediction kinds read."""

import pytest
import torch
from torch import nn

from archlab.analysis import ops
from archlab.analysis.per_layer import filter_shape, is_depthwise
from archlab.errors import UserError
from archlab.measure.predict import conv_kind, roofline_kind
from archlab.measure.profile import timing_kind
from archlab.trace.run import trace


def _conv_op(conv: nn.Conv2d, size: int = 16):
    tr = trace(conv, torch.empty(1, conv.in_channels, size, size, device="meta"))
    return next(op for op in tr.ops if op.name == "convolution"), tr


@pytest.mark.parametrize("table, yes, no", [
    (ops.FILLS, ["aten.zeros.default", "aten.arange.start", "aten.randn_like.default"], ["aten.view.default"]),
    (ops.OVERWRITES, ["aten.copy_.default", "aten.zero_.default"], ["aten.copy.default", "aten.add_.Tensor"]),
    (ops.GATHERS, ["aten.embedding.default", "aten.index.Tensor"], ["aten.cat.default"]),
    (ops.SEE_THROUGH, ["aten.view.default", "aten.permute.default", "aten._to_copy.default"], ["aten.add.Tensor"]),
    (ops.GRADIENT_PASS, ["aten.add.Tensor", "aten.t.default"], ["aten.mm.default", "aten.mul.Tensor"]),
    (ops.EXP_ACTIVATIONS, ["aten.silu.default", "aten.sigmoid_.default"], ["aten.relu.default"]),
])
def test_traits(table, yes, no):
    assert all(ops.has(table, t) for t in yes) and not any(ops.has(table, t) for t in no)
    assert not ops.has(table, "torchvision.nms.default")  # a trait names aten's op, not any namespace's


def test_a_trait_registered_twice_raises():
    with pytest.raises(UserError, match="already has a 'fill' trait"):
        ops.FILLS.register("aten::zeros", True)
    with pytest.raises(UserError, match="already has"):
        ops._trait("twice", "view", "view")


@pytest.mark.parametrize("conv, notation, timing, predicted", [
    (nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), "3x3x8 dw", "depthwise conv 3x3", "depthwise 3x3 s2"),
    (nn.Conv2d(8, 8, 5, padding=2, groups=8), "5x5x8 dw", "depthwise conv 5x5", "depthwise 5x5 s1"),
    (nn.Conv2d(8, 16, 1), "1x1x8x16", "pointwise conv 1x1", "pointwise 1x1"),
    (nn.Conv2d(8, 16, 1, stride=2), "1x1x8x16", "pointwise conv 1x1", "pointwise 1x1 s2"),
    (nn.Conv2d(3, 16, 3), "3x3x3x16", "conv 3x3", "stem"),
    (nn.Conv2d(8, 16, 3, groups=2), "3x3x4x16 g2", "grouped conv 3x3", "grouped"),
    # where they part: one filter per input map with two output maps each is "depthwise" to the
    # timing and the prediction (its kernel's cost per MAC), a grouped layer in the course's notation
    (nn.Conv2d(8, 16, 3, groups=8), "3x3x1x16 g8", "depthwise conv 3x3", "depthwise 3x3 s1"),
])
def test_three_labels_from_one_classification(conv, notation, timing, predicted):
    attrs = {k: getattr(conv, k) for k in ("kernel_size", "stride", "padding", "dilation", "groups", "in_channels",
                                           "out_channels")}
    assert filter_shape(attrs) == notation
    assert is_depthwise(attrs) == notation.endswith(" dw")
    assert timing_kind("Conv2d", attrs) == timing
    op, tr = _conv_op(conv)
    assert conv_kind(op, tr) == predicted == roofline_kind(op, tr, "conv")


def test_a_transposed_per_channel_convolution_is_grouped_to_the_prediction():
    conv = nn.ConvTranspose2d(8, 8, 3, groups=8)
    op, tr = _conv_op(conv)
    shape = ops.ConvShape.of_op(op, tr)
    assert shape.per_channel and shape.transposed and conv_kind(op, tr) == "grouped"
