"""Factorized Inception: the paper's Inception-v2 and BN-Inception.

* ``inception_v2``: Szegedy et al. 2016, "Rethinking the Inception Architecture
  for Computer Vision", CVPR, Table 1 as printed, with batch normalization after
  every convolution: the stem of 3x3 convolutions, 3 x Figure 5 modules at 35x35
  (each 5x5 convolution replaced by two 3x3; no 5x5 kernel anywhere), the grid
  reduction of Figure 10, 5 x Figure 6 modules at 17x17 (n = 7: 1x7 and 7x1),
  a second Figure 10 reduction, 2 x Figure 7 modules at 8x8 (the 3x3 split into
  parallel 1x3 and 3x1), an 8x8 average pool and the linear classifier.
  The paper refers the filter counts inside the modules to a supplementary
  ``model.txt`` that was never published. What this model takes where the paper
  is silent, and from where:

  - Table 1 gives every stem convolution's output width (the next row's input
    depth: 32, 32, 64, 80, 192, 288) and spatial size. The last stem row, "conv
    3x3/1" at 35x35x192, is not marked "padded", yet the next row's input is
    35x35x288: the sizes need the padding, so that convolution is padded. The
    stem's "pool 3x3/2" is a max pool (the official TF-slim code of the paper,
    ``inception_v3.py``, MaxPool_3a_3x3).
  - Figure 5 modules: 64 | 1x1 48 -> 3x3 64 | 1x1 64 -> 3x3 96 -> 3x3 96 |
    avg pool -> 1x1 64 (288 channels, Table 1's width at 35x35). These are the
    branch widths of TF-slim's Mixed_5d, whose 1x1 48 -> 5x5 64 branch is here
    Figure 5's 1x1 -> 3x3 branch: the released code keeps a 5x5 that Figure 5
    does not have (see ``inception_v3``).
  - Grid reductions (Figure 10): TF-slim's Mixed_6a (288 -> 768: 3x3/2 384 |
    1x1 64 -> 3x3 96 -> 3x3/2 96 | max pool 3x3/2) and Mixed_7a (768 -> 1280),
    which give Table 1's 17x17x768 and 8x8x1280 exactly. Like the released code,
    Mixed_6a has no 1x1 before its single stride-2 3x3, which Figure 10 draws.
  - Figure 6 modules: TF-slim's Mixed_6b..6e widths (192 per branch output, a
    7x7 width c7 of 128, 160, 160, 192). Table 1 has five such modules where the
    released code has four: the fifth repeats the middle width, c7 = 160
    (c7 = 128, 160, 160, 160, 192).
  - Figure 7 modules: TF-slim's Mixed_7b, 7c (1280 -> 2048 -> 2048).
  - Pools inside the modules are average pools (TF-slim). No dropout and no
    auxiliary classifier: Table 1 lists neither.

* ``bn_inception``: Ioffe & Szegedy 2015, "Batch Normalization: Accelerating
  Deep Network Training by Reducing Internal Covariate Shift", ICML, the
  appendix's Figure 5 (the table of the Inception variant): GoogLeNet with batch
  normalization after every convolution, each 5x5 convolution replaced by two
  3x3 ("double #3x3"), three 28x28 modules instead of two, average or max
  pooling inside the modules, no pooling layers between modules but stride-2
  modules 3c and 4e (3x3/2 convolutions beside a 3x3/2 max pool that passes its
  input through), and the first convolution separable with depth multiplier 8
  (a 7x7/2 depthwise convolution, 3 -> 24 maps, then a 1x1 to 64). Widths: the
  table's columns as the authors' TF-slim code (``inception_v2.py``, whose
  Mixed_3b..5c are modules 3a..5b) builds them; 'SAME' padding everywhere. No
  dropout (section 4.2.1 of the paper removes it) and no auxiliary classifiers.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from archlab.models.inception import InceptionB, InceptionC, InceptionD, InceptionE, basic_conv
from archlab.models._registry import register_model
from archlab.models.layers import check_positive, run_children

INCEPTION_V2_PAPER = "Szegedy et al. 2016, Rethinking the Inception Architecture for Computer Vision"
BN_INCEPTION_PAPER = (
    "Ioffe & Szegedy 2015, Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift"
)


# ---------------------------------------------------------------------------
# Inception-v2 (Szegedy et al. 2016, Table 1)
# ---------------------------------------------------------------------------


class Table1Row(NamedTuple):
    type: str
    patch: str
    input_size: tuple[int, int, int]  # H, W, C


# "Rethinking the Inception Architecture", Table 1, as printed.
# type,            patch size/stride or remarks, input size
INCEPTION_V2_TABLE1 = (
    Table1Row("conv", "3×3/2", (299, 299, 3)),
    Table1Row("conv", "3×3/1", (149, 149, 32)),
    Table1Row("conv padded", "3×3/1", (147, 147, 32)),
    Table1Row("pool", "3×3/2", (147, 147, 64)),
    Table1Row("conv", "3×3/1", (73, 73, 64)),
    Table1Row("conv", "3×3/2", (71, 71, 80)),
    Table1Row("conv", "3×3/1", (35, 35, 192)),
    Table1Row("3×Inception", "As in figure 5", (35, 35, 288)),
    Table1Row("5×Inception", "As in figure 6", (17, 17, 768)),
    Table1Row("2×Inception", "As in figure 7", (8, 8, 1280)),
    Table1Row("pool", "8×8", (8, 8, 2048)),
    Table1Row("linear", "logits", (1, 1, 2048)),
    Table1Row("softmax", "classifier", (1, 1, 1000)),
)


class Figure5Row(NamedTuple):
    n1x1: int
    n3x3_reduce: int
    n3x3: int
    double_reduce: int
    double_3x3: int
    pool_proj: int


# Figure 5's widths (TF-slim Mixed_5d's, its 5x5 drawn as Figure 5's 3x3), one row per module.
# #1×1, #3×3 reduce, #3×3, double #3×3 reduce, double #3×3, pool proj
INCEPTION_V2_FIGURE5 = (
    Figure5Row(64, 48, 64, 64, 96, 64),
    Figure5Row(64, 48, 64, 64, 96, 64),
    Figure5Row(64, 48, 64, 64, 96, 64),
)
# Figure 6's 7x7 width c7 per module (TF-slim Mixed_6b..6e: 128, 160, 160, 192; the fifth module
# that Table 1 adds repeats the middle width).
INCEPTION_V2_FIGURE6_C7 = (128, 160, 160, 160, 192)


def _parse_patch(patch: str) -> tuple[int, int]:
    """'3×3/2' -> (3, 2)."""
    size, stride = patch.split("/")
    k = size.split("×")
    if k[0] != k[1]:
        raise ValueError(f"not a square patch: {patch}")
    return int(k[0]), int(stride)


def _same_padding(h_in: int, h_out: int, k: int, s: int) -> int:
    """The padding that takes an h_in map to h_out (the table's next input size)."""
    twice = (h_out - 1) * s + k - h_in
    if twice < 0 or twice % 2 or (h_in + twice - k) // s + 1 != h_out:
        raise ValueError(f"no symmetric padding takes {h_in} to {h_out} with {k}/{s}")
    return twice // 2


class Figure5(nn.Module):
    """Figure 5: GoogLeNet's module with each 5x5 replaced by two 3x3 convolutions:
    1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | avg pool 3x3 -> 1x1."""

    def __init__(self, in_channels: int, row: Figure5Row) -> None:
        super().__init__()
        self.branch1x1 = basic_conv(in_channels, row.n1x1, 1)
        self.branch3x3 = nn.Sequential(
            basic_conv(in_channels, row.n3x3_reduce, 1), basic_conv(row.n3x3_reduce, row.n3x3, 3, padding=1)
        )
        self.branch3x3dbl = nn.Sequential(
            basic_conv(in_channels, row.double_reduce, 1),
            basic_conv(row.double_reduce, row.double_3x3, 3, padding=1),
            basic_conv(row.double_3x3, row.double_3x3, 3, padding=1),
        )
        self.branch_pool = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1), basic_conv(in_channels, row.pool_proj, 1)
        )
        self.out_channels = row.n1x1 + row.n3x3 + row.double_3x3 + row.pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x), self.branch3x3(x), self.branch3x3dbl(x), self.branch_pool(x)], 1)


