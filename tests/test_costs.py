"""Counting rules on tiny layers, against answers computed by hand."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archlab
from archlab.trace.run import trace


def count(module, *shape):
    return archlab.count(module, input_size=shape, depth=1)


@pytest.mark.parametrize(
    "layer, input_size, macs, params",
    [
        # out 8x8, 8 filters of 3x3x3: 8*8*8 * 27
        (nn.Conv2d(3, 8, 3, bias=False), (3, 10, 10), 8 * 8 * 8 * 27, 216),
        # stride 2, padding 1: out 5x5
        (nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), (3, 10, 10), 5 * 5 * 8 * 27, 216),
        # dilation 2: effective 5x5 kernel, out 6x6; still 9 taps per input channel
        (nn.Conv2d(3, 8, 3, dilation=2, bias=False), (3, 10, 10), 6 * 6 * 8 * 27, 216),
        # groups 2: each output sees 4 of 8 input channels
        (nn.Conv2d(8, 16, 3, padding=1, groups=2, bias=False), (8, 6, 6), 6 * 6 * 16 * 4 * 9, 16 * 4 * 9),
        # depthwise: one 3x3 filter per channel (D_K^2 * M * D_G^2 of the course)
        (nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False), (32, 7, 7), 9 * 32 * 49, 9 * 32),
        # pointwise: M * D_G^2 * N
        (nn.Conv2d(32, 64, 1, bias=False), (32, 7, 7), 32 * 49 * 64, 32 * 64),
        # transposed: each of the 4x4 input positions scatters Cin*Cout*k^2 products
        (nn.ConvTranspose2d(4, 6, 3, stride=2, bias=False), (4, 4, 4), 4 * 4 * 4 * 6 * 9, 4 * 6 * 9),
        # transposed grouped: Cin * Cout/groups * k^2 per input position
        (nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2, bias=False), (4, 3, 3), 9 * 4 * 3 * 4, 4 * 3 * 4),
        # 1-d and 3-d convolutions go through the same rule
        (nn.Conv1d(2, 4, 3, bias=False), (2, 10, 1), None, None),
    ],
)
def test_convolution_macs(layer, input_size, macs, params):
    if macs is None:
        x = torch.empty(1, 2, 10, device="meta")
        tr = trace(layer, x)
        assert tr.values[tr.outputs[0]].shape == (1, 4, 8)
        from archlab.analysis.count import count_trace

        assert count_trace(tr, "conv1d").macs == 8 * 4 * 2 * 3
        return
    r = count(layer, *input_size)
    assert r.macs == macs
    assert r.flops == 2 * macs
    assert r.params == params
    assert r.macs_by_kind["conv"] == macs


def test_conv_bias_is_counted_apart_from_macs():
    r = count(nn.Conv2d(3, 8, 3), 3, 10, 10)
    assert r.macs == 8 * 8 * 8 * 27
    assert r.other_ops["bias"] == 8 * 8 * 8


def test_linear_and_batch():
    model = nn.Sequential(nn.Flatten(), nn.Linear(20, 30))
    r = count(model, 20, 1, 1)
    assert r.macs == 20 * 30 and r.macs_by_kind["linear"] == 600
    assert r.other_ops["bias"] == 30
    r4 = archlab.count(model, input_size=(20, 1, 1), batch=4, depth=0)
    assert r4.macs == 4 * 600, "counts are for the whole batch"


class MatMul(nn.Module):
    def forward(self, x):  # (N, C, H, W) -> attention-like products
        q = x.flatten(2)  # N, C, HW
        a = torch.matmul(q.transpose(1, 2), q)  # N, HW, HW : HW*HW*C MACs per image
        return torch.bmm(a, q.transpose(1, 2))  # N, HW, C : HW*HW*C again


def test_matmul_and_bmm():
    r = count(MatMul(), 3, 2, 2)
    hw, c = 4, 3
    assert r.macs == 2 * hw * hw * c
    assert r.macs_by_kind["bmm"] == 2 * hw * hw * c


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1, bias=False)

    def forward(self, x):
        y = F.relu(self.conv(x))  # activation: 4*4*4
        z = x + y  # elementwise: 64
        z = torch.cat([z, x], 1)  # data: 128 elements copied
        z = F.interpolate(z, scale_factor=2, mode="nearest")  # upsampling: 8*8*8
        return F.max_pool2d(z, 2)  # pooling: 4*4*8 outputs * 4 window


def test_functional_calls_inside_forward_are_counted():
    r = count(Functional(), 4, 4, 4)
    assert r.macs == 4 * 4 * 4 * 4
    assert r.other_ops["activation"] == 64
    assert r.other_ops["elementwise"] == 64
    assert r.other_ops["data"] == 128
    assert r.other_ops["upsampling"] == 8 * 8 * 8
    assert r.other_ops["pooling"] == 4 * 4 * 8 * 4
    assert r.unsupported_ops == ()


class Unknown(nn.Module):
    def forward(self, x):
        return torch.lgamma(x)


def test_unknown_ops_are_listed_by_name_never_silently_zero():
    r = count(Unknown(), 3, 4, 4)
    assert r.unsupported_ops == (("aten.lgamma.default", 1),)
    assert r.status == "partial"
    assert r.to_dict()["unsupported_ops"] == [{"op": "aten.lgamma.default", "count": 1}]


def test_batch_norm_and_pooling_kinds():
    model = nn.Sequential(nn.BatchNorm2d(4), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1))
    r = count(model, 4, 6, 6)
    assert r.macs == 0
    assert r.other_ops["normalization"] == 4 * 36
    assert r.other_ops["pooling"] == 4 * 9 * 4  # a 2x2 window for each of the 4x3x3 outputs
    # adaptive pooling to 1x1 dispatches as a mean over H, W: one operation per input element
    assert r.other_ops["reduction"] == 4 * 9
