"""Inception: GoogLeNet, Inception-v3 and Inception-ResNet-v2.

* ``googlenet``: Szegedy et al. 2015, "Going Deeper with Convolutions", CVPR,
  Table 1 (the course's table) and section 5 (the auxiliary classifiers). The
  paper's network, not torchvision's: convolutions with bias, ReLU, no batch
  norm, a real 5x5 convolution in the third branch, and LocalResponseNorm in
  the stem (size 5, alpha 1e-4, beta 0.75, k 1: Caffe's ``bvlc_googlenet``
  reference with Caffe's default k). Max pools round up (Caffe's rule, which
  Table 1's 112 -> 56 -> 28 -> 14 -> 7 sizes need).
* ``inception_v3``: Szegedy et al. 2016, "Rethinking the Inception Architecture
  for Computer Vision", CVPR, Table 1 and Figures 5-7 and 10, in the layout of
  the official TF-slim code that torchvision ports (children and parameter
  names match torchvision's ``inception_v3``). That code departs from the paper
  in Mixed_5b..5d, which keep a 1x1 -> 5x5 branch beside the 1x1 -> 3x3 -> 3x3
  branch, where Figure 5 shows only stacked 3x3 convolutions: Mixed_5b..5d are
  not Figure 5 modules (``inception_v2``'s are, in ``inception_factorized``).
  Mixed_6b..6e are Figure 6 (n = 7: 1x7 and 7x1), Mixed_7b and 7c Figure 7
  (1x3 and 3x1 in parallel), Mixed_6a and 7a Figure 10's grid reductions.
* ``inception_resnet_v2``: Szegedy et al. 2017, "Inception-v4, Inception-ResNet
  and the Impact of Residual Connections on Learning", AAAI, Figures 15-19, in
  the layout of the official TF-slim code as timm ports it (children and
  parameter names match timm's ``inception_resnet_v2``). That code departs from
  the paper: its stem is Inception-v3's plus a 320-channel ``mixed_5b`` rather
  than Figure 3's, it repeats the residual blocks 10 / 20 / 10 times rather
  than Figure 15's 5 / 10 / 5, and its residual widths are 320 / 1088 / 2080
  channels where Figures 16, 17 and 19 have 384 / 1154 / 2048.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from archlab.models.layers import ConvBNAct, check_positive, run_children
from archlab.models._registry import Reference, register_model

GOOGLENET_PAPER = "Szegedy et al. 2015, Going Deeper with Convolutions"
INCEPTION_V3_PAPER = "Szegedy et al. 2016, Rethinking the Inception Architecture for Computer Vision"
INCEPTION_RESNET_PAPER = (
    "Szegedy et al. 2017, Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning"
)


# ---------------------------------------------------------------------------
# GoogLeNet (Szegedy et al. 2015, Table 1)
# ---------------------------------------------------------------------------


class InceptionRow(NamedTuple):
    name: str
    n1x1: int
    n3x3_reduce: int
    n3x3: int
    n5x5_reduce: int
    n5x5: int
    pool_proj: int


# GoogLeNet, Table 1. A max pool 3x3/2 sits before stages 4 and 5.
# name,          #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj
GOOGLENET_INCEPTION = (
    InceptionRow("inception3a", 64, 96, 128, 16, 32, 32),
    InceptionRow("inception3b", 128, 128, 192, 32, 96, 64),
    InceptionRow("inception4a", 192, 96, 208, 16, 48, 64),
    InceptionRow("inception4b", 160, 112, 224, 24, 64, 64),
    InceptionRow("inception4c", 128, 128, 256, 24, 64, 64),
    InceptionRow("inception4d", 112, 144, 288, 32, 64, 64),
    InceptionRow("inception4e", 256, 160, 320, 32, 128, 128),
    InceptionRow("inception5a", 256, 160, 320, 32, 128, 128),
    InceptionRow("inception5b", 384, 192, 384, 48, 128, 128),
)
# The auxiliary classifiers read these modules' outputs (section 5).
GOOGLENET_AUX_TAPS = ("inception4a", "inception4d")


def _conv_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> ConvBNAct:
    """GoogLeNet's convolution: with bias, no batch norm (it predates it), then ReLU."""
    return ConvBNAct(in_channels, out_channels, kernel_size, stride, bias=True, bn=False)


