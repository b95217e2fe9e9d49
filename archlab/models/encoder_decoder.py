"""Encoder-decoder networks of the course: FCN, U-Net, stacked hourglass.

- Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic
  Segmentation", CVPR 2015 (arXiv:1411.4038), Figure 3; layers as in the
  authors' Caffe models ``voc-fcn32s``/``voc-fcn16s``/``voc-fcn8s``
  (shelhamer/fcn.berkeleyvision.org, ``net.py``).
- Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical
  Image Segmentation", MICCAI 2015 (arXiv:1505.04597), Figure 1.
- Newell, Yang & Deng, "Stacked Hourglass Networks for Human Pose Estimation",
  ECCV 2016 (arXiv:1603.06937), Figures 3-4; layers as in the authors' Torch
  code (princeton-vl/pose-hg-train, ``src/models/hg.lua`` and
  ``layers/Residual.lua``, nModules=1).

All three shrink the image in an encoder and grow it back in a decoder, joining
the two with skip connections from the encoder: FCN adds class scores of pool4
and pool3, U-Net concatenates cropped feature maps, the hourglass adds a
residual branch kept at each resolution.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from archlab.errors import UserError
from archlab.models.layers import ConvBNAct, check_positive
from archlab.models._registry import register_model

# ---------------------------------------------------------------------------
# FCN (VGG16 backbone)
# ---------------------------------------------------------------------------

# The VGG16 ("D") convolutions, as in voc-fcn*/net.py.
# block, convs, channels
VGG16_BLOCKS = (
    (1, 2, 64),
    (2, 2, 128),
    (3, 3, 256),
    (4, 3, 512),
    (5, 3, 512),
)


class FCNVariant(NamedTuple):
    """One column of FCN's Figure 3: which pools are fused, and the last upsampling.

    The crop offsets are those Caffe's ``coord_map.crop`` computes for the
    reference nets: they undo the 100-pixel padding of conv1_1 and the
    deconvolutions' borders, so the output lines up with the input pixels.
    """

    fuse: tuple[tuple[str, int, int], ...]  # (pool, its channels, crop offset), coarse to fine
    upscore_stride: int  # the final deconvolution: kernel 2*stride, stride
    crop: int  # offset of the final crop to the input size


# variant: fuse (pool, channels, crop), upscore stride, crop
FCN_VARIANTS = {
    "fcn32s": FCNVariant(fuse=(), upscore_stride=32, crop=19),
    "fcn16s": FCNVariant(fuse=(("pool4", 512, 5),), upscore_stride=16, crop=27),
    "fcn8s": FCNVariant(fuse=(("pool4", 512, 5), ("pool3", 256, 9)), upscore_stride=8, crop=31),
}


class VGGBlock(nn.Sequential):
    """``convK_1 .. convK_n`` (3x3, pad 1, bias) with ReLUs, then ``poolK`` (2x2/2)."""

    def __init__(self, block: int, convs: int, in_channels: int, out_channels: int, first_padding: int = 1) -> None:
        super().__init__()
        for i in range(1, convs + 1):
            padding = first_padding if i == 1 else 1
            self.add_module(f"conv{block}_{i}", nn.Conv2d(in_channels, out_channels, 3, padding=padding))
            self.add_module(f"relu{block}_{i}", nn.ReLU(inplace=True))
            in_channels = out_channels
        # Caffe's pooling rounds up, so odd sizes keep their last row and column.
        self.add_module(f"pool{block}", nn.MaxPool2d(2, stride=2, ceil_mode=True))


class ScoreFusion(nn.Module):
    """FCN's skip: upsample the coarser scores x2 and add the scores of a pool layer.

    ``upscore`` is Caffe's ``upscore2`` / ``upscore_pool4``, ``score`` is
    ``score_pool4`` / ``score_pool3``; the sum is ``fuse_pool4`` / ``fuse_pool3``.
    """

    def __init__(self, pool_channels: int, num_classes: int, crop: int) -> None:
        super().__init__()
        self.upscore = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
        self.score = nn.Conv2d(pool_channels, num_classes, 1)
        self.crop = crop

    def forward(self, coarse: Tensor, pool: Tensor) -> Tensor:
        up = self.upscore(coarse)
        o = self.crop
        score = self.score(pool)[:, :, o : o + up.shape[-2], o : o + up.shape[-1]]
        return up + score


class FCN(nn.Module):
    """VGG16 FCN: blocks 1-5, fc6/fc7 as convolutions, score_fr, fusions, upscore, crop."""

    def __init__(self, variant: FCNVariant, num_classes: int = 21) -> None:
        super().__init__()
        in_channels = 3
        for block, convs, channels in VGG16_BLOCKS:
            # conv1_1's 100-pixel padding lets any input reach fc6's 7x7 window.
            first_padding = 100 if block == 1 else 1
            self.add_module(f"block{block}", VGGBlock(block, convs, in_channels, channels, first_padding))
            in_channels = channels
        self.fc6 = nn.Conv2d(512, 4096, 7)
        self.relu6 = nn.ReLU(inplace=True)
        self.drop6 = nn.Dropout(0.5)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.relu7 = nn.ReLU(inplace=True)
        self.drop7 = nn.Dropout(0.5)
        self.score_fr = nn.Conv2d(4096, num_classes, 1)
        self.fused_pools = tuple(pool for pool, _, _ in variant.fuse)
        for pool, channels, crop in variant.fuse:
            self.add_module(f"fuse_{pool}", ScoreFusion(channels, num_classes, crop))
        # Caffe's upscore (32s), upscore16 (16s) or upscore8 (8s).
        s = variant.upscore_stride
        self.upscore = nn.ConvTranspose2d(num_classes, num_classes, 2 * s, stride=s, bias=False)
        self.crop = variant.crop

    def forward(self, x: Tensor) -> Tensor:
        pools = {}
        h = x
        for block, _, _ in VGG16_BLOCKS:
            h = getattr(self, f"block{block}")(h)
            pools[f"pool{block}"] = h
        h = self.drop6(self.relu6(self.fc6(h)))
        h = self.drop7(self.relu7(self.fc7(h)))
        h = self.score_fr(h)
        for pool in self.fused_pools:
            h = getattr(self, f"fuse_{pool}")(h, pools[pool])
        h = self.upscore(h)
        o = self.crop
        return h[:, :, o : o + x.shape[-2], o : o + x.shape[-1]]


def _fcn(variant: str, num_classes: int) -> FCN:
    check_positive("num_classes", num_classes)
    return FCN(FCN_VARIANTS[variant], num_classes)


_FCN_PAPER = "Long, Shelhamer & Darrell 2015, Fully Convolutional Networks for Semantic Segmentation"
_FCN_NOTE = "VGG16 FCN as in the authors' Caffe voc-fcn models; 500x500 is the largest PASCAL VOC image"


@register_model(family="encoder-decoder", paper=_FCN_PAPER, input_shape=(3, 500, 500), note=_FCN_NOTE)
def fcn32s(*, num_classes: int = 21) -> FCN:
    return _fcn("fcn32s", num_classes)


@register_model(family="encoder-decoder", paper=_FCN_PAPER, input_shape=(3, 500, 500), note=_FCN_NOTE)
def fcn16s(*, num_classes: int = 21) -> FCN:
    return _fcn("fcn16s", num_classes)


@register_model(family="encoder-decoder", paper=_FCN_PAPER, input_shape=(3, 500, 500), note=_FCN_NOTE)
def fcn8s(*, num_classes: int = 21) -> FCN:
    return _fcn("fcn8s", num_classes)


# ---------------------------------------------------------------------------
# U-Net
# ---------------------------------------------------------------------------

# Figure 1, channels as multiples of ``base`` (64 in the paper).
# level, channels
UNET_LEVELS = (
    ("down1", 1),  # 64
    ("down2", 2),  # 128
    ("down3", 4),  # 256
    ("down4", 8),  # 512
    ("bottom", 16),  # 1024
)


class DoubleConv(nn.Sequential):
    """Two unpadded 3x3 convolutions with ReLU: each trims one pixel per side."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3)
        self.relu2 = nn.ReLU(inplace=True)