class InceptionV2(nn.Module):
    """Inception-v2, Table 1 of "Rethinking the Inception Architecture"; returns logits."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        table = INCEPTION_V2_TABLE1
        # The stem: every row before the first Inception row, its widths and paddings read
        # from the table (a row's output is the next row's input).
        stem = []
        for i, row in enumerate(table[:7]):
            (h_in, _, c_in), (h_out, _, c_out) = row.input_size, table[i + 1].input_size
            k, s = _parse_patch(row.patch)
            if row.type == "pool":
                layer: nn.Module = nn.MaxPool2d(k, stride=s)
                if (h_in - k) // s + 1 != h_out:
                    raise ValueError(f"Table 1 row {i + 1}: the pool does not give {h_out}")
            else:
                layer = basic_conv(c_in, c_out, k, stride=s, padding=_same_padding(h_in, h_out, k, s))
            stem.append(layer)
        self.stem = nn.Sequential(*stem)
        channels = table[7].input_size[2]
        self.mixed_35 = nn.Sequential()
        for row in INCEPTION_V2_FIGURE5:
            module = Figure5(channels, row)
            self.mixed_35.append(module)
            channels = module.out_channels
        self.reduction_35_17 = InceptionB(channels)  # Figure 10: 288 -> 768
        self.mixed_17 = nn.Sequential(*(InceptionC(768, c7) for c7 in INCEPTION_V2_FIGURE6_C7))
        self.reduction_17_8 = InceptionD(768)  # Figure 10: 768 -> 1280
        self.mixed_8 = nn.Sequential(InceptionE(1280), InceptionE(2048))
        pool_h, _, pool_c = table[10].input_size
        self.avgpool = nn.AvgPool2d(pool_h)  # Table 1's "pool 8x8"
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(pool_c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_children(self, x)


@register_model(
    family="inception",
    paper=INCEPTION_V2_PAPER,
    input_shape=(3, 299, 299),
    note="paper's Table 1: Fig. 5 (two 3x3, no 5x5), Fig. 6 (1x7, 7x1), Fig. 7, Fig. 10 reductions, batch norm",
)
def inception_v2(*, num_classes: int = 1000) -> InceptionV2:
    check_positive("num_classes", num_classes)
    return InceptionV2(num_classes)


# ---------------------------------------------------------------------------
# BN-Inception (Ioffe & Szegedy 2015, appendix Figure 5)
# ---------------------------------------------------------------------------


class BNInceptionRow(NamedTuple):
    name: str
    stride: int
    n1x1: int
    n3x3_reduce: int
    n3x3: int
    double_reduce: int
    double_3x3: int
    pool: str
    pool_proj: int  # 0: "pass through" (the stride-2 modules)


# Ioffe & Szegedy 2015, Figure 5 (the widths as TF-slim's inception_v2.py builds them).
# name,  stride, #1×1, #3×3 reduce, #3×3, double #3×3 reduce, double #3×3, Pool +proj
BN_INCEPTION_MODULES = (
    BNInceptionRow("inception3a", 1, 64, 64, 64, 64, 96, "avg", 32),
    BNInceptionRow("inception3b", 1, 64, 64, 96, 64, 96, "avg", 64),
    BNInceptionRow("inception3c", 2, 0, 128, 160, 64, 96, "max", 0),
    BNInceptionRow("inception4a", 1, 224, 64, 96, 96, 128, "avg", 128),
    BNInceptionRow("inception4b", 1, 192, 96, 128, 96, 128, "avg", 128),
    BNInceptionRow("inception4c", 1, 160, 128, 160, 128, 160, "avg", 96),
    BNInceptionRow("inception4d", 1, 96, 128, 192, 160, 192, "avg", 96),
    BNInceptionRow("inception4e", 2, 0, 128, 192, 192, 256, "max", 0),
    BNInceptionRow("inception5a", 1, 352, 192, 320, 160, 224, "avg", 128),
    BNInceptionRow("inception5b", 1, 352, 192, 320, 192, 224, "max", 128),
)


def _bn_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Module:
    """Convolution without bias ('SAME' padding), batch norm, ReLU."""
    return basic_conv(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2)


class BNInceptionModule(nn.Module):
    """A module of the table: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | pool (-> 1x1). In a
    stride-2 module (3c, 4e) the last 3x3 of each branch and the max pool have stride 2,
    there is no 1x1 branch, and the pool's output passes through unprojected."""

    def __init__(self, in_channels: int, row: BNInceptionRow) -> None:
        super().__init__()
        s = row.stride
        if row.n1x1:
            self.branch1x1 = _bn_conv(in_channels, row.n1x1, 1)
        self.branch3x3 = nn.Sequential(
            _bn_conv(in_channels, row.n3x3_reduce, 1), _bn_conv(row.n3x3_reduce, row.n3x3, 3, s)
        )
        self.branch3x3dbl = nn.Sequential(
            _bn_conv(in_channels, row.double_reduce, 1),
            _bn_conv(row.double_reduce, row.double_3x3, 3),
            _bn_conv(row.double_3x3, row.double_3x3, 3, s),
        )
        pool = nn.MaxPool2d(3, s, 1) if row.pool == "max" else nn.AvgPool2d(3, s, 1)
        self.branch_pool = nn.Sequential(pool, _bn_conv(in_channels, row.pool_proj, 1)) if row.pool_proj else pool
        self._branches = tuple(b for b in ("branch1x1", "branch3x3", "branch3x3dbl", "branch_pool") if hasattr(self, b))
        self.out_channels = row.n1x1 + row.n3x3 + row.double_3x3 + (row.pool_proj or in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, b)(x) for b in self._branches], 1)


