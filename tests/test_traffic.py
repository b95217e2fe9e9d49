"""archlab/analysis/traffic.py: the bytes each op reads and writes, exactly, and their totals per layer."""

import pytest
import torch
from torch import nn

import archlab
from archlab.analysis.traffic import OpTraffic
from archlab.trace.run import trace_model

F32 = 4


def _only(model: nn.Module, size, **kw):
    """(read, written) bytes of a one-layer model, from archlab.count's total and its one row."""
    r = archlab.count(model, input_size=size, depth=1, **kw)
    d = r.to_dict()
    assert d["read_bytes"] == r.read_bytes and d["traffic_bytes"] == r.read_bytes + r.written_bytes
    return r.read_bytes, r.written_bytes, r



def test_traffic_of_a_convolution_with_bias():
    read, written, r = _only(nn.Conv2d(3, 8, 3), (3, 10, 10))
    assert read == (3 * 10 * 10 + 8 * 3 * 3 * 3 + 8) * F32  # input, weight, bias: each read once
    assert written == 8 * 8 * 8 * F32
    assert r.arithmetic_intensity == pytest.approx(2 * r.macs / (read + written))


def test_traffic_of_a_convolution_without_bias():
    read, written, _ = _only(nn.Conv2d(3, 8, 3, bias=False), (3, 10, 10))
    assert read == (3 * 10 * 10 + 8 * 3 * 3 * 3) * F32
    assert written == 8 * 8 * 8 * F32


def test_traffic_of_a_depthwise_convolution():
    read, written, r = _only(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), (16, 14, 14))
    assert read == (16 * 14 * 14 + 16 * 9) * F32 and written == 16 * 14 * 14 * F32
    # a depthwise layer does 9 MACs per output element on 8 bytes moved per element: ~2 FLOP/B
    assert r.arithmetic_intensity == pytest.approx(2 * 9 * 16 * 196 / ((2 * 16 * 196 + 144) * F32))


def test_traffic_of_a_linear_layer():
    read, written, _ = _only(nn.Linear(64, 10), (64,))
    assert read == (64 + 64 * 10 + 10) * F32 and written == 10 * F32


class Add(nn.Module):
    def forward(self, x):
        return x + x.flip(1)


class Cat(nn.Module):
    def forward(self, x):
        return torch.cat([x, x * 2], 1)


class View(nn.Module):
    def forward(self, x):
        return x.view(x.shape[0], -1).permute(1, 0)


def test_traffic_of_an_addition_a_concatenation_and_a_view():
    n = 4 * 5 * 5
    tr, _ = trace_model(Add(), input_size=(4, 5, 5))
    t = OpTraffic.of(tr)
    ops = {op.name: op.index for op in tr.ops}
    assert (t.read[ops["flip"]], t.written[ops["flip"]]) == (n * F32, n * F32)
    assert (t.read[ops["add"]], t.written[ops["add"]]) == (2 * n * F32, n * F32)

    tr, _ = trace_model(Cat(), input_size=(4, 5, 5))
    t = OpTraffic.of(tr)
    cat = next(op.index for op in tr.ops if op.name == "cat")
    assert (t.read[cat], t.written[cat]) == (2 * n * F32, 2 * n * F32)

    read, written, r = _only(View(), (4, 5, 5))
    assert (read, written) == (0, 0)  # views move nothing
    assert r.arithmetic_intensity is None and r.to_dict()["arithmetic_intensity"] is None


def test_a_tensor_passed_twice_is_read_once_and_a_broadcast_reads_its_storage():
    class Square(nn.Module):
        def forward(self, x):
            return x * x

    read, written, _ = _only(Square(), (4, 5, 5))
    assert (read, written) == (100 * F32, 100 * F32)

    class Bias(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = nn.Parameter(torch.zeros(4, 1, 1))

        def forward(self, x):
            return x + self.b.expand_as(x)  # a (4,1,1) bias broadcast over a 4x5x5 map

    tr, _ = trace_model(Bias(), input_size=(4, 5, 5))
    t = OpTraffic.of(tr)
    add = next(op.index for op in tr.ops if op.name == "add")
    assert t.read[add] == (100 + 4) * F32


def test_traffic_follows_the_dtype_and_a_lookup_reads_its_rows():
    class Lookup(nn.Module):
        def __init__(self):
            super().__init__()
            self.e = nn.Embedding(1000, 16)

        def forward(self, ids):
            return self.e(ids)

    read, written, _ = _only(Lookup(), "int64:7")
    assert written == 7 * 16 * F32
    assert read == 7 * 8 + 7 * 16 * F32  # the int64 indices and the rows gathered, not the 1000-row table


def test_layer_rows_add_up_to_the_total_and_show_in_every_format(cli):
    r = archlab.count("mobilenet_v2@res=64", depth=1)
    top = [layer for layer in r.layers if layer.depth == 1]
    assert sum(layer.traffic_bytes for layer in top) == r.traffic_bytes  # no op outside a top-level module
    out = cli("count", "mobilenet_v2@res=64", "--depth", "1")
    assert "memory traffic" in out.out and "FLOP/B" in out.out and "arithmetic intensity" in out.out
    d = cli("trace", "lenet5", "--format", "json").json()
    c1 = next(row for row in d["layers"] if row["name"] == "c1")
    assert c1["read_bytes"] == (32 * 32 + 6 * 25 + 6) * F32 and c1["written_bytes"] == 6 * 28 * 28 * F32
    assert "traffic_bytes" in cli("trace", "lenet5", "--format", "csv").out.splitlines()[0]