class Inception(nn.Module):
    """The Inception module of Figure 2(b): four branches concatenated on channels."""

    def __init__(self, in_channels: int, row: InceptionRow) -> None:
        super().__init__()
        self.branch1 = _conv_relu(in_channels, row.n1x1, 1)
        self.branch2 = nn.Sequential(
            _conv_relu(in_channels, row.n3x3_reduce, 1), _conv_relu(row.n3x3_reduce, row.n3x3, 3)
        )
        self.branch3 = nn.Sequential(
            _conv_relu(in_channels, row.n5x5_reduce, 1), _conv_relu(row.n5x5_reduce, row.n5x5, 5)
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), _conv_relu(in_channels, row.pool_proj, 1)
        )
        self.out_channels = row.n1x1 + row.n3x3 + row.n5x5 + row.pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNetAux(nn.Sequential):
    """An auxiliary classifier (section 5): 5x5/3 average pool (14x14 -> 4x4),
    1x1 conv 128 + ReLU, fc 1024 + ReLU, dropout 70%, linear to the classes."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3)
        self.conv = _conv_relu(in_channels, 128, 1)
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(0.7)
        self.fc2 = nn.Linear(1024, num_classes)


class GoogLeNet(nn.Module):
    """GoogLeNet; in training mode with ``aux_logits`` it returns (main, aux1, aux2)."""

    def __init__(self, num_classes: int = 1000, aux_logits: bool = False) -> None:
        super().__init__()
        self.aux_logits = aux_logits
        self.conv1 = _conv_relu(3, 64, 7, stride=2)
        self.pool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.norm1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv2_reduce = _conv_relu(64, 64, 1)
        self.conv2 = _conv_relu(64, 192, 3)
        self.norm2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.pool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        trunk = ["conv1", "pool1", "norm1", "conv2_reduce", "conv2", "norm2", "pool2"]
        channels, stage = 192, "3"
        for row in GOOGLENET_INCEPTION:
            if row.name[-2] != stage:
                pool = f"pool{stage}"
                setattr(self, pool, nn.MaxPool2d(3, stride=2, ceil_mode=True))
                trunk.append(pool)
                stage = row.name[-2]
            module = Inception(channels, row)
            setattr(self, row.name, module)
            trunk.append(row.name)
            channels = module.out_channels
        self._trunk = tuple(trunk)
        if aux_logits:
            self.aux1 = GoogLeNetAux(512, num_classes)  # 4a's output: 14x14x512
            self.aux2 = GoogLeNetAux(528, num_classes)  # 4d's output: 14x14x528
        # Table 1's "avg pool 7x7/1": a fixed window, so the network expects 224x224.
        self.pool5 = nn.AvgPool2d(7, stride=1)
        self.dropout = nn.Dropout(0.4)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with_aux = self.aux_logits and self.training
        aux: list[torch.Tensor] = []
        for name in self._trunk:
            x = getattr(self, name)(x)
            if with_aux and name in GOOGLENET_AUX_TAPS:
                aux.append(getattr(self, f"aux{len(aux) + 1}")(x))
        x = self.fc(self.flatten(self.dropout(self.pool5(x))))
        return (x, aux[0], aux[1]) if with_aux else x


@register_model(
    family="inception",
    paper=GOOGLENET_PAPER,
    note="paper version: 5x5 branches, LRN, conv bias, no batch norm (unlike torchvision's googlenet)",
)
def googlenet(*, num_classes: int = 1000, aux_logits: bool = False) -> GoogLeNet:
    check_positive("num_classes", num_classes)
    return GoogLeNet(num_classes, aux_logits)


# ---------------------------------------------------------------------------
# Inception-v3 (Szegedy et al. 2016, TF-slim / torchvision layout)
# ---------------------------------------------------------------------------


def basic_conv(
    in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int = 1,
    padding: int | tuple[int, int] = 0,
) -> ConvBNAct:
    """TF-slim's conv: no bias, batch norm with epsilon 0.001, ReLU.
    Padding defaults to 0 ('VALID'), the TF-slim default in the stems."""
    return ConvBNAct(in_channels, out_channels, kernel_size, stride, padding, bn_eps=1e-3)


def _avg_pool_same(count_include_pad: bool = True) -> nn.AvgPool2d:
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=count_include_pad)


class InceptionA(nn.Module):
    """35x35 module (Mixed_5b..5d): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1.

    The 5x5 branch is the TF-slim code's; the paper's Figure 5 factorizes every
    5x5 into two 3x3. The average pool counts the zero padding, as torchvision's
    port does (TF's 'SAME' pool does not; the cost is the same).
    """

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = basic_conv(in_channels, 64, 1)
        self.branch5x5_1 = basic_conv(in_channels, 48, 1)
        self.branch5x5_2 = basic_conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = basic_conv(in_channels, 64, 1)
        self.branch3x3dbl_2 = basic_conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = basic_conv(96, 96, 3, padding=1)
        self.pool = _avg_pool_same()
        self.branch_pool = basic_conv(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(self.pool(x))], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a, Figure 10): 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool 3x3/2."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = basic_conv(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = basic_conv(in_channels, 64, 1)
        self.branch3x3dbl_2 = basic_conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = basic_conv(96, 96, 3, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, self.pool(x)], 1)


class InceptionC(nn.Module):
    """17x17 module (Mixed_6b..6e, Figure 6, n = 7): 7x7 factorized into 1x7 and 7x1."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = basic_conv(in_channels, 192, 1)
        self.branch7x7_1 = basic_conv(in_channels, c7, 1)
        self.branch7x7_2 = basic_conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = basic_conv(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = basic_conv(in_channels, c7, 1)
        self.branch7x7dbl_2 = basic_conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = basic_conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = basic_conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = basic_conv(c7, 192, (1, 7), padding=(0, 3))
        self.pool = _avg_pool_same()
        self.branch_pool = basic_conv(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(self.pool(x))], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a): 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max pool 3x3/2."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = basic_conv(in_channels, 192, 1)
        self.branch3x3_2 = basic_conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = basic_conv(in_channels, 192, 1)
        self.branch7x7x3_2 = basic_conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = basic_conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = basic_conv(192, 192, 3, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, self.pool(x)], 1)