class SeparableConvBN(nn.Sequential):
    """The first layer: a separable 7x7/2 convolution with depth multiplier 8 (depthwise 7x7 on
    each of the 3 input maps, 8 outputs each, then a 1x1 to 64), batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, multiplier: int) -> None:
        super().__init__()
        mid = in_channels * multiplier
        self.depthwise = nn.Conv2d(in_channels, mid, kernel_size, stride, kernel_size // 2, groups=in_channels,
                                   bias=False)
        self.pointwise = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3)
        self.act = nn.ReLU(inplace=True)


class BNInception(nn.Module):
    """BN-Inception; returns logits."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = SeparableConvBN(3, 64, 7, stride=2, multiplier=8)  # 112x112x64
        self.pool1 = nn.MaxPool2d(3, stride=2, padding=1)  # 56x56x64
        self.conv2_reduce = _bn_conv(64, 64, 1)
        self.conv2 = _bn_conv(64, 192, 3)  # 56x56x192
        self.pool2 = nn.MaxPool2d(3, stride=2, padding=1)  # 28x28x192
        channels = 192
        for row in BN_INCEPTION_MODULES:
            module = BNInceptionModule(channels, row)
            setattr(self, row.name, module)
            channels = module.out_channels
        self.avgpool = nn.AvgPool2d(7)  # the table's "avg pool 7x7/1"
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_children(self, x)


@register_model(
    family="inception",
    paper=BN_INCEPTION_PAPER,
    note="GoogLeNet + batch norm, each 5x5 as two 3x3, stride-2 modules 3c/4e, separable first conv",
)
def bn_inception(*, num_classes: int = 1000) -> BNInception:
    check_positive("num_classes", num_classes)
    return BNInception(num_classes)
