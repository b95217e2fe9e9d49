"""EfficientNet: Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks", Table 1 (the B0 baseline) and Sec. 3.3
(compound scaling: depth d = alpha**phi, width w = beta**phi, resolution
r = gamma**phi, with alpha = 1.2, beta = 1.1, gamma = 1.15 found at phi = 1).

The layers follow the official TF code as torchvision re-implements it, so that
the parameter counts equal torchvision's:

* channels of every stage (and the stem) are ``make_divisible(c * w, 8)``;
  layers per stage are ``ceil(L * d)``; the stem and head are never repeated;
* MBConv = expand 1x1 (absent for MBConv1) + depthwise kxk (carrying the
  stride) + squeeze-and-excitation to ``max(1, C_in // 4)`` channels, where
  C_in is the block's input width, not its expanded width + linear project 1x1;
  a shortcut when stride 1 and C_in == C_out;
* the head conv has ``4 * make_divisible(320 * w, 8)`` channels (1280 for B0).

Stochastic depth (drop-connect on the residual branch) is a training-time
regulariser without parameters or inference cost; it is left out.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import NamedTuple

import torch
from torch import nn

from archlab.errors import UserError
from archlab.models.layers import ConvBNAct, check_positive, make_divisible
from archlab.models._registry import Reference, register_model

PAPER = "Tan & Le 2019, EfficientNet, Table 1"


class Stage(NamedTuple):
    stage: int
    operator: str
    resolution: int  # H = W of the stage's input, at 224
    channels: int
    layers: int
    kernel: int
    stride: int
    expand: int  # MBConv expansion ratio (the 1 or 6 of "MBConv1/6"); 0 for plain convs


# EfficientNet-B0, Table 1, plus the kernel, stride and expansion ratio that
# the operator names and the resolution column imply. (The course's copy prints
# 28x28 for stage 6; the paper and the strides give 14x14.)
# Stage, Operator,                Resolution, #Channels, #Layers, kernel, stride, expand
EFFICIENTNET_B0_TABLE1 = (
    Stage(1, "Conv3x3",                224,  32,   1, 3, 2, 0),
    Stage(2, "MBConv1, k3x3",          112,  16,   1, 3, 1, 1),
    Stage(3, "MBConv6, k3x3",          112,  24,   2, 3, 2, 6),
    Stage(4, "MBConv6, k5x5",           56,  40,   2, 5, 2, 6),
    Stage(5, "MBConv6, k3x3",           28,  80,   3, 3, 2, 6),
    Stage(6, "MBConv6, k5x5",           14, 112,   3, 5, 1, 6),
    Stage(7, "MBConv6, k5x5",           14, 192,   4, 5, 2, 6),
    Stage(8, "MBConv6, k3x3",            7, 320,   1, 3, 1, 6),
    Stage(9, "Conv1x1 & Pooling & FC",   7, 1280,  1, 1, 1, 0),
)  # fmt: skip


class Coefficients(NamedTuple):
    width: float
    depth: float
    resolution: int
    dropout: float


# The official B0..B7 coefficients (TF reference code, efficientnet_params);
# they round the compound rule rather than follow it exactly.
# model, width, depth, resolution, dropout
EFFICIENTNET_COEFFICIENTS = {
    "b0": Coefficients(1.0, 1.0, 224, 0.2),
    "b1": Coefficients(1.0, 1.1, 240, 0.2),
    "b2": Coefficients(1.1, 1.2, 260, 0.3),
    "b3": Coefficients(1.2, 1.4, 300, 0.3),
    "b4": Coefficients(1.4, 1.8, 380, 0.4),
    "b5": Coefficients(1.6, 2.2, 456, 0.4),
    "b6": Coefficients(1.8, 2.6, 528, 0.5),
    "b7": Coefficients(2.0, 3.1, 600, 0.5),
}  # fmt: skip

# BatchNorm epsilon: the TF reference uses 1e-3 everywhere; torchvision keeps
# PyTorch's 1e-5 for b0..b4 (weights ported from timm) and 1e-3 for b5..b7
# (ported from TF). No effect on any count; matched to torchvision here.
_TORCHVISION_BN_EPS = {"b5": 1e-3, "b6": 1e-3, "b7": 1e-3}


class ScaledStage(NamedTuple):
    operator: str
    channels: int
    layers: int


def _round_stage_depth(layers: int, depth: float) -> int:
    # ceil as in the TF code; rounded first so that float noise such as
    # 3 * 1.1 = 3.3000000000000003 never adds a layer (it does not for B0..B7).
    return int(math.ceil(round(layers * depth, 6)))


def scaled_stages(width: float, depth: float) -> list[ScaledStage]:
    """Table 1 after scaling: (operator, channels, layers) of the 9 stages."""
    if not (math.isfinite(width) and width > 0 and math.isfinite(depth) and depth > 0):
        raise UserError(f"width and depth multipliers must be positive, got width={width}, depth={depth}")
    stem, *mbconv, head = EFFICIENTNET_B0_TABLE1
    rows = [ScaledStage(stem.operator, make_divisible(stem.channels * width, 8), stem.layers)]
    for s in mbconv:
        rows.append(ScaledStage(s.operator, make_divisible(s.channels * width, 8), _round_stage_depth(s.layers, depth)))
    # torchvision: 4x the last stage's width (1280 = 4 x 320); the TF code
    # rounds 1280 * w instead, which gives the same for B0..B7.
    rows.append(ScaledStage(head.operator, 4 * rows[-1].channels, head.layers))
    return rows


def compound_coefficients(
    phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15
) -> tuple[float, float, float]:
    """(d, w, r) = (alpha**phi, beta**phi, gamma**phi), EfficientNet Eq. 3."""
    if not 0 <= phi <= 20:
        raise UserError(f"compound coefficient phi must be in [0, 20], got {phi}")
    for key, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not (math.isfinite(value) and value >= 1):
            raise UserError(f"{key} must be a finite number >= 1 (Eq. 3 requires alpha, beta, gamma >= 1), got {value}")
    return alpha**phi, beta**phi, gamma**phi


def compound_resolution(phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15) -> int:
    """Input side R = 224 * r, rounded half up (phi = 1: 257.6 -> 258)."""
    _, _, r = compound_coefficients(phi, alpha, beta, gamma)
    return int(math.floor(224 * r + 0.5))


class SqueezeExcite(nn.Module):
    """Hu et al. 2018: ``squeeze`` (global average pool), ``fc1`` + SiLU,
    ``fc2`` + sigmoid ``gate``, then the input scaled channel-wise. The two FCs
    are 1x1 convolutions with bias, as in the TF and torchvision code."""

    def __init__(self, channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = nn.SiLU(inplace=True)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.squeeze(x)))))


class MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-and-excitation: ``expand``
    (None for MBConv1), ``depthwise``, ``se``, ``project`` (linear)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, expand_ratio: int, bn_eps: float
    ) -> None:
        super().__init__()
        hidden = make_divisible(in_channels * expand_ratio, 8)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.expand = (
            ConvBNAct(in_channels, hidden, 1, bn_eps=bn_eps, act=nn.SiLU) if hidden != in_channels else None
        )
        self.depthwise = ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, bn_eps=bn_eps, act=nn.SiLU)
        # Squeeze width from the block's input channels (se_ratio 0.25 of C_in).
        self.se = SqueezeExcite(hidden, max(1, in_channels // 4))
        self.project = ConvBNAct(hidden, out_channels, 1, bn_eps=bn_eps, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.project(self.se(self.depthwise(out)))
        return x + out if self.use_residual else out


class EfficientNet(nn.Module):
    """``features`` holds ``stage1`` (stem conv) .. ``stage9`` (head conv) named
    as the rows of Table 1, stages 2..8 each a Sequential of MBConv; stage 9's
    pooling and FC are ``avgpool`` and ``classifier``."""

    def __init__(
        self, width: float, depth: float, dropout: float, num_classes: int = 1000, bn_eps: float = 1e-5
    ) -> None:
        super().__init__()
        check_positive("num_classes", num_classes)
        scaled = scaled_stages(width, depth)
        blocks_total = sum(s.layers for s in scaled[1:-1])
        if blocks_total > 1000 or width > 64:
            # e.g. alpha=3, phi=20 asks for billions of blocks; refuse before allocating.
            raise UserError(
                f"scaled EfficientNet is too large to build ({blocks_total} MBConv blocks, width x{width:.3g})"
            )
        layers: OrderedDict[str, nn.Module] = OrderedDict()

        stem = EFFICIENTNET_B0_TABLE1[0]
        channels = scaled[0].channels
        layers["stage1"] = ConvBNAct(3, channels, stem.kernel, stem.stride, bn_eps=bn_eps, act=nn.SiLU)
        for row, size in zip(EFFICIENTNET_B0_TABLE1[1:-1], scaled[1:-1]):
            blocks = []
            for j in range(size.layers):
                stride = row.stride if j == 0 else 1
                blocks.append(MBConv(channels, size.channels, row.kernel, stride, row.expand, bn_eps))
                channels = size.channels
            layers[f"stage{row.stage}"] = nn.Sequential(*blocks)
        head = scaled[-1].channels
        layers["stage9"] = ConvBNAct(channels, head, 1, bn_eps=bn_eps, act=nn.SiLU)

        self.features = nn.Sequential(layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Sequential(
            OrderedDict(dropout=nn.Dropout(dropout), fc=nn.Linear(head, num_classes))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


def _official(key: str, num_classes: int) -> EfficientNet:
    c = EFFICIENTNET_COEFFICIENTS[key]
    return EfficientNet(c.width, c.depth, c.dropout, num_classes, _TORCHVISION_BN_EPS.get(key, 1e-5))


def _side(key: str) -> tuple[int, int, int]:
    r = EFFICIENTNET_COEFFICIENTS[key].resolution
    return (3, r, r)


_TV = "torchvision efficientnet_{}"


@register_model(
    family="efficientnet", paper=PAPER, input_shape=_side("b0"), reference=Reference(5_288_548, _TV.format("b0"))
)
def efficientnet_b0(*, num_classes: int = 1000) -> EfficientNet:
    return _official("b0", num_classes)


@register_model(
    family="efficientnet", paper=PAPER, input_shape=_side("b1"), reference=Reference(7_794_184, _TV.format("b1"))
)
def efficientnet_b1(*, num_classes: int = 1000) -> EfficientNet:
    return _official("b1", num_classes)


@register_model(
    family="efficientnet", paper=PAPER, input_shape=_side("b2"), reference=Reference(9_109_994, _TV.format("b2"))
)
def efficientnet_b2(*, num_classes: int = 1000) -> EfficientNet:
    return _official("b2", num_classes)


@register_model(
    family="efficientnet", paper=PAPER, input_shape=_side("b3"), reference=Reference(12_233_232, _TV.format("b3"))
)
def efficientnet_b3(*, num_classes: int = 1000) -> EfficientNet:
    return _official("b3", num_classes)


@register_model(
    family="efficientnet", paper=PAPER, input_shape=_side("b4"), reference=Reference(19_341_616, _TV.format("b4"))
)
def efficientnet_b4(*, num_classes: int = 1000) -> EfficientNet:
    return _official("b4", num_classes)


@register_model(
    family="efficientnet", paper=PAPER, input_shape=_side("b5"), reference=Reference(30_389_784, _TV.format("b5"))
)
def efficientnet_b5(*, num_classes: int = 1000) -> EfficientNet:
    return _official("b5", num_classes)


@register_model(
    family="efficientnet", paper=PAPER, input_shape=_side("b6"), reference=Reference(43_040_704, _TV.format("b6"))
)
def efficientnet_b6(*, num_classes: int = 1000) -> EfficientNet:
    return _official("b6", num_classes)


@register_model(
    family="efficientnet", paper=PAPER, input_shape=_side("b7"), reference=Reference(66_347_960, _TV.format("b7"))
)
def efficientnet_b7(*, num_classes: int = 1000) -> EfficientNet:
    return _official("b7", num_classes)


def _phi_input_shape(
    *, phi: float = 1.0, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15, **_: object
) -> tuple[int, int, int]:
    side = compound_resolution(phi, alpha, beta, gamma)
    return (3, side, side)


@register_model(
    family="efficientnet",
    paper="Tan & Le 2019, EfficientNet, Sec. 3.3 (compound scaling of Table 1)",
    input_shape=_phi_input_shape,
    note="d=alpha**phi, w=beta**phi, R=round_half_up(224*gamma**phi); the exact rule, "
    "so phi=1..7 differ from the official B1..B7",
)
def efficientnet_phi(
    *, phi: float = 1.0, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15, num_classes: int = 1000
) -> EfficientNet:
    d, w, _ = compound_coefficients(phi, alpha, beta, gamma)
    # Dropout is B0's 0.2 (the official models raise it by hand with phi; it
    # has no parameters); BN eps 1e-3 as in the TF reference.
    return EfficientNet(w, d, 0.2, num_classes, bn_eps=1e-3)