def center_crop(x: Tensor, height: int, width: int) -> Tensor:
    """The middle ``height`` x ``width`` of ``x`` (U-Net's "copy and crop")."""
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[:, :, top : top + height, left : left + width]


class UpBlock(nn.Module):
    """"up-conv 2x2" halving the channels, concatenation with the cropped skip,
    then two 3x3 convolutions."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.upconv = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.upconv(x)
        # The unpadded convolutions make the decoder's maps smaller than the
        # encoder's, so the skip is cropped to the centre (from shapes, not constants).
        skip = center_crop(skip, x.shape[-2], x.shape[-1])
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, base: int = 64) -> None:
        super().__init__()
        channels = in_channels
        for i, (name, mult) in enumerate(UNET_LEVELS):
            if i > 0:
                self.add_module(f"pool{i}", nn.MaxPool2d(2, stride=2))
            self.add_module(name, DoubleConv(channels, base * mult))
            channels = base * mult
        # up1 is the deepest: 1024 -> 512, up4 the last: 128 -> 64.
        for i, (_, mult) in enumerate(reversed(UNET_LEVELS[:-1]), start=1):
            self.add_module(f"up{i}", UpBlock(channels, base * mult))
            channels = base * mult
        self.head = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for i, (name, _) in enumerate(UNET_LEVELS):
            if i > 0:
                skips.append(x)
                x = getattr(self, f"pool{i}")(x)
            x = getattr(self, name)(x)
        for i in range(1, len(UNET_LEVELS)):
            x = getattr(self, f"up{i}")(x, skips.pop())
        return self.head(x)


def _unet_input(*, in_channels: int = 1, **_: object) -> tuple[int, int, int]:
    return (in_channels, 572, 572)


@register_model(
    family="encoder-decoder",
    paper="Ronneberger, Fischer & Brox 2015, U-Net: Convolutional Networks for Biomedical Image Segmentation",
    input_shape=_unet_input,
    note="unpadded convolutions: a 572x572 tile gives a 388x388 segmentation map (Figure 1)",
)
def unet(*, in_channels: int = 1, num_classes: int = 2, base: int = 64) -> UNet:
    for option, value in (("in_channels", in_channels), ("num_classes", num_classes), ("base", base)):
        check_positive(option, value)
    return UNet(in_channels, num_classes, base)


# ---------------------------------------------------------------------------
# Stacked hourglass
# ---------------------------------------------------------------------------


class Residual(nn.Module):
    """The hourglass's residual module (Figure 4, left; ``Residual.lua``):
    pre-activation bottleneck of width out/2, with a 1x1 skip convolution
    only where the channel count changes. Torch convolutions carry biases."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, mid, 1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(mid)
        self.relu3 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(mid, out_channels, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu1(self.bn1(x)))
        out = self.conv2(self.relu2(self.bn2(out)))
        out = self.conv3(self.relu3(self.bn3(out)))
        identity = x if self.skip is None else self.skip(x)
        return out + identity


