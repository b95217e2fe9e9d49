"""LeNet: the first convolutional networks trained end to end by backpropagation.

* ``lenet``: LeCun et al. 1989, "Backpropagation Applied to Handwritten Zip Code
  Recognition", Neural Computation 1(4), section 5 ("Network Design") and its
  Figure 3. The paper's totals: 1,256 units, 64,660 connections, 9,760 free
  parameters.
* ``lenet5``: LeCun, Bottou, Bengio & Haffner 1998, "Gradient-Based Learning
  Applied to Document Recognition", Proc. IEEE 86(11), section II-B, Figure 2,
  Table I (the C3 connection scheme) and Appendix A (the squashing function).
  The paper's total: 60,000 trainable parameters (60,840 counted exactly).

Both networks have sparse connection tables between feature maps; ``MapTable``
implements them as one small convolution per group of output maps that read the
same input maps, so the convolutions perform only the multiply-adds of real
connections.
"""

from __future__ import annotations

import random

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from archlab.models._registry import register_model
from archlab.models.layers import check_positive

LENET_1989 = "LeCun et al. 1989, Backpropagation Applied to Handwritten Zip Code Recognition"
LENET_1998 = "LeCun et al. 1998, Gradient-Based Learning Applied to Document Recognition"


class ScaledTanh(nn.Module):
    """The squashing function f(a) = A tanh(S a) of LeCun 1998, Appendix A.

    A = 1.7159 and S = 2/3 make f(1) = 1 and f(-1) = -1, so the targets +-1 sit at
    the maximum of the second derivative rather than in the saturated tails.
    """

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0) -> None:
        super().__init__()
        self.amplitude = amplitude
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude}, slope={self.slope:.4g}"


class UnsharedBias(nn.Module):
    """One bias per unit, shape (C, H, W): LeCun 1989 shares the kernel weights of
    a feature map but gives every unit of H1 and H2 its own threshold."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels, height, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias

    def extra_repr(self) -> str:
        return "shape=({}, {}, {})".format(*self.bias.shape)


class MapTable(nn.Module):
    """A convolution layer with a sparse table of connections between maps.

    ``table`` lists (input maps, number of output maps) per group; each group is
    one ``nn.Conv2d`` reading only its input maps, and the groups' outputs are
    concatenated in table order. Children are named by the output maps they
    write (``map0`` or ``maps0_3``).
    """

    def __init__(
        self,
        table: Sequence[tuple[Sequence[int], int]],
        kernel_size: int,
        stride: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self._groups: list[tuple[str, str]] = []
        first = 0
        for i, (inputs, outputs) in enumerate(table):
            last = first + outputs - 1
            name = f"map{first}" if outputs == 1 else f"maps{first}_{last}"
            conv = nn.Conv2d(len(inputs), outputs, kernel_size, stride, bias=bias)
            self.add_module(name, conv)
            # Not persistent: the index is part of the architecture, not of the weights.
            self.register_buffer(f"inputs{i}", torch.tensor(list(inputs), dtype=torch.long), persistent=False)
            self._groups.append((name, f"inputs{i}"))
            first = last + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [getattr(self, conv)(x.index_select(1, getattr(self, index))) for conv, index in self._groups]
        return torch.cat(outs, dim=1)


class Subsampling(nn.Sequential):
    """LeCun 1998's S layers: each unit adds its 2x2 inputs, multiplies the sum by
    a trainable coefficient and adds a trainable bias, both one per map.

    Written as an average pool followed by a depthwise 1x1 convolution (weight
    and bias per map: 2 parameters per map); averaging instead of summing only
    rescales the coefficient by 4. The squashing function follows outside.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.scale = nn.Conv2d(channels, channels, kernel_size=1, groups=channels, bias=True)


