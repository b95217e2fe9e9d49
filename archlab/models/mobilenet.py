"""MobileNet and MobileNetV2.

* MobileNet: Howard et al. 2017, "MobileNets: Efficient Convolutional Neural
  Networks for Mobile Vision Applications", Table 1 (body architecture) and
  Table 4 ("Conv MobileNet": the same body with standard convolutions).
* MobileNetV2: Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear
  Bottlenecks", Table 2.

Width multiplier ``alpha``. MobileNet follows the official TF-slim
``mobilenet_v1.py``: every layer gets ``max(int(c * alpha), 8)`` channels
(truncation, ``min_depth=8``). MobileNetV2 follows the official code and
torchvision: ``make_divisible(c * alpha, 8)``, except that the last 1x1
convolution is never made narrower than 1280 (paper, Sec. 6.1).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
from torch import nn

from archlab.errors import UserError
from archlab.models.layers import ConvBNAct, check_positive, make_divisible
from archlab.models._registry import Reference, register_model

MOBILENET_PAPER = "Howard et al. 2017, MobileNets, Table 1"
MOBILENET_V2_PAPER = "Sandler et al. 2018, MobileNetV2, Table 2"


# --------------------------------------------------------------------------
# MobileNet (v1)
# --------------------------------------------------------------------------


class Layer(NamedTuple):
    """One row of MobileNet Table 1. ``filter_shape`` is written as in the
    paper: kh x kw x Cin x Cout for a convolution, kh x kw x C for a depthwise
    one, Cin x Cout for the FC layer. ``repeat`` is the "5x" of the table: a
    depthwise row and the pointwise row after it repeat together."""

    type: str
    stride: int
    filter_shape: tuple[int, ...]
    input_size: tuple[int, int, int]
    repeat: int = 1


# MobileNet, Table 1 ("MobileNet Body Architecture").
# Type,     Stride, Filter Shape,        Input Size,        repeat
MOBILENET_TABLE1 = (
    Layer("Conv",     2, (3, 3, 3, 32),     (224, 224, 3)),
    Layer("Conv dw",  1, (3, 3, 32),        (112, 112, 32)),
    Layer("Conv",     1, (1, 1, 32, 64),    (112, 112, 32)),
    Layer("Conv dw",  2, (3, 3, 64),        (112, 112, 64)),
    Layer("Conv",     1, (1, 1, 64, 128),   (56, 56, 64)),
    Layer("Conv dw",  1, (3, 3, 128),       (56, 56, 128)),
    Layer("Conv",     1, (1, 1, 128, 128),  (56, 56, 128)),
    Layer("Conv dw",  2, (3, 3, 128),       (56, 56, 128)),
    Layer("Conv",     1, (1, 1, 128, 256),  (28, 28, 128)),
    Layer("Conv dw",  1, (3, 3, 256),       (28, 28, 256)),
    Layer("Conv",     1, (1, 1, 256, 256),  (28, 28, 256)),
    Layer("Conv dw",  2, (3, 3, 256),       (28, 28, 256)),
    Layer("Conv",     1, (1, 1, 256, 512),  (14, 14, 256)),
    Layer("Conv dw",  1, (3, 3, 512),       (14, 14, 512),  5),
    Layer("Conv",     1, (1, 1, 512, 512),  (14, 14, 512),  5),
    Layer("Conv dw",  2, (3, 3, 512),       (14, 14, 512)),
    Layer("Conv",     1, (1, 1, 512, 1024), (7, 7, 512)),
    # The paper prints "Conv dw / s2" here, but the input is already 7x7 and
    # the next row's input is 7x7 too: the official code uses stride 1.
    Layer("Conv dw",  1, (3, 3, 1024),      (7, 7, 1024)),
    Layer("Conv",     1, (1, 1, 1024, 1024), (7, 7, 1024)),
    Layer("Avg Pool", 1, (7, 7),            (7, 7, 1024)),
    Layer("FC",       1, (1024, 1000),      (1, 1, 1024)),
)  # fmt: skip


class DepthwiseSeparable(nn.Sequential):
    """A depthwise 3x3 convolution (``dw``) then a pointwise 1x1 one (``pw``),
    each followed by BN and ReLU (MobileNet, Fig. 3 right)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.dw = ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pw = ConvBNAct(in_channels, out_channels, 1)


class MobileNet(nn.Module):
    """``features`` holds ``conv0`` (the stem) and ``conv1`` .. ``conv13``, one per
    depthwise-separable pair of Table 1 (the numbering of TF-slim's
    ``Conv2d_1_depthwise`` / ``Conv2d_1_pointwise``). With ``standard_conv``
    each pair is one full 3x3 convolution, the paper's "Conv MobileNet"."""

    def __init__(self, alpha: float = 1.0, num_classes: int = 1000, standard_conv: bool = False) -> None:
        super().__init__()
        _check_alpha(alpha)
        check_positive("num_classes", num_classes)

        def depth(c: int) -> int:
            # TF-slim mobilenet_v1: max(int(d * depth_multiplier), min_depth=8).
            return max(int(c * alpha), 8)

        stem, *body = [row for row in MOBILENET_TABLE1 if row.type in ("Conv", "Conv dw")]
        pool_row, fc_row = MOBILENET_TABLE1[-2:]

        k, _, c_in, c_out = stem.filter_shape
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv0"] = ConvBNAct(c_in, depth(c_out), k, stem.stride)
        channels = depth(c_out)
        index = 0
        for dw, pw in zip(body[0::2], body[1::2]):
            assert dw.type == "Conv dw" and pw.type == "Conv" and dw.repeat == pw.repeat
            out = depth(pw.filter_shape[3])
            for _ in range(dw.repeat):
                index += 1
                if standard_conv:
                    layers[f"conv{index}"] = ConvBNAct(channels, out, dw.filter_shape[0], dw.stride)
                else:
                    layers[f"conv{index}"] = DepthwiseSeparable(channels, out, dw.stride)
                channels = out
        self.features = nn.Sequential(layers)
        # Table 1's 7x7 average pool; adaptive so that the resolution
        # multiplier rho (inputs of 192, 160, 128) works with the same head.
        assert pool_row.type == "Avg Pool"
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(depth(fc_row.filter_shape[0]), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.avgpool(self.features(x))))


