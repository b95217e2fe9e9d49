"""AlexNet: the ILSVRC 2012 winner, and its later single-GPU layout.

* ``alexnet``: Krizhevsky, Sutskever & Hinton 2012, "ImageNet Classification with
  Deep Convolutional Neural Networks", NIPS; section 3 and Figure 2. The network
  was split over two GTX 580 GPUs: conv2, conv4 and conv5 see only the maps on
  their own GPU, which is exactly a convolution with ``groups=2``; conv3 and the
  fully connected layers communicate across GPUs (``groups=1``).
* ``alexnet_owt``: Krizhevsky 2014, "One weird trick for parallelizing
  convolutional neural networks", arXiv:1404.5997; the single-GPU column layout
  (64, 192, 384, 256, 256 filters, no LRN) as torchvision ships it as
  ``torchvision.models.alexnet``.

Names follow the original Caffe release (conv1..conv5, norm1, pool1, fc6..fc8).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
from torch import nn

from archlab.errors import UserError
from archlab.models._registry import Reference, register_model
from archlab.models.layers import check_positive

ALEXNET_2012 = "Krizhevsky et al. 2012, ImageNet Classification with Deep Convolutional Neural Networks"
ALEXNET_2014 = "Krizhevsky 2014, One weird trick for parallelizing convolutional neural networks"

# Section 3.3: b = a / (k + alpha * sum_j a_j^2)^beta over n adjacent maps, with
# k=2, n=5, alpha=1e-4, beta=0.75. torch's LocalResponseNorm divides alpha by n
# (Caffe's convention), so the paper's formula needs alpha * n here.
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0


def local_response_norm() -> nn.LocalResponseNorm:
    """The paper's response normalization (also VGG's A-LRN)."""
    return nn.LocalResponseNorm(size=LRN_SIZE, alpha=LRN_ALPHA * LRN_SIZE, beta=LRN_BETA, k=LRN_K)


class ConvRow(NamedTuple):
    filters: int
    kernel: int
    stride: int
    pad: int
    groups: int
    lrn: bool
    maxpool: bool


# 2012, section 3.5 and Figure 2 (input 227x227: 11x11 stride 4 to 55x55 needs it)
# filters, kernel, stride, pad, groups, LRN, max-pool 3/2
ALEXNET_2012_CONVS = (
    ConvRow(96, 11, 4, 0, 1, True, True),  # conv1 -> 55x55 -> 27x27
    ConvRow(256, 5, 1, 2, 2, True, True),  # conv2 -> 27x27 -> 13x13
    ConvRow(384, 3, 1, 1, 1, False, False),  # conv3, across both GPUs
    ConvRow(384, 3, 1, 1, 2, False, False),  # conv4
    ConvRow(256, 3, 1, 1, 2, False, True),  # conv5 -> 13x13 -> 6x6
)

# 2014, "one weird trick" single-column layout (torchvision's alexnet)
# filters, kernel, stride, pad, groups, LRN, max-pool 3/2
ALEXNET_OWT_CONVS = (
    ConvRow(64, 11, 4, 2, 1, False, True),  # conv1 -> 55x55 -> 27x27
    ConvRow(192, 5, 1, 2, 1, False, True),  # conv2 -> 27x27 -> 13x13
    ConvRow(384, 3, 1, 1, 1, False, False),  # conv3
    ConvRow(256, 3, 1, 1, 1, False, False),  # conv4
    ConvRow(256, 3, 1, 1, 1, False, True),  # conv5 -> 13x13 -> 6x6
)

# fc6, fc7 (4096 each, ReLU, dropout), then fc8 to the classes
FC_WIDTHS = (4096, 4096)


def make_features(rows: tuple[ConvRow, ...], in_channels: int = 3) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, row in enumerate(rows, start=1):
        layers[f"conv{i}"] = nn.Conv2d(
            in_channels, row.filters, row.kernel, row.stride, row.pad, groups=row.groups
        )
        layers[f"relu{i}"] = nn.ReLU(inplace=True)
        if row.lrn:
            layers[f"norm{i}"] = local_response_norm()
        if row.maxpool:
            # overlapping pooling, section 3.4
            layers[f"pool{i}"] = nn.MaxPool2d(kernel_size=3, stride=2)
        in_channels = row.filters
    return nn.Sequential(layers)


def make_classifier(in_features: int, num_classes: int, dropout: float, dropout_first: bool) -> nn.Sequential:
    """fc6, fc7, fc8. The 2012 paper drops out the outputs of fc6 and fc7;
    torchvision's layout drops out the inputs of fc6 and fc7 instead."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, width in enumerate(FC_WIDTHS, start=6):
        if dropout_first:
            layers[f"drop{i}"] = nn.Dropout(p=dropout)
        layers[f"fc{i}"] = nn.Linear(in_features, width)
        layers[f"relu{i}"] = nn.ReLU(inplace=True)
        if not dropout_first:
            layers[f"drop{i}"] = nn.Dropout(p=dropout)
        in_features = width
    layers["fc8"] = nn.Linear(in_features, num_classes)
    return nn.Sequential(layers)


class AlexNet(nn.Module):
    """features -> [avgpool] -> flatten -> classifier; the 2012 network has no
    adaptive pool (its 227x227 input gives conv5's 6x6 map exactly)."""

    def __init__(
        self, features: nn.Sequential, classifier: nn.Sequential, avgpool: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.features = features
        self.avgpool = avgpool
        self.flatten = nn.Flatten(1)
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.avgpool is not None:
            x = self.avgpool(x)
        return self.classifier(self.flatten(x))


@register_model(
    family="alexnet",
    paper=ALEXNET_2012,
    input_shape=(3, 227, 227),
    note="two GPUs as groups=2 in conv2, conv4, conv5; input 227x227 (the paper says 224)",
)
def alexnet(*, num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    """The 2012 network: 60,965,224 parameters (the paper: '60 million')."""
    _check(num_classes, dropout)
    features = make_features(ALEXNET_2012_CONVS)
    classifier = make_classifier(256 * 6 * 6, num_classes, dropout, dropout_first=False)
    return AlexNet(features, classifier)


@register_model(
    family="alexnet",
    paper=ALEXNET_2014,
    reference=Reference(params=61_100_840, source="torchvision.models.alexnet (AlexNet_Weights.IMAGENET1K_V1)"),
    note="torchvision's AlexNet: single GPU, no LRN, AdaptiveAvgPool2d(6x6) before the classifier",
)
def alexnet_owt(*, num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    """The single-column layout of 'one weird trick', as torchvision ships it."""
    _check(num_classes, dropout)
    features = make_features(ALEXNET_OWT_CONVS)
    classifier = make_classifier(256 * 6 * 6, num_classes, dropout, dropout_first=True)
    return AlexNet(features, classifier, avgpool=nn.AdaptiveAvgPool2d((6, 6)))


def _check(num_classes: int, dropout: float) -> None:
    check_positive("num_classes", num_classes, "a positive integer")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"dropout must be a probability in [0, 1), got {dropout}")
