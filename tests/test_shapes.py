"""The shape rules of the trace (archlab.trace.shapes) against real tensors."""

import pytest
import torch
from torch import nn

from archlab.trace.run import trace


# The trace answers some shapes itself (to avoid importing torch._dynamo); they must agree with PyTorch.
@pytest.mark.parametrize("layer, shape", [
    (nn.Conv2d(3, 5, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2)), (2, 3, 17, 12)),
    (nn.ConvTranspose2d(3, 5, 4, stride=3, padding=1, output_padding=2, dilation=1), (1, 3, 7, 9)),
    (nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2), (1, 4, 5, 5)),
    (nn.MaxPool2d(3, 2, ceil_mode=True), (1, 2, 112, 112)),
    (nn.MaxPool2d(3, 2, padding=1, ceil_mode=True), (1, 2, 13, 13)),
    (nn.MaxPool2d(2, 2, ceil_mode=True), (1, 2, 7, 7)),
    (nn.MaxPool2d(3, 1, padding=1, dilation=1), (1, 2, 5, 6)),
    (nn.AvgPool2d(3, 2, padding=1, ceil_mode=True), (1, 2, 8, 9)),
    (nn.AvgPool2d(5, 3), (1, 2, 17, 17)),
    (nn.BatchNorm2d(3), (2, 3, 4, 4)),
    (nn.AdaptiveAvgPool2d(1), (2, 3, 4, 4)),
    (nn.Linear(6, 2), (3, 6)),
])
def test_shape_rules_agree_with_real_tensors(layer, shape):
    layer.eval()
    with torch.no_grad():
        expected = layer(torch.randn(*shape)).shape
    tr = trace(layer, torch.empty(*shape, device="meta"))
    assert tr.values[tr.outputs[0]].shape == tuple(expected)


def test_broadcasting_add_and_mul_shapes():
    class Broadcast(nn.Module):
        def forward(self, x):
            return x * x.mean((2, 3), keepdim=True) + 1.0

    tr = trace(Broadcast(), torch.empty(2, 3, 4, 5, device="meta"))
    assert tr.values[tr.outputs[0]].shape == (2, 3, 4, 5)


class _Experts(nn.Module):
    """A grouped matmul as a mixture of experts runs it: the rows sorted by expert, each expert's
    rows multiplied by its own weight, the groups' ends from a count of the routing."""

    def __init__(self, form, experts=3, k=8, n=16):
        super().__init__()
        self.form, self.experts = form, experts
        self.w = nn.Parameter(torch.randn(experts, k, n) if form != "2d2d" else torch.randn(experts * k, n))

    def forward(self, x):
        if self.form == "3d3d":
            return torch._grouped_mm(x.reshape(self.experts, -1, x.shape[-1]), self.w)
        route = (torch.arange(x.shape[0], device=x.device) % self.experts).to(torch.float32)
        ends = torch.cumsum(torch.histc(route, bins=self.experts, min=0, max=self.experts - 1), 0).to(torch.int32)
        if self.form == "2d2d":  # the groups split the inner dimension: ends of k-slices
            ends = torch.arange(1, self.experts + 1, device=x.device, dtype=torch.int32) * (self.w.shape[0] // self.experts)
        return torch._grouped_mm(x, self.w, offs=ends)


@pytest.mark.skipif(not hasattr(torch.ops.aten, "_grouped_mm"), reason="PyTorch without _grouped_mm")
@pytest.mark.parametrize("form, shape", [("2d3d", (12, 8)), ("3d3d", (12, 8)), ("2d2d", (5, 24))])
def test_grouped_mm_shapes_agree_with_the_cpu_kernel_in_fp32(form, shape):
    # PyTorch's meta kernel refuses fp32 (bf16 only), the CPU kernel runs it: the trace follows the CPU
    layer = _Experts(form)
    with torch.no_grad():
        expected = layer(torch.randn(*shape)).shape
    tr = trace(layer, torch.empty(*shape, device="meta"))
    assert tr.values[tr.outputs[0]].shape == tuple(expected)