class InceptionE(nn.Module):
    """8x8 module (Mixed_7b, 7c, Figure 7): the 3x3s split into parallel 1x3 and 3x1."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch1x1 = basic_conv(in_channels, 320, 1)
        self.branch3x3_1 = basic_conv(in_channels, 384, 1)
        self.branch3x3_2a = basic_conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = basic_conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = basic_conv(in_channels, 448, 1)
        self.branch3x3dbl_2 = basic_conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = basic_conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = basic_conv(384, 384, (3, 1), padding=(1, 0))
        self.pool = _avg_pool_same()
        self.branch_pool = basic_conv(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(s), self.branch3x3_2b(s),
                self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d),
                self.branch_pool(self.pool(x)),
            ],
            1,
        )


class InceptionAux(nn.Sequential):
    """Inception-v3's auxiliary classifier on Mixed_6e (17x17x768): 5x5/3 average
    pool, 1x1 conv 128, 5x5 conv 768, global average pool, fc."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3)
        self.conv0 = basic_conv(in_channels, 128, 1)
        self.conv1 = basic_conv(128, 768, 5)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(768, num_classes)


# Inception-v3's mixed modules, Table 1's 35x35 / 17x17 / 8x8 rows as the
# TF-slim code builds them. "option" is InceptionA's pool features or
# InceptionC's 7x7 channels.
# name,       module,     in,   option
INCEPTION_V3_MIXED = (
    ("Mixed_5b", InceptionA, 192, 32),
    ("Mixed_5c", InceptionA, 256, 64),
    ("Mixed_5d", InceptionA, 288, 64),
    ("Mixed_6a", InceptionB, 288, None),
    ("Mixed_6b", InceptionC, 768, 128),
    ("Mixed_6c", InceptionC, 768, 160),
    ("Mixed_6d", InceptionC, 768, 160),
    ("Mixed_6e", InceptionC, 768, 192),
    ("Mixed_7a", InceptionD, 768, None),
    ("Mixed_7b", InceptionE, 1280, None),
    ("Mixed_7c", InceptionE, 2048, None),
)