class EuclideanRBF(nn.Module):
    """LeCun 1998's output layer, eq. (7): y_i = sum_j (x_j - w_ij)^2.

    Each output is the squared distance of F6's state to the class's parameter
    vector (a stylized 7x12 bitmap of the character in the paper), so the
    smallest output is the predicted class. No bias.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        # The paper draws the class vectors from {-1, +1} (hand-designed bitmaps for
        # digits, random codes otherwise); random +-1 is its stated alternative.
        # Drawn with Python's own seeded generator: no tensor arithmetic, so building on
        # the meta device stays cheap (meta arithmetic imports sympy).
        rng = random.Random(0)
        codes = [[rng.choice((-1.0, 1.0)) for _ in range(in_features)] for _ in range(out_features)]
        self.weight = nn.Parameter(torch.tensor(codes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.unsqueeze(1) - self.weight).pow(2).sum(dim=-1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


# --- LeCun 1989 -------------------------------------------------------------------

# H2's connection table. The paper says only that each H2 map combines 8 of the 12
# H1 maps; this table is our choice: three groups of 4 output maps, each group
# reading 8 H1 maps, so every H1 map feeds exactly 8 of the 12 H2 maps.
# H1 input maps, H2 output maps
H2_TABLE: tuple[tuple[tuple[int, ...], int], ...] = (
    ((0, 1, 2, 3, 4, 5, 6, 7), 4),  # H2 maps 0-3
    ((4, 5, 6, 7, 8, 9, 10, 11), 4),  # H2 maps 4-7
    ((0, 1, 2, 3, 8, 9, 10, 11), 4),  # H2 maps 8-11
)


class LeNet1989(nn.Sequential):
    """LeCun 1989, Figure 3: 16x16 -> H1 12@8x8 -> H2 12@4x4 -> H3 30 -> 10.

    H1 and H2 use 5x5 kernels two pixels apart on an input extended by 2 pixels
    of background (-1), which is what makes 16 -> 8 -> 4 work out.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__(
            OrderedDict(
                # layer H1: 768 units, 19,968 connections, 1,068 free parameters
                pad1=nn.ConstantPad2d(2, -1.0),
                h1=nn.Conv2d(1, 12, kernel_size=5, stride=2, bias=False),
                bias1=UnsharedBias(12, 8, 8),
                act1=ScaledTanh(),
                # layer H2: 192 units, 38,592 connections, 2,592 free parameters
                pad2=nn.ConstantPad2d(2, -1.0),
                h2=MapTable(H2_TABLE, kernel_size=5, stride=2, bias=False),
                bias2=UnsharedBias(12, 4, 4),
                act2=ScaledTanh(),
                # layer H3: 30 units fully connected, 5,790 connections and parameters
                flatten=nn.Flatten(1),
                h3=nn.Linear(12 * 4 * 4, 30),
                act3=ScaledTanh(),
                # output: 10 units, 310 connections and parameters; targets are +-1
                output=nn.Linear(30, num_classes),
                act_out=ScaledTanh(),
            )
        )


@register_model(
    family="lenet",
    paper=LENET_1989,
    input_shape=(1, 16, 16),
    note="9,760 free parameters as in the paper; H2's 8-of-12 map table is not published (ours: see H2_TABLE)",
)
def lenet(*, num_classes: int = 10) -> LeNet1989:
    """The 1989 zip-code network, 16x16 grey input scaled to [-1, 1]."""
    check_positive("num_classes", num_classes, "a positive integer")
    return LeNet1989(num_classes=num_classes)


# --- LeCun 1998 -------------------------------------------------------------------

# Table I: which S2 feature maps each C3 feature map reads, in the paper's cyclic
# order. C3 maps 0-5 read 3 contiguous S2 maps, 6-11 read 4 contiguous, 12-14
# read 4 discontinuous, 15 reads all six.
# S2 input maps, C3 output maps
C3_TABLE: tuple[tuple[tuple[int, ...], int], ...] = (
    ((0, 1, 2), 1),
    ((1, 2, 3), 1),
    ((2, 3, 4), 1),
    ((3, 4, 5), 1),
    ((4, 5, 0), 1),
    ((5, 0, 1), 1),
    ((0, 1, 2, 3), 1),
    ((1, 2, 3, 4), 1),
    ((2, 3, 4, 5), 1),
    ((3, 4, 5, 0), 1),
    ((4, 5, 0, 1), 1),
    ((5, 0, 1, 2), 1),
    ((0, 1, 3, 4), 1),
    ((1, 2, 4, 5), 1),
    ((0, 2, 3, 5), 1),
    ((0, 1, 2, 3, 4, 5), 1),
)


class LeNet5(nn.Sequential):
    """LeCun 1998, Figure 2: C1 6@28x28, S2 6@14x14, C3 16@10x10, S4 16@5x5,
    C5 120, F6 84, 10 Euclidean RBF outputs.

    Every unit up to F6 passes its weighted sum plus bias through the squashing
    function (section II-B), hence an activation after each C, S and F layer.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__(
            OrderedDict(
                c1=nn.Conv2d(1, 6, kernel_size=5),  # 156 parameters
                act1=ScaledTanh(),
                s2=Subsampling(6),  # 12 parameters
                act2=ScaledTanh(),
                c3=MapTable(C3_TABLE, kernel_size=5),  # 1,516 parameters
                act3=ScaledTanh(),
                s4=Subsampling(16),  # 32 parameters
                act4=ScaledTanh(),
                c5=nn.Conv2d(16, 120, kernel_size=5),  # 48,120 parameters
                act5=ScaledTanh(),
                flatten=nn.Flatten(1),
                f6=nn.Linear(120, 84),  # 10,164 parameters
                act6=ScaledTanh(),
                output=EuclideanRBF(84, num_classes),  # 840 parameters
            )
        )


@register_model(
    family="lenet",
    paper=LENET_1998,
    input_shape=(1, 32, 32),
    note="60,840 trainable parameters (the paper rounds to 60,000); RBF outputs are distances: smallest wins",
)
def lenet5(*, num_classes: int = 10) -> LeNet5:
    """LeNet-5 with the paper's C3 table, trainable subsampling and RBF outputs."""
    check_positive("num_classes", num_classes, "a positive integer")
    return LeNet5(num_classes=num_classes)