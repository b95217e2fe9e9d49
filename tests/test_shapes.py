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
