"""archlab/analysis/costs.py: the built-in cost rules, on tiny layers against answers computed by hand,
and (matrix x vector products, embedding, trig/cumulative/bitwise/norm ops, im2col/col2im, topk,
max_unpool, scaled-dot-product attention in every backend, complex matmuls) against PyTorch's
FlopCounterMode (FLOPs / 2) where it has a formula, else by hand."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

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


# --- the rules of ops beyond the course's layers ---------------------------------------------

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


# --- ops that were counted as "not counted" (issue 25) ------------------------------------


class GroupedExperts(nn.Module):
    """A mixture of experts' grouped matmul: rows 0, 1-2, 3-5 go to experts 0, 1, 2."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 8, 16, dtype=torch.bfloat16))  # (experts, K, N)
        self.register_buffer("offs", torch.tensor([1, 3, 6], dtype=torch.int32))

    def forward(self, x):  # x (1, 6, 8)
        return torch._grouped_mm(x[0].to(torch.bfloat16), self.w, offs=self.offs)


def test_grouped_mm_macs_are_the_sum_over_groups_of_rows_x_k_x_n():
    """_grouped_mm(A (rows, K), B (groups, K, N), offs): the offsets' values are unknown on meta, so the
    rule counts rows x K x N, exact when the groups partition the rows (offs[-1] == rows), as here: the
    hand count on the real offsets, sum of rows_g x K x N, says the same. FlopCounterMode has no formula
    for _grouped_mm (it counts 0), so the reference is the hand count, checked on a real run of the op."""
    model = GroupedExperts()
    a = torch.randn(6, 8, dtype=torch.bfloat16)
    out = torch._grouped_mm(a, model.w, offs=model.offs)  # runs on the CPU in bf16
    bounds = [0, *model.offs.tolist()]
    assert bounds[-1] == a.shape[0], "the groups partition the rows"
    ref = torch.cat([a[s:e] @ model.w[g] for g, (s, e) in enumerate(zip(bounds, bounds[1:]))])
    assert torch.equal(out, ref)
    by_hand = sum((e - s) * 8 * 16 for s, e in zip(bounds, bounds[1:]))
    assert by_hand == 6 * 8 * 16
    with FlopCounterMode(display=False) as fcm:
        torch._grouped_mm(a, model.w, offs=model.offs)
    assert fcm.get_total_flops() in (0, 2 * by_hand), "FlopCounterMode, where it has a formula, agrees"
    for engine in ("archlab", "real"):
        r = archlab.count(model, input_size=(6, 8), depth=0, engine=engine)
        assert r.unsupported_ops == () and r.status == "complete"
        assert r.macs == by_hand and r.macs_by_kind["matmul"] == by_hand


def test_grouped_mm_batched_and_k_grouped_forms():
    """The other forms of _grouped_mm, counted on meta: 3-d x 3-d (a batch of groups, no offsets):
    groups x M x K x N; 2-d x 2-d with offsets along K (output (groups, M, N)): M x total K x N."""
    from archlab.analysis.count import count_trace

    class Batched(nn.Module):
        def forward(self, a, b):
            return torch._grouped_mm(a, b)

    class KGrouped(nn.Module):
        def forward(self, a, b, offs):
            return torch._grouped_mm(a, b, offs=offs)

    bf = torch.bfloat16
    tr = trace(Batched(), (torch.empty(3, 16, 8, dtype=bf, device="meta"),
                           torch.empty(3, 16, 8, dtype=bf, device="meta").transpose(-2, -1)))
    assert count_trace(tr, "b").macs == 3 * 16 * 8 * 16
    tr = trace(KGrouped(), (torch.empty(16, 24, dtype=bf, device="meta"), torch.empty(16, 24, dtype=bf, device="meta").t(),
                            torch.empty(3, dtype=torch.int32, device="meta")))
    assert tr.values[tr.outputs[0]].shape == (3, 16, 16)
    assert count_trace(tr, "k").macs == 16 * 24 * 16