class Inception3(nn.Module):
    """Inception-v3; in training mode with ``aux_logits`` it returns (main, aux)."""

    def __init__(self, num_classes: int = 1000, aux_logits: bool = False) -> None:
        super().__init__()
        self.aux_logits = aux_logits
        # Stem (Table 1's first seven rows), 'VALID' padding except Conv2d_2b.
        self.Conv2d_1a_3x3 = basic_conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = basic_conv(32, 32, 3)
        self.Conv2d_2b_3x3 = basic_conv(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, stride=2)
        self.Conv2d_3b_1x1 = basic_conv(64, 80, 1)
        self.Conv2d_4a_3x3 = basic_conv(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, stride=2)
        trunk = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1"]
        trunk += ["Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2"]
        for name, module, in_channels, option in INCEPTION_V3_MIXED:
            setattr(self, name, module(in_channels) if option is None else module(in_channels, option))
            trunk.append(name)
            if name == "Mixed_6e" and aux_logits:
                # Registered here so the module order follows the data flow.
                self.AuxLogits = InceptionAux(768, num_classes)
        self._trunk = tuple(trunk)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.5)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        with_aux = self.aux_logits and self.training
        aux = None
        for name in self._trunk:
            x = getattr(self, name)(x)
            if with_aux and name == "Mixed_6e":
                aux = self.AuxLogits(x)
        x = self.fc(self.flatten(self.dropout(self.avgpool(x))))
        return (x, aux) if with_aux else x


@register_model(
    family="inception",
    paper=INCEPTION_V3_PAPER,
    input_shape=(3, 299, 299),
    reference=Reference(
        params=27_161_264, source="torchvision inception_v3 (aux head included)", options={"aux_logits": True}
    ),
    note="TF-slim/torchvision layout: Mixed_5b..5d keep a 5x5 branch (paper Fig. 5: two 3x3)",
)
def inception_v3(*, num_classes: int = 1000, aux_logits: bool = False) -> Inception3:
    check_positive("num_classes", num_classes)
    return Inception3(num_classes, aux_logits)


# ---------------------------------------------------------------------------
# Inception-ResNet-v2 (Szegedy et al. 2017, TF-slim / timm layout)
# ---------------------------------------------------------------------------