@register_model(
    family="mobilenet",
    paper=MOBILENET_PAPER,
    reference=Reference(
        4_231_976, "Keras applications MobileNet(alpha=1.0), trainable params; osmr/imgclsmob mobilenet_w1"
    ),
    note="width multiplier alpha as TF-slim: max(int(c*alpha), 8)",
)
def mobilenet(*, alpha: float = 1.0, num_classes: int = 1000) -> MobileNet:
    return MobileNet(alpha, num_classes)


@register_model(
    family="mobilenet",
    paper="Howard et al. 2017, MobileNets, Table 4 (Conv MobileNet)",
    note="Table 1 with each depthwise-separable pair replaced by one standard 3x3 conv + BN + ReLU "
    "(paper: 29.3M params, 4866M mult-adds)",
)
def mobilenet_conv(*, alpha: float = 1.0, num_classes: int = 1000) -> MobileNet:
    return MobileNet(alpha, num_classes, standard_conv=True)


# --------------------------------------------------------------------------
# MobileNetV2
# --------------------------------------------------------------------------


class Bottleneck(NamedTuple):
    t: int  # expansion factor
    c: int  # output channels
    n: int  # repeats
    s: int  # stride of the first repeat


# MobileNetV2, Table 2: the "bottleneck" rows. The conv2d rows around them
# (3x3/2 to 32 channels first, 1x1 to 1280 last) are the constants below.
# t, c, n, s
MOBILENET_V2_TABLE2 = (
    Bottleneck(1, 16, 1, 1),
    Bottleneck(6, 24, 2, 2),
    Bottleneck(6, 32, 3, 2),
    Bottleneck(6, 64, 4, 2),
    Bottleneck(6, 96, 3, 1),
    Bottleneck(6, 160, 3, 2),
    Bottleneck(6, 320, 1, 1),
)  # fmt: skip
MOBILENET_V2_STEM = 32
MOBILENET_V2_LAST = 1280


class InvertedResidual(nn.Module):
    """MobileNetV2's bottleneck (Table 1 of the paper): ``expand`` 1x1 (absent when
    t = 1), ``depthwise`` 3x3 carrying the stride, ``project`` 1x1 with no
    activation (the linear bottleneck); a shortcut when the shapes allow it."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_residual = stride == 1 and in_channels == out_channels
        # t = 1 (the first row of Table 2) has no expansion layer at all.
        self.expand = ConvBNAct(in_channels, hidden, 1, act=nn.ReLU6) if expand_ratio != 1 else None
        self.depthwise = ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6)
        self.project = ConvBNAct(hidden, out_channels, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.project(self.depthwise(out))
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """``features`` holds ``conv1`` (3x3/2 stem), ``bottleneck1`` .. ``bottleneck7``
    (one per row of Table 2, each a Sequential of ``n`` InvertedResidual) and
    ``conv2`` (the 1x1 to 1280); then ``avgpool`` and ``classifier``."""

    def __init__(self, alpha: float = 1.0, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        _check_alpha(alpha)
        check_positive("num_classes", num_classes)
        channels = make_divisible(MOBILENET_V2_STEM * alpha, 8)
        # "for multipliers less than one, we apply width multiplier to all
        # layers except the very last convolutional layer" (Sec. 6.1).
        last = make_divisible(MOBILENET_V2_LAST * max(1.0, alpha), 8)

        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv1"] = ConvBNAct(3, channels, 3, 2, act=nn.ReLU6)
        for i, row in enumerate(MOBILENET_V2_TABLE2, start=1):
            out = make_divisible(row.c * alpha, 8)
            blocks = []
            for j in range(row.n):
                blocks.append(InvertedResidual(channels, out, row.s if j == 0 else 1, row.t))
                channels = out
            layers[f"bottleneck{i}"] = nn.Sequential(*blocks)
        layers["conv2"] = ConvBNAct(channels, last, 1, act=nn.ReLU6)
        self.features = nn.Sequential(layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        # The paper's final "conv2d 1x1, k" on a 1x1 map is this linear layer.
        self.classifier = nn.Sequential(
            OrderedDict(dropout=nn.Dropout(dropout), fc=nn.Linear(last, num_classes))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


@register_model(
    family="mobilenet",
    paper=MOBILENET_V2_PAPER,
    reference=Reference(3_504_872, "torchvision mobilenet_v2"),
    note="width multiplier alpha: make_divisible(c*alpha, 8); last conv 1280*max(1, alpha)",
)
def mobilenet_v2(*, alpha: float = 1.0, num_classes: int = 1000) -> MobileNetV2:
    return MobileNetV2(alpha, num_classes)


# --------------------------------------------------------------------------


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha <= 4:
        raise UserError(f"width multiplier alpha must be in (0, 4], got {alpha}")