@pytest.mark.parametrize("api", ["parametrizations", "utils"])
def test_weight_norm_interface_counts_its_elementwise_work(api):
    """Both nn.utils.parametrizations.weight_norm and the older nn.utils.weight_norm compute the weight
    through aten::_weight_norm_interface(v, g): ||v|| per output channel (one op per element of v), g / ||v||
    (one per channel) and w = v x that (one per element of w): 2 x numel(v) + channels, under normalization."""
    import warnings

    conv = nn.Conv1d(2, 3, 3, bias=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        wn = nn.utils.parametrizations.weight_norm(conv) if api == "parametrizations" else nn.utils.weight_norm(conv)
    r = archlab.count(wn, input_size=(2, 10), depth=0)
    assert r.unsupported_ops == () and r.status == "complete"
    v = 3 * 2 * 3
    assert r.other_ops["normalization"] == 2 * v + 3
    assert r.macs == 8 * 3 * 2 * 3  # the convolution itself: out 8 positions x 3 filters of 2x3


class AntialiasedBicubic(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", antialias=True)


@pytest.mark.parametrize("scale, out_hw", [(2.0, 16), (0.5, 4)])
def test_antialiased_bicubic_upsampling_is_one_op_per_output_element(scale, out_hw):
    """_upsample_bicubic2d_aa: the bicubic kernel's support is 4 taps per axis when enlarging and 4 / scale
    when shrinking (the antialiasing widens it); archlab counts every resampling op, bilinear and bicubic,
    antialiased or not, as one operation per output element (the upsampling kind), and this one too."""
    r = archlab.count(AntialiasedBicubic(scale), input_size=(3, 8, 8), depth=0)
    assert r.unsupported_ops == () and r.status == "complete"
    assert r.other_ops["upsampling"] == 3 * out_hw * out_hw


class NonzeroUnique(nn.Module):
    def forward(self, x):  # x (1, 4, 5)
        idx = torch.nonzero(x > 0)
        values, inverse, counts = torch._unique2(x.round(), return_inverse=True, return_counts=True)
        return idx, values, inverse, counts


def test_nonzero_and_unique_count_one_op_per_input_element_under_engine_real():
    """nonzero and _unique2 have data-dependent output shapes, so they run only under --engine real.
    Counted like count_nonzero and sort: one operation per input element (reduction), whatever the data."""
    with pytest.raises(archlab.UserError):
        archlab.count(NonzeroUnique(), input_size=(4, 5), depth=0)
    r = archlab.count(NonzeroUnique(), input_size=(4, 5), depth=0, engine="real")
    assert r.unsupported_ops == () and r.status == "complete"
    # x > 0 and round are element-wise (20 each); nonzero and _unique2 read 20 elements each
    assert r.other_ops["elementwise"] == 40
    assert r.other_ops["reduction"] == 40


@pytest.fixture
def torchvision_ops():
    """Stand-ins for torchvision::nms and torchvision::roi_align, with torchvision's qualified names and
    schemas, registered through torch.library: torchvision does not import here (its wheel is built for
    CUDA, against another torch). Not exercised: torchvision's own kernels and its meta functions; the
    rules see only the ops' names and argument shapes, which the stand-ins share."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure to import means: use the stand-ins
        pass
    else:
        pytest.skip("the real torchvision imports here: its ops are registered already")
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
               "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor")

    def nms(dets, scores, iou_threshold):  # keeps the best-scoring box only: enough for a count
        return scores.argmax().reshape(1)

    def roi_align_meta(x, rois, spatial_scale, ph, pw, sampling_ratio, aligned):
        return x.new_empty((rois.shape[0], x.shape[1], ph, pw))

    lib.impl("nms", nms, "CPU")
    lib.impl("roi_align", roi_align_meta, "Meta")
    yield torch.ops.torchvision
    lib._destroy()


class Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("rois", torch.tensor([[0, 0.0, 0.0, 4.0, 4.0], [0, 2.0, 2.0, 7.0, 6.0]]))

    def forward(self, x):  # x (1, 4, 8, 8)
        return torch.ops.torchvision.roi_align(x, self.rois, 0.5, 3, 3, 2, False)


class Suppress(nn.Module):
    def forward(self, x):  # x (1, 5, 4): five boxes
        boxes = x[0]
        return torch.ops.torchvision.nms(boxes, boxes[:, 0], 0.5)


def test_roi_align_is_one_upsampling_op_per_output_element(torchvision_ops):
    """roi_align samples the feature map bilinearly at sampling_ratio^2 points per output element and
    averages them; counted as grid_sampler_2d is, one resampling operation per output element:
    rois x channels x pooled height x pooled width."""
    r = archlab.count(Detector(), input_size=(4, 8, 8), depth=0)
    assert r.unsupported_ops == () and r.status == "complete"
    assert r.other_ops["upsampling"] == 2 * 4 * 3 * 3
    assert r.macs == 0


def test_nms_counts_the_sort_and_every_pair_of_boxes_under_engine_real(torchvision_ops):
    """nms's output depends on the data (real engine only). Counted: the scores' sort, one per box, and the
    IoU of every pair, N (N - 1) / 2, the most the kernel computes (it skips boxes already suppressed)."""
    r = archlab.count(Suppress(), input_size=(5, 4), depth=0, engine="real")
    assert r.unsupported_ops == () and r.status == "complete"
    assert r.other_ops["reduction"] == 5 + 5 * 4 // 2
