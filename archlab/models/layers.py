"""Small building blocks shared by several families."""

from __future__ import annotations

import torch
from torch import nn

from archlab.errors import UserError


def check_positive(name: str, value: int, wording: str = "at least 1") -> None:
    """A builder option that counts something (``num_classes``, ``stacks`` ...) must be >= 1;
    refused with "<name> must be <wording>, got <value>"."""
    if value < 1:
        raise UserError(f"{name} must be {wording}, got {value}")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor``, never more than 10% down.

    This is the rounding of the official MobileNetV2 and EfficientNet code
    (``_make_divisible`` in the TensorFlow reference implementations).
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBNAct(nn.Sequential):
    """Convolution, batch normalization, activation, as named children
    ``conv``, ``bn`` and ``act`` (the last two optional)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] | None = None,
        groups: int = 1,
        bias: bool = False,
        bn: bool = True,
        bn_eps: float = 1e-5,
        act: type[nn.Module] | None = nn.ReLU,
    ) -> None:
        if padding is None:
            k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
            padding = (k[0] // 2, k[1] // 2)
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias)
        if bn:
            self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps)
        if act is not None:
            self.act = act(inplace=True) if act in (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish) else act()


def run_children(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The forward of a network whose children are registered in data-flow order: a plain chain
    (the Inception networks, whose table rows are named children rather than an nn.Sequential)."""
    for child in module.children():
        x = child(x)
    return x
