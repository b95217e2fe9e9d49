"""Built-in cost rules of issue 18: matrix x vector products, embedding, trig/cumulative/bitwise/norm
ops, im2col/col2im, topk, max_unpool, scaled-dot-product attention in every backend, complex
matmuls; each checked against PyTorch's FlopCounterMode (FLOPs / 2) where it has a formula, else
by hand."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archlab

aten = torch.ops.aten


class Fn(nn.Module):
    """A model whose forward is one function of its input(s)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def counted(fn, input_size):
    return archlab.count(Fn(fn), input_size=input_size, depth=1)


def flop_counter_macs(fn, shape):
    with FlopCounterMode(display=False) as f:
        fn(torch.zeros(shape, device="meta"))
    return f.get_total_flops() // 2


@pytest.mark.parametrize("fn, input_size, macs, other", [
    # x: (1, 6) -> mv of a (6, 6) view of x @ x^T with a vector: 36 MACs
    (lambda x: torch.mv(x.t() @ x, x[0]), (6,), 6 * 6 + 36, {}),
    (lambda x: torch.dot(x[0], x[0]), (7,), 7, {}),
    (lambda x: torch.addmv(x[0, :5], x.t()[:5].expand(5, 9).contiguous(), x[0, :9]), (9,), 45,
     {"bias": 5}),
    # addbmm(self (3, 3), b1 (2, 3, 4), b2 (2, 4, 3)): 2*3*4*3 = 72 MACs, 9 additions into self
    (lambda x: torch.addbmm(x[0, :9].view(3, 3), x[0, :24].view(2, 3, 4), x[0, :24].view(2, 4, 3)),
     (24,), 72, {"bias": 9}),
])
def test_matrix_vector_products_count_their_macs(fn, input_size, macs, other):
    r = counted(fn, input_size)
    assert r.status == "complete" and r.unsupported_ops == ()
    assert r.macs == macs
    for kind, n in other.items():
        assert r.other_ops[kind] == n


def test_complex_matmul_is_four_real_macs():
    r = counted(lambda x: torch.mm(torch.complex(x, x)[0].view(4, 4), torch.complex(x, x)[0].view(4, 4)), (16,))
    assert r.status == "complete" and r.macs == 4 * 4 * 4 * 4
    real = counted(lambda x: torch.mm(x[0].view(4, 4), x[0].view(4, 4)), (16,))
    assert real.macs == 4 * 4 * 4


@pytest.mark.parametrize("fn, kind, n", [
    (torch.sin, "elementwise", 24), (torch.cos, "elementwise", 24),
    (lambda x: torch.bitwise_not(x > 0), "elementwise", 24),
    (lambda x: torch.cumsum(x, 1), "reduction", 24),
    (lambda x: torch.linalg.vector_norm(x, dim=1), "reduction", 24),
    (lambda x: torch.topk(x, 3, dim=1).values, "reduction", 24),
])
def test_trig_cumulative_bitwise_norm_ops_are_elementwise_or_reductions(fn, kind, n):
    r = counted(fn, (24,))
    assert r.status == "complete" and r.macs == 0
    assert r.other_ops[kind] >= n


def test_embedding_is_data_movement_not_macs():
    emb = nn.Embedding(100, 8)

    class Lookup(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = emb

        def forward(self, x):
            return self.emb(x.long())  # (1, 5) ids -> (1, 5, 8) rows copied

    r = archlab.count(Lookup(), input_size=(5,), depth=1)
    assert r.status == "complete" and r.macs == 0 and r.other_ops["data"] >= 5 * 8


def test_im2col_col2im_max_unpool_as_strided_are_counted():
    def fn(x):
        cols = F.unfold(x, 2, stride=2)  # im2col: (1, 3*4, 4)
        back = F.fold(cols, (4, 4), 2, stride=2)  # col2im
        pooled, idx = F.max_pool2d(back, 2, return_indices=True)
        up = F.max_unpool2d(pooled, idx, 2)
        return up.clone().as_strided_((1, 3, 2, 2), (48, 16, 4, 1))
    r = counted(fn, (3, 4, 4))
    assert r.status == "complete" and r.unsupported_ops == () and r.macs == 0


def _q():
    return torch.zeros(2, 4, 16, 8, device="meta")


@pytest.mark.parametrize("op, args", [
    (aten._scaled_dot_product_efficient_attention, lambda q: (q, q, q, None, False)),
    (aten._scaled_dot_product_flash_attention, lambda q: (q, q, q)),
    (aten._scaled_dot_product_cudnn_attention, lambda q: (q, q, q, None, False)),
])
def test_attention_backends_count_as_flop_counter_mode_does(op, args):
    fn = lambda x: op(*args(x))[0]  # noqa: E731
    r = counted(fn, (4, 16, 8))
    expected = 4 * 16 * 16 * 8 + 4 * 16 * 16 * 8  # q @ k^T and scores @ v: heads x s_q x s_k x d each
    assert r.status == "complete"
    assert r.macs == flop_counter_macs(fn, (1, 4, 16, 8)) == expected


def test_attention_math_and_cpu_backends_agree_with_the_decomposition():
    math_path = counted(lambda q: F.scaled_dot_product_attention(q, q, q), (4, 16, 8))
    cpu = counted(lambda q: aten._scaled_dot_product_flash_attention_for_cpu(q, q, q)[0], (4, 16, 8))
    fused = counted(lambda q: aten._scaled_dot_product_fused_attention_overrideable(q, q, q)[0], (4, 16, 8))
    assert math_path.macs == flop_counter_macs(lambda q: F.scaled_dot_product_attention(q, q, q),
                                               (1, 4, 16, 8)) == 1 * 4 * 16 * 16 * 8 * 2
    assert cpu.macs == fused.macs == math_path.macs
    assert cpu.status == fused.status == "complete"


def test_grouped_query_attention_uses_the_query_heads():
    def fn(x):
        q = x.view(1, 4, 16, 8)
        kv = x.view(1, 4, 16, 8)[:, :2]
        return aten._scaled_dot_product_flash_attention_for_cpu(q, kv, kv)[0]
    r = counted(fn, (4, 16, 8))
    assert r.macs == 4 * 16 * 16 * 8 * 2


def test_attention_kernels_take_batch_sequence_heads_layout():
    # _flash_attention_forward / _efficient_attention_forward: (batch, sequence, heads, head dim)
    def flash(x):
        q = x.view(1, 16, 4, 8)
        return aten._flash_attention_forward(q, q, q, None, None, 16, 16, 0.0, False, False)[0]

    def efficient(x):
        q = x.view(1, 16, 4, 8)
        return aten._efficient_attention_forward(q, q, q, None, None, None, None, None, 0.0, 0)[0]
    for fn in (flash, efficient):
        r = counted(fn, (16, 4, 8))
        assert r.status == "complete" and r.macs == 4 * 16 * 16 * 8 * 2
