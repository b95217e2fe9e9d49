"""DenseNet: Huang, Liu, van der Maaten and Weinberger, "Densely Connected
Convolutional Networks", CVPR 2017, Table 1 (the ImageNet DenseNet-BC models).

"BC" is both of the paper's refinements: each dense layer is a bottleneck
(BN-ReLU-Conv 1x1 to ``bn_size * k`` channels, then BN-ReLU-Conv 3x3 to ``k``),
and each transition compresses the channels by theta = 0.5. Inside a dense
block every layer takes the concatenation of the block's input and of all
earlier layers' outputs, so block ``b`` ends with ``c_in + n_b * k`` channels.

Children are named as in torchvision (``features.denseblock1.denselayer1.conv1``,
``features.transition1``, ``features.norm5``, ``classifier``), so the state
dicts are interchangeable.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
from torch import Tensor, nn

from archlab.models._registry import Reference, register_model
from archlab.models.layers import check_positive

PAPER = "Huang et al. 2017, Densely Connected Convolutional Networks (CVPR), Table 1"

BN_SIZE = 4  # the bottleneck's 1x1 produces 4k channels ("we let each 1x1 convolution produce 4k feature-maps")
COMPRESSION = 0.5  # theta of DenseNet-C: a transition keeps half of the channels


class DenseNetConfig(NamedTuple):
    growth_rate: int  # k, the channels each dense layer adds
    blocks: tuple[int, int, int, int]  # dense layers in dense blocks 1..4
    init_features: int  # output channels of the 7x7 stem convolution (2k)


# Table 1, one column per depth; DenseNet-161 is the wider k = 48 model.
# depth:             k,  block1..block4,  stem channels
DENSENET_TABLE: dict[int, DenseNetConfig] = {
    121: DenseNetConfig(32, (6, 12, 24, 16), 64),
    169: DenseNetConfig(32, (6, 12, 32, 32), 64),
    201: DenseNetConfig(32, (6, 12, 48, 32), 64),
    161: DenseNetConfig(48, (6, 12, 36, 24), 96),
}


class DenseLayer(nn.Module):
    """BN-ReLU-Conv(1x1, 4k) then BN-ReLU-Conv(3x3, k): the pre-activation
    bottleneck "H_l" of DenseNet-B. Its input is the block's concatenation."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int = BN_SIZE) -> None:
        super().__init__()
        width = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, growth_rate, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        # The in-place ReLU is safe: norm1 has already made a new tensor, so
        # the concatenated input that later layers reuse is never overwritten.
        out = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(out)))


class DenseBlock(nn.Module):
    """``num_layers`` dense layers ``denselayer1`` ..; each sees every earlier
    feature map of the block, concatenated along the channels."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int) -> None:
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(in_channels + i * growth_rate, growth_rate))

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.children():
            # Concatenating before the call (not inside the layer, as torchvision
            # does) keeps each layer's input a single tensor, so a per-layer
            # report shows its true input width.
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-Conv 1x1 (compressing the channels) and a 2x2 average pool,
    between two dense blocks."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(2, stride=2)


class DenseNet(nn.Module):
    """``features`` (stem, dense blocks with transitions between them, and the
    final ``norm5``), then ReLU, global average pool and ``classifier``."""

    def __init__(self, config: DenseNetConfig, num_classes: int = 1000) -> None:
        super().__init__()
        k = config.growth_rate
        channels = config.init_features
        features: OrderedDict[str, nn.Module] = OrderedDict(
            conv0=nn.Conv2d(3, channels, 7, stride=2, padding=3, bias=False),
            norm0=nn.BatchNorm2d(channels),
            relu0=nn.ReLU(inplace=True),
            pool0=nn.MaxPool2d(3, stride=2, padding=1),
        )
        for index, num_layers in enumerate(config.blocks, start=1):
            features[f"denseblock{index}"] = DenseBlock(num_layers, channels, k)
            channels += num_layers * k
            if index < len(config.blocks):
                compressed = int(channels * COMPRESSION)
                features[f"transition{index}"] = Transition(channels, compressed)
                channels = compressed
        # The blocks' layers are pre-activation, so the last block's output
        # still needs its BN and ReLU before pooling.
        features["norm5"] = nn.BatchNorm2d(channels)
        self.features = nn.Sequential(features)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.features(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.classifier(x)


def _densenet(depth: int, num_classes: int) -> DenseNet:
    check_positive("num_classes", num_classes)
    return DenseNet(DENSENET_TABLE[depth], num_classes=num_classes)


# Published parameter counts of torchvision's models (their docs' "num_params"),
# which have exactly these layers.
@register_model(family="densenet", paper=PAPER, reference=Reference(7_978_856, "torchvision.models.densenet121"))
def densenet121(*, num_classes: int = 1000) -> DenseNet:
    return _densenet(121, num_classes)


@register_model(family="densenet", paper=PAPER, reference=Reference(14_149_480, "torchvision.models.densenet169"))
def densenet169(*, num_classes: int = 1000) -> DenseNet:
    return _densenet(169, num_classes)


@register_model(family="densenet", paper=PAPER, reference=Reference(20_013_928, "torchvision.models.densenet201"))
def densenet201(*, num_classes: int = 1000) -> DenseNet:
    return _densenet(201, num_classes)


@register_model(family="densenet", paper=PAPER, reference=Reference(28_681_000, "torchvision.models.densenet161"))
def densenet161(*, num_classes: int = 1000) -> DenseNet:
    return _densenet(161, num_classes)