class Mixed5b(nn.Module):
    """The 35x35 module ending TF-slim's stem: 96 | 48 -> 5x5 64 | 64 -> 96 -> 96 | avg pool -> 64 = 320."""

    def __init__(self, in_channels: int = 192) -> None:
        super().__init__()
        self.branch0 = basic_conv(in_channels, 96, 1)
        self.branch1 = nn.Sequential(basic_conv(in_channels, 48, 1), basic_conv(48, 64, 5, padding=2))
        self.branch2 = nn.Sequential(
            basic_conv(in_channels, 64, 1), basic_conv(64, 96, 3, padding=1), basic_conv(96, 96, 3, padding=1)
        )
        # TF's 'SAME' average pool divides by the valid pixels only.
        self.branch3 = nn.Sequential(_avg_pool_same(count_include_pad=False), basic_conv(in_channels, 64, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class ResidualInception(nn.Module):
    """Inception-ResNet block (Figures 16-19, as TF-slim's block35/17/8): the
    branches are concatenated, projected back to the input width by a 1x1 conv
    with bias and no batch norm, scaled (section 3.3, "Scaling of the
    Residuals"), added to the input, then passed through ReLU (none in the last
    Block8)."""

    def __init__(
        self, branches: list[nn.Module], concat_channels: int, channels: int, scale: float, relu: bool = True
    ) -> None:
        super().__init__()
        self.scale = scale
        for i, branch in enumerate(branches):
            setattr(self, f"branch{i}", branch)
        self._branches = tuple(f"branch{i}" for i in range(len(branches)))
        self.conv2d = nn.Conv2d(concat_channels, channels, 1, bias=True)
        self.relu = nn.ReLU() if relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = self.conv2d(torch.cat([getattr(self, b)(x) for b in self._branches], 1))
        x = x + self.scale * up
        return self.relu(x) if self.relu is not None else x

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


def block35(scale: float) -> ResidualInception:
    """Inception-ResNet-A, 35x35x320 (Figure 16; the paper projects to 384)."""
    return ResidualInception(
        [
            basic_conv(320, 32, 1),
            nn.Sequential(basic_conv(320, 32, 1), basic_conv(32, 32, 3, padding=1)),
            nn.Sequential(basic_conv(320, 32, 1), basic_conv(32, 48, 3, padding=1), basic_conv(48, 64, 3, padding=1)),
        ],
        128, 320, scale,
    )


def block17(scale: float) -> ResidualInception:
    """Inception-ResNet-B, 17x17x1088 (Figure 17; the paper projects to 1154)."""
    return ResidualInception(
        [
            basic_conv(1088, 192, 1),
            nn.Sequential(
                basic_conv(1088, 128, 1), basic_conv(128, 160, (1, 7), padding=(0, 3)),
                basic_conv(160, 192, (7, 1), padding=(3, 0)),
            ),
        ],
        384, 1088, scale,
    )


def block8(scale: float, relu: bool = True) -> ResidualInception:
    """Inception-ResNet-C, 8x8x2080 (Figure 19; the paper projects to 2048)."""
    return ResidualInception(
        [
            basic_conv(2080, 192, 1),
            nn.Sequential(
                basic_conv(2080, 192, 1), basic_conv(192, 224, (1, 3), padding=(0, 1)),
                basic_conv(224, 256, (3, 1), padding=(1, 0)),
            ),
        ],
        448, 2080, scale, relu,
    )


class Mixed6a(nn.Module):
    """Reduction-A, 35 -> 17 (Figure 7 with k, l, m, n = 256, 256, 384, 384): 320 -> 1088."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = basic_conv(320, 384, 3, stride=2)
        self.branch1 = nn.Sequential(
            basic_conv(320, 256, 1), basic_conv(256, 256, 3, padding=1), basic_conv(256, 384, 3, stride=2)
        )
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class Mixed7a(nn.Module):
    """Reduction-B, 17 -> 8 (Figure 18): 1088 -> 2080."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(basic_conv(1088, 256, 1), basic_conv(256, 384, 3, stride=2))
        self.branch1 = nn.Sequential(basic_conv(1088, 256, 1), basic_conv(256, 288, 3, stride=2))
        self.branch2 = nn.Sequential(
            basic_conv(1088, 256, 1), basic_conv(256, 288, 3, padding=1), basic_conv(288, 320, 3, stride=2)
        )
        self.branch3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


# Inception-ResNet-v2's residual stages as TF-slim repeats them (Figure 15 says 5 / 10 / 5).
# name,      block,   repeats, scale
INCEPTION_RESNET_V2_STAGES = (
    ("repeat", block35, 10, 0.17),
    ("repeat_1", block17, 20, 0.10),
    ("repeat_2", block8, 9, 0.20),
)


class InceptionResNetV2(nn.Module):
    """Inception-ResNet-v2 in TF-slim's layout; the names are timm's."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        # Stem: Inception-v3's, then mixed_5b (TF-slim; the paper's Figure 3 differs).
        self.conv2d_1a = basic_conv(3, 32, 3, stride=2)
        self.conv2d_2a = basic_conv(32, 32, 3)
        self.conv2d_2b = basic_conv(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = basic_conv(64, 80, 1)
        self.conv2d_4a = basic_conv(80, 192, 3)
        self.maxpool_5a = nn.MaxPool2d(3, stride=2)
        self.mixed_5b = Mixed5b(192)
        stages = {
            name: nn.Sequential(*(block(scale) for _ in range(n)))
            for name, block, n, scale in INCEPTION_RESNET_V2_STAGES
        }
        self.repeat = stages["repeat"]
        self.mixed_6a = Mixed6a()
        self.repeat_1 = stages["repeat_1"]
        self.mixed_7a = Mixed7a()
        self.repeat_2 = stages["repeat_2"]
        # The tenth Inception-ResNet-C block: unscaled, no ReLU before conv2d_7b.
        self.block8 = block8(1.0, relu=False)
        self.conv2d_7b = basic_conv(2080, 1536, 1)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        # TF-slim's dropout_keep_prob = 0.8 (the paper's Figure 15 too); timm's default leaves it out.
        self.dropout = nn.Dropout(0.2)
        self.classif = nn.Linear(1536, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_children(self, x)


@register_model(
    family="inception",
    paper=INCEPTION_RESNET_PAPER,
    input_shape=(3, 299, 299),
    reference=Reference(params=55_843_464, source="timm inception_resnet_v2"),
    note="TF-slim/timm layout: v3 stem + mixed_5b, 10/20/10 residual blocks (paper Fig. 15: 5/10/5)",
)
def inception_resnet_v2(*, num_classes: int = 1000) -> InceptionResNetV2:
    check_positive("num_classes", num_classes)
    return InceptionResNetV2(num_classes)
