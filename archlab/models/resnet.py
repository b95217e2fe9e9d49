"""ResNet: He, Zhang, Ren and Sun, "Deep Residual Learning for Image
Recognition", CVPR 2016, Table 1 (ImageNet architectures, 18 to 152 layers).

Shortcuts are the paper's option B: identity where the shape is unchanged, a
1x1 projection convolution plus batch normalization where it changes (the
first block of a stage). Children are named as in torchvision, so a state dict
of one loads into the other: ``layer1`` is the paper's ``conv2_x``,
``layer2`` is ``conv3_x``, ``layer3`` is ``conv4_x`` and ``layer4`` is
``conv5_x``.

Two layouts of the down-sampling bottleneck block are registered:

* ``resnet50`` / ``resnet101`` / ``resnet152``: the paper's, with the stride 2
  on the first 1x1 convolution (the released Caffe models do this).
* ``resnet50_v1_5`` / ... : stride 2 on the 3x3 convolution, torchvision's
  layout, known as "ResNet v1.5". The 3x3 then sees the full-resolution map,
  which costs more multiply-adds (about 4.09 G instead of 3.86 G for ResNet-50)
  and is slightly more accurate. The weights are the same shapes, so the
  parameter counts are identical.

Basic blocks (18 and 34 layers) put the stride on their first 3x3 either way.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from archlab.models._registry import Reference, register_model
from archlab.models.layers import check_positive

PAPER = "He et al. 2016, Deep Residual Learning for Image Recognition (CVPR), Table 1"


class ResNetConfig(NamedTuple):
    block: str  # "basic" (two 3x3) or "bottleneck" (1x1, 3x3, 1x1)
    blocks: tuple[int, int, int, int]  # blocks per stage, conv2_x .. conv5_x


# Table 1, one column per depth.
# depth: block,         conv2_x, conv3_x, conv4_x, conv5_x
RESNET_TABLE: dict[int, ResNetConfig] = {
    18: ResNetConfig("basic", (2, 2, 2, 2)),
    34: ResNetConfig("basic", (3, 4, 6, 3)),
    50: ResNetConfig("bottleneck", (3, 4, 6, 3)),
    101: ResNetConfig("bottleneck", (3, 4, 23, 3)),
    152: ResNetConfig("bottleneck", (3, 8, 36, 3)),
}

# Table 1's rows, shared by every depth. ``width`` is the 3x3 layers' channel
# count; a bottleneck block's output is 4x wider (the "1x1, 256" row).
# width, stride of the first block    (stage, output size at 224)
STAGES: tuple[tuple[int, int], ...] = (
    (64, 1),  # conv2_x, 56x56 (the max pool already halved it)
    (128, 2),  # conv3_x, 28x28
    (256, 2),  # conv4_x, 14x14
    (512, 2),  # conv5_x, 7x7
)


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Shortcut option B: a strided 1x1 convolution and batch normalization."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (Figure 5, left), for ResNet-18 and -34."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, stride_in_1x1: bool = False) -> None:
        # ``stride_in_1x1`` is accepted so both block types build alike; a
        # basic block has no 1x1, and strides its first 3x3 in both layouts.
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU(inplace=True)
        self.downsample = (
            _projection(in_channels, out_channels, stride) if stride != 1 or in_channels != out_channels else None
        )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        # The ReLU comes after the addition (the original, "post-activation" unit).
        return self.relu2(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand by 4 (Figure 5, right), for ResNet-50/101/152."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, stride_in_1x1: bool = True) -> None:
        super().__init__()
        out_channels = width * self.expansion
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, width, 1, stride=stride_1x1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride_3x3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu3 = nn.ReLU(inplace=True)
        self.downsample = (
            _projection(in_channels, out_channels, stride) if stride != 1 or in_channels != out_channels else None
        )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + identity)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """Stem (conv1 7x7/2 and a 3x3/2 max pool), four stages, global average
    pool and one fully connected layer.

    ``layer1`` .. ``layer4`` are the paper's ``conv2_x`` .. ``conv5_x``; each is
    an ``nn.Sequential`` of blocks whose first block changes stride and width.
    """

    def __init__(self, config: ResNetConfig, num_classes: int = 1000, stride_in_1x1: bool = True) -> None:
        super().__init__()
        block = BLOCKS[config.block]
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = 64
        for index, ((width, stride), count) in enumerate(zip(STAGES, config.blocks), start=1):
            layers = []
            for i in range(count):
                layers.append(block(channels, width, stride if i == 0 else 1, stride_in_1x1))
                channels = width * block.expansion
            self.add_module(f"layer{index}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def _resnet(depth: int, num_classes: int, stride_in_1x1: bool) -> ResNet:
    check_positive("num_classes", num_classes)
    return ResNet(RESNET_TABLE[depth], num_classes=num_classes, stride_in_1x1=stride_in_1x1)


# Published counts of torchvision's models (their docs' "num_params"), which
# have exactly these layers. torchvision uses the v1.5 stride placement; moving
# the stride between a bottleneck's 1x1 and 3x3 changes no weight shape, so the
# same count holds for the paper's layout.
def _reference(params: int, name: str, paper_layout: bool = False) -> Reference:
    source = f"torchvision.models.{name}"
    if paper_layout:
        source += " (v1.5 layout; the stride placement, 1x1 or 3x3, does not change the parameters)"
    return Reference(params=params, source=source)


@register_model(family="resnet", paper=PAPER, reference=_reference(11_689_512, "resnet18"))
def resnet18(*, num_classes: int = 1000) -> ResNet:
    return _resnet(18, num_classes, stride_in_1x1=True)


@register_model(family="resnet", paper=PAPER, reference=_reference(21_797_672, "resnet34"))
def resnet34(*, num_classes: int = 1000) -> ResNet:
    return _resnet(34, num_classes, stride_in_1x1=True)


_PAPER_NOTE = "paper layout: stride 2 on the first 1x1 of down-sampling blocks (original Caffe model)"
_V15_NOTE = "ResNet v1.5 (torchvision layout): stride 2 on the 3x3 of down-sampling blocks"


@register_model(family="resnet", paper=PAPER, reference=_reference(25_557_032, "resnet50", True), note=_PAPER_NOTE)
def resnet50(*, num_classes: int = 1000) -> ResNet:
    return _resnet(50, num_classes, stride_in_1x1=True)


@register_model(family="resnet", paper=PAPER, reference=_reference(44_549_160, "resnet101", True), note=_PAPER_NOTE)
def resnet101(*, num_classes: int = 1000) -> ResNet:
    return _resnet(101, num_classes, stride_in_1x1=True)


@register_model(family="resnet", paper=PAPER, reference=_reference(60_192_808, "resnet152", True), note=_PAPER_NOTE)
def resnet152(*, num_classes: int = 1000) -> ResNet:
    return _resnet(152, num_classes, stride_in_1x1=True)


@register_model(family="resnet", paper=PAPER, reference=_reference(25_557_032, "resnet50"), note=_V15_NOTE)
def resnet50_v1_5(*, num_classes: int = 1000) -> ResNet:
    return _resnet(50, num_classes, stride_in_1x1=False)


@register_model(family="resnet", paper=PAPER, reference=_reference(44_549_160, "resnet101"), note=_V15_NOTE)
def resnet101_v1_5(*, num_classes: int = 1000) -> ResNet:
    return _resnet(101, num_classes, stride_in_1x1=False)


@register_model(family="resnet", paper=PAPER, reference=_reference(60_192_808, "resnet152"), note=_V15_NOTE)
def resnet152_v1_5(*, num_classes: int = 1000) -> ResNet:
    return _resnet(152, num_classes, stride_in_1x1=False)