class Hourglass(nn.Module):
    """One hourglass level (Figure 3), named as in ``hg.lua``: ``up1`` keeps the
    resolution; ``pool`` - ``low1`` - ``low2`` (the next level, or a residual at
    the deepest) - ``low3`` - ``upsample`` (nearest, x2) come back up to add."""

    def __init__(self, depth: int, features: int) -> None:
        super().__init__()
        self.up1 = Residual(features, features)
        self.pool = nn.MaxPool2d(2, stride=2)
        self.low1 = Residual(features, features)
        self.low2 = Hourglass(depth - 1, features) if depth > 1 else Residual(features, features)
        self.low3 = Residual(features, features)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: Tensor) -> Tensor:
        low = self.upsample(self.low3(self.low2(self.low1(self.pool(x)))))
        return self.up1(x) + low


class HourglassStack(nn.Module):
    """An hourglass and its head: a residual, ``lin`` (1x1 conv-BN-ReLU), heatmaps."""

    def __init__(self, depth: int, features: int, num_joints: int) -> None:
        super().__init__()
        self.hourglass = Hourglass(depth, features)
        self.res = Residual(features, features)
        self.lin = ConvBNAct(features, features, 1, bias=True)
        self.heatmaps = nn.Conv2d(features, num_joints, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.lin(self.res(self.hourglass(x)))
        return features, self.heatmaps(features)


class Merge(nn.Module):
    """Between stacks: the next input is the stack's input plus 1x1 maps of its
    features (``ll_``) and of its heatmaps (``tmpOut_``)."""

    def __init__(self, features: int, num_joints: int) -> None:
        super().__init__()
        self.features = nn.Conv2d(features, features, 1)
        self.heatmaps = nn.Conv2d(num_joints, features, 1)

    def forward(self, x: Tensor, features: Tensor, heatmaps: Tensor) -> Tensor:
        return x + self.features(features) + self.heatmaps(heatmaps)


class StackedHourglass(nn.Module):
    """Stem to 1/4 resolution, then ``stack1 .. stackN`` with ``merge1 .. merge{N-1}``.

    The forward returns every stack's heatmaps: all are supervised in training.
    """

    def __init__(self, stacks: int = 8, num_joints: int = 16, features: int = 256, depth: int = 4) -> None:
        super().__init__()
        # hg.lua: cnv1 (7x7/2) 128px, r1, pool 64px, r4, r5
        self.stem = nn.Sequential()
        self.stem.add_module("conv1", ConvBNAct(3, 64, 7, stride=2, padding=3, bias=True))
        self.stem.add_module("res1", Residual(64, 128))
        self.stem.add_module("pool", nn.MaxPool2d(2, stride=2))
        self.stem.add_module("res2", Residual(128, 128))
        self.stem.add_module("res3", Residual(128, features))
        self.num_stacks = stacks
        for i in range(1, stacks + 1):
            self.add_module(f"stack{i}", HourglassStack(depth, features, num_joints))
            if i < stacks:
                self.add_module(f"merge{i}", Merge(features, num_joints))

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        outputs = []
        for i in range(1, self.num_stacks + 1):
            features, heatmaps = getattr(self, f"stack{i}")(x)
            outputs.append(heatmaps)
            if i < self.num_stacks:
                x = getattr(self, f"merge{i}")(x, features, heatmaps)
        return outputs


@register_model(
    family="encoder-decoder",
    paper="Newell, Yang & Deng 2016, Stacked Hourglass Networks for Human Pose Estimation",
    input_shape=(3, 256, 256),
    note="returns a list of per-stack heatmaps at 64x64 (intermediate supervision)",
)
def hourglass(*, stacks: int = 8, num_joints: int = 16, features: int = 256, depth: int = 4) -> StackedHourglass:
    check_positive("stacks", stacks)
    check_positive("depth", depth)
    check_positive("num_joints", num_joints)
    if features < 2 or features % 2:
        raise UserError(f"features must be even and at least 2 (bottlenecks are half as wide), got {features}")
    return StackedHourglass(stacks, num_joints, features, depth)
