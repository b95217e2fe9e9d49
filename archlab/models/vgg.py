"""VGG: very deep stacks of 3x3 convolutions.

Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale
Image Recognition", ICLR; Table 1 (configurations A, A-LRN, B, C, D, E),
section 2.1 (architecture) and section 3.1 (dropout on the first two FC layers).
The ``_bn`` variants add batch normalization after every convolution, as
torchvision does (it keeps the convolution biases).

Layer names follow the block structure of Table 1 and the original Caffe
release: ``features.block3.conv3`` is Caffe's conv3_3, then fc6, fc7, fc8.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from archlab.errors import UserError
from archlab.models.alexnet import local_response_norm
from archlab.models._registry import Reference, register_model
from archlab.models.layers import check_positive

PAPER = "Simonyan & Zisserman 2015, Very Deep Convolutional Networks for Large-Scale Image Recognition"

# Table 1, column by column, in the paper's own notation: "conv<receptive field
# size>-<number of channels>", and "LRN" for local response normalization. Each
# inner tuple is one block; a 2x2/2 maxpool ends every block, then
# FC-4096, FC-4096, FC-1000 and the soft-max (not a module here: logits out).
# The layers each configuration adds over the previous one are bold in the paper.
# block1, block2, block3, block4, block5
TABLE_1: dict[str, tuple[tuple[str, ...], ...]] = {
    "A": (  # 11 weight layers
        ("conv3-64",),
        ("conv3-128",),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "A-LRN": (  # 11 weight layers
        ("conv3-64", "LRN"),
        ("conv3-128",),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "B": (  # 13 weight layers
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "C": (  # 16 weight layers
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv1-256"),
        ("conv3-512", "conv3-512", "conv1-512"),
        ("conv3-512", "conv3-512", "conv1-512"),
    ),
    "D": (  # 16 weight layers
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512", "conv3-512"),
    ),
    "E": (  # 19 weight layers
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512", "conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512", "conv3-512", "conv3-512"),
    ),
}

FC_WIDTH = 4096
FINAL_MAP = 7  # 224 / 2**5: the classifier's fc6 expects a 512x7x7 map


def _parse_conv(cell: str) -> tuple[int, int]:
    """'conv3-256' -> (kernel 3, 256 channels)."""
    kernel, channels = cell.removeprefix("conv").split("-")
    return int(kernel), int(channels)


def make_features(config: str, batch_norm: bool, in_channels: int = 3) -> nn.Sequential:
    blocks: OrderedDict[str, nn.Module] = OrderedDict()
    for b, cells in enumerate(TABLE_1[config], start=1):
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        j = 0
        for cell in cells:
            if cell == "LRN":
                # after the preceding conv's ReLU, as AlexNet places it
                layers[f"norm{j}"] = local_response_norm()
                continue
            j += 1
            kernel, channels = _parse_conv(cell)
            # stride 1 and "same" padding (1 for 3x3, 0 for 1x1), section 2.1
            layers[f"conv{j}"] = nn.Conv2d(in_channels, channels, kernel, padding=kernel // 2)
            if batch_norm:
                layers[f"bn{j}"] = nn.BatchNorm2d(channels)
            layers[f"relu{j}"] = nn.ReLU(inplace=True)
            in_channels = channels
        layers["pool"] = nn.MaxPool2d(kernel_size=2, stride=2)
        blocks[f"block{b}"] = nn.Sequential(layers)
    return nn.Sequential(blocks)


class VGG(nn.Module):
    """features -> [avgpool] -> flatten -> classifier (fc6, fc7, fc8).

    The paper has no adaptive pool: a 224x224 input reaches fc6 as 512x7x7.
    ``avgpool`` (torchvision's AdaptiveAvgPool2d(7x7)) is an identity at 224 and
    lets other resolutions run; it is absent unless asked for.
    """

    def __init__(
        self,
        config: str,
        batch_norm: bool = False,
        num_classes: int = 1000,
        dropout: float = 0.5,
        adaptive_pool: bool = False,
    ) -> None:
        super().__init__()
        self.features = make_features(config, batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((FINAL_MAP, FINAL_MAP)) if adaptive_pool else None
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Sequential(
            OrderedDict(
                # every configuration's block5 ends with 512 maps
                fc6=nn.Linear(512 * FINAL_MAP * FINAL_MAP, FC_WIDTH),
                relu6=nn.ReLU(inplace=True),
                drop6=nn.Dropout(p=dropout),
                fc7=nn.Linear(FC_WIDTH, FC_WIDTH),
                relu7=nn.ReLU(inplace=True),
                drop7=nn.Dropout(p=dropout),
                fc8=nn.Linear(FC_WIDTH, num_classes),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.avgpool is not None:
            x = self.avgpool(x)
        return self.classifier(self.flatten(x))


def _vgg(config: str, batch_norm: bool, num_classes: int, dropout: float, adaptive_pool: bool) -> VGG:
    check_positive("num_classes", num_classes, "a positive integer")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"dropout must be a probability in [0, 1), got {dropout}")
    return VGG(config, batch_norm, num_classes, dropout, adaptive_pool)


def _torchvision(name: str, params: int) -> Reference:
    return Reference(params=params, source=f"torchvision.models.{name} ({name.upper()}_Weights.IMAGENET1K_V1)")


@register_model(family="vgg", paper=PAPER, reference=_torchvision("vgg11", 132_863_336), note="configuration A")
def vgg11(*, num_classes: int = 1000, dropout: float = 0.5, adaptive_pool: bool = False) -> VGG:
    return _vgg("A", False, num_classes, dropout, adaptive_pool)


@register_model(family="vgg", paper=PAPER, note="configuration A-LRN: LRN after conv1's ReLU")
def vgg11_lrn(*, num_classes: int = 1000, dropout: float = 0.5, adaptive_pool: bool = False) -> VGG:
    return _vgg("A-LRN", False, num_classes, dropout, adaptive_pool)


@register_model(family="vgg", paper=PAPER, reference=_torchvision("vgg13", 133_047_848), note="configuration B")
def vgg13(*, num_classes: int = 1000, dropout: float = 0.5, adaptive_pool: bool = False) -> VGG:
    return _vgg("B", False, num_classes, dropout, adaptive_pool)


@register_model(family="vgg", paper=PAPER, note="configuration C: 1x1 convs end blocks 3-5 (Table 2: 134M)")
def vgg16c(*, num_classes: int = 1000, dropout: float = 0.5, adaptive_pool: bool = False) -> VGG:
    return _vgg("C", False, num_classes, dropout, adaptive_pool)


@register_model(family="vgg", paper=PAPER, reference=_torchvision("vgg16", 138_357_544), note="configuration D")
def vgg16(*, num_classes: int = 1000, dropout: float = 0.5, adaptive_pool: bool = False) -> VGG:
    return _vgg("D", False, num_classes, dropout, adaptive_pool)


@register_model(family="vgg", paper=PAPER, reference=_torchvision("vgg19", 143_667_240), note="configuration E")
def vgg19(*, num_classes: int = 1000, dropout: float = 0.5, adaptive_pool: bool = False) -> VGG:
    return _vgg("E", False, num_classes, dropout, adaptive_pool)


_BN = "batch norm after each conv (torchvision)"


@register_model(family="vgg", paper=PAPER, reference=_torchvision("vgg11_bn", 132_868_840), note=f"A, {_BN}")
def vgg11_bn(*, num_classes: int = 1000, dropout: float = 0.5, adaptive_pool: bool = False) -> VGG:
    return _vgg("A", True, num_classes, dropout, adaptive_pool)


@register_model(family="vgg", paper=PAPER, reference=_torchvision("vgg13_bn", 133_053_736), note=f"B, {_BN}")
def vgg13_bn(*, num_classes: int = 1000, dropout: float = 0.5, adaptive_pool: bool = False) -> VGG:
    return _vgg("B", True, num_classes, dropout, adaptive_pool)


@register_model(family="vgg", paper=PAPER, reference=_torchvision("vgg16_bn", 138_365_992), note=f"D, {_BN}")
def vgg16_bn(*, num_classes: int = 1000, dropout: float = 0.5, adaptive_pool: bool = False) -> VGG:
    return _vgg("D", True, num_classes, dropout, adaptive_pool)


@register_model(family="vgg", paper=PAPER, reference=_torchvision("vgg19_bn", 143_678_248), note=f"E, {_BN}")
def vgg19_bn(*, num_classes: int = 1000, dropout: float = 0.5, adaptive_pool: bool = False) -> VGG:
    return _vgg("E", True, num_classes, dropout, adaptive_pool)
