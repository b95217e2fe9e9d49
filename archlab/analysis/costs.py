"""Counting: multiply-accumulates and the other operations, from the trace.

Units, stated once and used everywhere:

* **MACs** -- multiply-accumulates of convolution (transposed included),
  linear and matrix-multiply operations: the papers' "mult-adds". Bias
  additions are not MACs; they are counted under ``bias``.
* **FLOPs** -- 2 x MACs (a multiply and an add each).
* **other operations**, by kind, each one element-wise operation:
  ``bias`` (bias additions of conv/linear), ``normalization`` (one per
  normalized element), ``activation`` (one per output element), ``pooling``
  (window size x output elements; adaptive pooling and reductions: one per
  input element), ``elementwise`` (add, mul, ... one per output element),
  ``upsampling`` (one per output element), ``softmax`` (one per element),
  ``data`` (elements copied by cat, pad, clone, indexing; views copy nothing).

An ATen op this table does not know is never counted as zero in silence: it
is listed by name in ``unsupported_ops``.

The rules live in one ``OpRules`` table, ``COST_RULES``, filled through the same decorator a
user calls, ``cost_rule`` (``archlab.cost_rule``): a rule receives an ``OpView`` (a read-only
view of one traced op) and returns ``(macs, other_ops)``. ``OpCosts`` computes every op's
cost of a trace once and answers by module call, by kind, and what is not counted.
"""

from __future__ import annotations

import math
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Integral
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch

from archlab.trace.rules import OpRules, op_key
from archlab.trace.graph import Call, Op, Trace
from archlab.errors import UserError, first_line

MAC_KINDS = ("conv", "linear", "matmul", "bmm")
# The order in which other-op kinds are reported (each one element-wise op).
OTHER_KINDS = ("bias", "normalization", "activation", "pooling", "reduction", "elementwise", "upsampling",
               "softmax", "data")
# The kind of ops that cost nothing (views, allocations): their rule returns (0, 0).
FREE_KIND = "views"
KINDS = (*MAC_KINDS, *OTHER_KINDS, FREE_KIND)


# What one unit of each other-op kind is, for reports.
OTHER_KIND_MEANING = {
    "bias": "bias additions of conv/linear, one per output element",
    "normalization": "one per normalized element",
    "activation": "one per output element",
    "pooling": "window size x output elements (adaptive: one per input element)",
    "reduction": "one per input element (mean, sum: e.g. global average pooling)",
    "elementwise": "one per output element (add, mul, ...)",
    "upsampling": "one per output element",
    "softmax": "one per element",
    "data": "elements copied (cat, pad, clone, indexing); views copy nothing",
}


@dataclass(frozen=True)
class OpView:
    """What a cost rule sees of one traced op: read-only, with no way back into the trace."""

    name: str  # the op, without namespace or overload: "convolution"
    target: str  # the overload that ran: "aten.convolution.default"
    input_shapes: tuple[tuple[int, ...], ...]  # the tensor arguments, in order
    output_shapes: tuple[tuple[int, ...], ...]
    attrs: Mapping[str, Any]  # geometry the trace recorded (kernel, stride, ... of conv and pool ops)
    input_dtypes: tuple[torch.dtype, ...] = ()  # of the tensor arguments, in order

    @property
    def complex(self) -> bool:
        """Whether a tensor argument is complex (a complex multiply-accumulate is 4 real ones)."""
        return any(d.is_complex for d in self.input_dtypes)

    @property
    def output_numel(self) -> int:
        """Elements of the first output (0 when the op returns no tensor)."""
        return math.prod(self.output_shapes[0]) if self.output_shapes else 0

    @property
    def input_numel(self) -> int:
        """Elements of the first tensor argument (0 when there is none)."""
        return math.prod(self.input_shapes[0]) if self.input_shapes else 0


def op_view(op: Op, trace: Trace) -> OpView:
    """The read-only view of one traced op that cost rules receive."""
    values = trace.values
    return OpView(op.name, op.target, tuple(values[v].shape for v in op.inputs),
                  tuple(values[v].shape for v in op.outputs), MappingProxyType(op.attrs),
                  tuple(values[v].dtype for v in op.inputs))


Rule = Callable[[OpView], "tuple[int, int]"]  # -> (macs, other ops)


@dataclass(frozen=True)
class CostRule:
    fn: Rule
    kind: str
    builtin: bool = False


COST_RULES: OpRules[CostRule] = OpRules("cost rule")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UserError(f"unknown cost kind '{kind}' (choose one of {', '.join(KINDS)}: MACs count under "
                        f"{', '.join(MAC_KINDS)}, other operations under the rest)")


def cost_rule(*ops: Any, kind: str, replace: bool = False) -> Callable[[Rule], Rule]:
    """Decorator: count ``ops`` with the decorated function from now on.

    ``@archlab.cost_rule("aten::cos", kind="elementwise")`` registers ``fn(view) -> (macs,
    other_ops)``, called with an ``OpView`` of each traced call of the op. ``kind`` is one of
    ``KINDS``: for a MAC kind (conv, linear, matmul, bmm) the MACs count there and the other
    operations under ``bias``; for an other-op kind (elementwise, activation, ...) the MACs must be
    0 and the other operations count under that kind; ``views`` costs nothing. An op named without
    an overload (``"aten::cos"``, ``torch.ops.aten.cos``) covers all of them; an ``OpOverload`` only
    itself (and wins over its op's rule). An op that already has a rule, archlab's or yours,
    raises unless ``replace=True``; ``remove_cost_rule`` takes a rule away again (an op of
    archlab's own then has no rule left: it is reported as not counted).
    """
    _check_kind(kind)
    if not ops:
        raise UserError("cost_rule needs the op(s) it counts, e.g. cost_rule('aten::cos', kind='elementwise')")
    for op in ops:
        _check_registered(op)

    def register(fn: Rule) -> Rule:
        if not callable(fn):
            raise UserError(f"a cost rule must be a function of one op view, not {type(fn).__name__}")
        COST_RULES.add(ops, CostRule(fn, kind), replace=replace)
        return fn

    return register


def _check_registered(op: Any) -> None:
    """An op named as a string must be one PyTorch has registered (a typo would otherwise make a
    rule that never runs, silently); an op object is registered by being one."""
    if not isinstance(op, str):
        return
    key = op_key(op)
    ns, _, rest = key.partition("::")
    name, _, overload = rest.partition(".")
    try:
        packet = getattr(getattr(torch.ops, ns), name)
        known = overload in packet.overloads()
    except (AttributeError, RuntimeError):
        packet, known = None, False
    if packet is None:
        raise UserError(f"'{op}' is not an op PyTorch has registered ({key} not found): check its name, "
                        "e.g. 'aten::cos' or torch.ops.aten.cos")
    if overload and not known:
        raise UserError(f"'{op}': {ns}::{name} has no overload '{overload}' "
                        f"(it has {', '.join(packet.overloads())})")


def remove_cost_rule(*ops: Any) -> None:
    """Take away the rules of ``ops`` (registered with ``cost_rule``)."""
    for op in ops:
        COST_RULES.unregister(op)


@contextmanager
def cost_rules_restored() -> Iterator[None]:
    """Whatever rules the body registers, replaces or removes are put back as they were after it."""
    saved = COST_RULES.snapshot()
    try:
        yield
    finally:
        COST_RULES.restore(saved)


def _builtin(*names: str, kind: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        COST_RULES.add(names, CostRule(fn, kind, builtin=True))
        return fn

    return register


# --- archlab's rules ----------------------------------------------------------------


@_builtin("convolution", kind="conv")
def _convolution(op: OpView) -> tuple[int, int]:
    x, w, out = op.input_shapes[0], op.input_shapes[1], op.output_shapes[0]
    if op.attrs["transposed"]:
        # Each input element is scattered through the whole kernel: Cin*Cout/groups*k^2 per input position.
        macs = x[0] * math.prod(w) * math.prod(x[2:])
    else:
        macs = math.prod(out) * math.prod(w[1:])
    has_bias = len(op.input_shapes) > 2
    return macs, math.prod(out) if has_bias else 0


def _real(op: OpView, macs: int) -> int:
    """Real MACs: a complex multiply-accumulate is 4 real multiplies and 4 real additions."""
    return 4 * macs if op.complex else macs


@_builtin("addmm", kind="linear")
def _addmm(op: OpView) -> tuple[int, int]:
    # addmm(bias, mat1, mat2): mat1 @ mat2 plus a bias broadcast over the rows
    a, b = op.input_shapes[1], op.input_shapes[2]
    return _real(op, math.prod(a) * b[-1]), op.output_numel


@_builtin("mm", kind="matmul")
def _mm(op: OpView) -> tuple[int, int]:
    a, b = op.input_shapes[0], op.input_shapes[1]
    return _real(op, math.prod(a) * b[-1]), 0


@_builtin("bmm", "baddbmm", kind="bmm")
def _bmm(op: OpView) -> tuple[int, int]:
    a, b = op.input_shapes[-2], op.input_shapes[-1]
    extra = op.output_numel if op.name == "baddbmm" else 0
    return _real(op, math.prod(a) * b[-1]), extra


@_builtin("mv", "dot", "vdot", kind="matmul")
def _mv(op: OpView) -> tuple[int, int]:
    # mv(mat (n, m), vec (m)): n*m; dot(a (n), b (n)): n -- one MAC per element of the first argument
    return _real(op, op.input_numel), 0


@_builtin("addmv", kind="linear")
def _addmv(op: OpView) -> tuple[int, int]:
    # addmv(bias (n), mat (n, m), vec (m)): mat @ vec, plus n bias additions
    return _real(op, math.prod(op.input_shapes[1])), op.output_numel


@_builtin("addbmm", kind="bmm")
def _addbmm(op: OpView) -> tuple[int, int]:
    # addbmm(self (n, p), b1 (b, n, m), b2 (b, m, p)): the b products summed into self
    a, b = op.input_shapes[1], op.input_shapes[2]
    return _real(op, math.prod(a) * b[-1]), op.output_numel


def _attention_macs(q: tuple[int, ...], k: tuple[int, ...], v: tuple[int, ...]) -> tuple[int, int]:
    """(MACs, softmax elements) of attention on (batch, heads, sequence, head dim) tensors, as
    PyTorch's FlopCounterMode counts it: q @ k^T and scores @ v, the query's heads throughout
    (grouped-query attention broadcasts the key/value heads); the mask and causality are not
    subtracted. The softmax over the scores is one operation per score."""
    b, h, s_q, d = q
    s_k, d_v = k[-2], v[-1]
    scores = b * h * s_q * s_k
    return scores * d + scores * d_v, scores


@_builtin(
    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_fused_attention_overrideable",
    kind="bmm")
def _sdpa(op: OpView) -> tuple[int, int]:
    # query, key, value: (batch, heads, sequence, head dim); an attention mask (a later argument)
    # is added to the scores: one more operation per score
    macs, scores = _attention_macs(*op.input_shapes[:3])
    masked = any(len(s) >= 2 and s[-2:] == (op.input_shapes[0][-2], op.input_shapes[1][-2])
                 for s in op.input_shapes[3:])
    return _real(op, macs), scores * (2 if masked else 1)


@_builtin("_flash_attention_forward", "_efficient_attention_forward", kind="bmm")
def _attention_kernel(op: OpView) -> tuple[int, int]:
    # the kernels under the CUDA backends take (batch, sequence, heads, head dim)
    q, k, v = ((s[0], s[2], s[1], s[3]) for s in op.input_shapes[:3])
    macs, scores = _attention_macs(q, k, v)
    return _real(op, macs), scores


def _attention_backward_macs(q: tuple[int, ...], k: tuple[int, ...], v: tuple[int, ...]) -> tuple[int, int]:
    """(MACs, scores) of a fused attention backward on (batch, heads, sequence, head dim) tensors,
    as PyTorch's FlopCounterMode counts it (``sdpa_backward_flop_count``): five products, the scores
    q @ k^T recomputed (d per score), the gradient of the scores g @ v^T and of v scores^T @ g (d_v
    per score each), of q and of k (d per score each): scores x (3 d + 2 d_v), the query's heads
    throughout."""
    b, h, s_q, d = q
    s_k, d_v = k[-2], v[-1]
    scores = b * h * s_q * s_k
    return scores * (3 * d + 2 * d_v), scores


@_builtin(
    "_scaled_dot_product_efficient_attention_backward", "_scaled_dot_product_flash_attention_backward",
    "_scaled_dot_product_flash_attention_for_cpu_backward", "_scaled_dot_product_cudnn_attention_backward",
    "_scaled_dot_product_fused_attention_overrideable_backward",
    kind="bmm")
def _sdpa_backward(op: OpView) -> tuple[int, int]:
    # (grad_out, query, key, value, ...): (batch, heads, sequence, head dim); the other operations
    # are the softmax's backward, one per score
    macs, scores = _attention_backward_macs(*op.input_shapes[1:4])
    return _real(op, macs), scores


@_builtin("_flash_attention_backward", "_efficient_attention_backward", kind="bmm")
def _attention_kernel_backward(op: OpView) -> tuple[int, int]:
    # (grad_out, query, key, value, ...) of the CUDA kernels: (batch, sequence, heads, head dim), read
    # in that layout as the forward kernels' rule reads it
    q, k, v = ((s[0], s[2], s[1], s[3]) for s in op.input_shapes[1:4])
    macs, scores = _attention_backward_macs(q, k, v)
    return _real(op, macs), scores


@_builtin("_grouped_mm", kind="matmul")
def _grouped_mm(op: OpView) -> tuple[int, int]:
    # _grouped_mm(A, B, offs=None, bias=None): the matmuls of a mixture of experts' groups, in four forms.
    # A (rows, K) x B (groups, K, N) -> (rows, N), offs the groups' row ends: sum over groups of rows_g x K x N
    # = rows x K x N when the groups partition the rows (offs[-1] == rows; the offsets' values are not
    # seen here, on meta they are unknown); A (groups, M, K) x B (K, total N) -> (M, total N) likewise; A
    # (groups, M, K) x B (groups, K, N), a batch: groups x M x K x N; A (M, total K) x B (total K, N) ->
    # (groups, M, N), offs along K: M x total K x N. A bias is one addition per output element.
    a, b = op.input_shapes[0], op.input_shapes[1]
    if len(a) == 2 and len(b) == 2:
        macs = a[0] * a[1] * b[1]
    else:
        macs = op.output_numel * a[-1]
    has_bias = any(d.is_floating_point for d in op.input_dtypes[2:])  # offs are integers, a bias is not
    return _real(op, macs), op.output_numel if has_bias else 0


def _recurrent(op: OpView, skip: int) -> tuple[int, int]:
    # lstm/gru/rnn_* (input, hx..., params...): each 2-d weight (w_ih, w_hh of every layer and
    # direction) is one matrix x vector per token, as the ops PyTorch splits them into on meta; the
    # biases are one addition per row per token. The gates' element-wise work is not counted here.
    x, params = op.input_shapes[0], op.input_shapes[skip:]
    tokens = math.prod(x[:-1])
    macs = sum(math.prod(w) for w in params if len(w) == 2)
    return _real(op, tokens * macs), tokens * sum(math.prod(b) for b in params if len(b) == 1)


@_builtin("lstm.input", kind="matmul")
def _lstm(op: OpView) -> tuple[int, int]:
    return _recurrent(op, 3)  # input, h0, c0


@_builtin("gru.input", "rnn_tanh.input", "rnn_relu.input", kind="matmul")
def _gru(op: OpView) -> tuple[int, int]:
    return _recurrent(op, 2)  # input, h0


@_builtin("mkldnn_rnn_layer", kind="matmul")
def _mkldnn_rnn_layer(op: OpView) -> tuple[int, int]:
    # one layer and direction of an LSTM on the CPU: (input, w_ih, w_hh, b_ih, b_hh, hx, cx, ...)
    x, w_ih, w_hh = op.input_shapes[:3]
    tokens = math.prod(x[:-1])
    biases = [b for b in op.input_shapes[3:5] if len(b) == 1]
    return _real(op, tokens * (math.prod(w_ih) + math.prod(w_hh))), tokens * sum(b[0] for b in biases)


def _per_output(op: OpView) -> tuple[int, int]:
    return 0, op.output_numel


def _per_input(op: OpView) -> tuple[int, int]:
    return 0, op.input_numel


def _window(op: OpView) -> tuple[int, int]:
    return 0, op.output_numel * math.prod(op.attrs.get("kernel", (1,)))


def _free(op: OpView) -> tuple[int, int]:
    return 0, 0


_builtin(
    "native_batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
    "native_layer_norm", "native_group_norm", "_batch_norm_with_update", "_batch_norm_no_update",
    kind="normalization")(_per_input)
_builtin(
    "relu", "relu_", "relu6", "sigmoid", "sigmoid_", "tanh", "tanh_", "silu", "silu_", "gelu", "gelu_",
    "hardtanh", "hardtanh_", "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "leaky_relu",
    "leaky_relu_", "elu", "elu_", "clamp", "clamp_", "clamp_min", "clamp_min_", "clamp_max", "threshold",
    "mish", "softplus", "prelu", "_prelu_kernel",
    kind="activation")(_per_output)
_builtin("_softmax", "_log_softmax", "softmax", "log_softmax", "_safe_softmax", kind="softmax")(_per_output)
# windowed pooling: window size x output elements
_builtin("max_pool2d_with_indices", "max_pool2d", "avg_pool2d", kind="pooling")(_window)
# adaptive and 1-d/3-d pooling: one per input element
_builtin(
    "_adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_avg_pool2d", "_adaptive_avg_pool3d",
    "avg_pool3d", "max_pool3d_with_indices", "avg_pool1d", "max_pool1d",
    kind="pooling")(_per_input)
_builtin("mean", "sum", "amax", "amin", "max", "min", "prod", "var", "var_mean", "std",
         "linalg_vector_norm", "norm", "cumsum", "cumsum_", "cumprod", "logsumexp", "topk", "sort", "argmax",
         "argmin", "any", "all", "aminmax", "std_mean", "count_nonzero",
         "nonzero", "_unique2", "histc", "bincount",
         kind="reduction")(_per_input)
_builtin(
    "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "pow", "pow_", "neg", "exp", "exp_",
    "log", "sqrt", "rsqrt", "reciprocal", "abs", "maximum", "minimum", "where", "addcmul", "addcdiv",
    "square", "erf", "lerp", "sign", "floor", "ceil", "round", "fmod", "remainder", "floor_divide", "eq", "ne",
    "lt", "le",
    "gt", "ge", "logical_and", "logical_or", "logical_not", "bitwise_and", "bitwise_or",
    "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "sin_", "cos_", "bitwise_not",
    "bitwise_xor", "logical_xor", "log1p", "expm1", "log2", "log10", "exp2", "isinf", "isnan", "trunc",
    "frac", "sgn", "angle", "complex", "polar", "real", "imag", "conj_physical",
    kind="elementwise")(_per_output)
_builtin(
    "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact2d",
    "upsample_bilinear2d", "_upsample_bilinear2d_aa", "upsample_bicubic2d", "upsample_linear1d",
    "upsample_trilinear3d", "grid_sampler_2d", "_upsample_bicubic2d_aa", "torchvision::roi_align",
    kind="upsampling")(_per_output)
_builtin(
    "cat", "stack", "clone", "contiguous", "constant_pad_nd", "reflection_pad2d", "replication_pad2d",
    "index", "index_select", "gather", "_to_copy", "copy_", "copy", "roll", "flip", "repeat", "masked_fill",
    "masked_fill_", "fill_", "zero_", "scatter", "index_put_", "index_put", "native_dropout", "bernoulli_",
    "tril", "triu", "channel_shuffle", "pixel_shuffle", "pixel_unshuffle", "_unsafe_index",
    "embedding", "im2col", "col2im", "max_unpool2d", "max_unpool3d", "masked_scatter", "scatter_add",
    "scatter_add_", "index_fill", "index_fill_", "index_copy", "repeat_interleave", "masked_select",
    kind="data")(_per_output)
_builtin(
    "view", "_unsafe_view", "reshape", "t", "transpose", "permute", "expand", "squeeze", "unsqueeze",
    "flatten", "slice", "select", "narrow", "split", "split_with_sizes", "chunk", "unbind", "detach",
    "alias", "as_strided", "as_strided_", "lift_fresh", "empty", "empty_like", "empty_strided", "zeros", "zeros_like",
    "ones", "ones_like", "full", "full_like", "new_empty", "new_zeros", "new_ones", "new_full", "arange",
    "scalar_tensor", "_local_scalar_dense", "unfold", "movedim", "expand_as", "view_as", "resize_",
    "set_", "_reshape_alias", "diagonal", "split_copy", "unsqueeze_", "squeeze_", "t_", "transpose_",
    "linspace", "lift_fresh_copy", "rand", "randn", "rand_like", "randn_like", "dim", "sym_size",
    "_to_dense", "view_as_real", "view_as_complex", "unsafe_split", "unsafe_split_with_sizes", "unsafe_chunk",
    kind=FREE_KIND)(_free)


# --- the backward pass (archlab count --training) ---------------------------------------


@_builtin("convolution_backward", kind="conv")
def _convolution_backward(op: OpView) -> tuple[int, int]:
    # convolution_backward(grad_output, input, weight, ...): the input gradient (output_mask[0]) and
    # the weight gradient (output_mask[1]) each cost the forward convolution's MACs, grouped and
    # depthwise convolutions included; the bias gradient (output_mask[2]) sums grad_output.
    g, x, w = op.input_shapes[0], op.input_shapes[1], op.input_shapes[2]
    mask = op.attrs["output_mask"]
    if op.attrs["transposed"]:
        forward = x[0] * math.prod(w) * math.prod(x[2:])
    else:
        forward = math.prod(g) * math.prod(w[1:])
    macs = (forward if mask[0] else 0) + (forward if mask[1] else 0)
    return macs, math.prod(g) if mask[2] else 0


def _per_grad_output(op: OpView) -> tuple[int, int]:
    """One per element of the incoming gradient (the first argument of a *_backward op)."""
    return 0, op.input_numel


@_builtin("_weight_norm_interface", kind="normalization")
def _weight_norm(op: OpView) -> tuple[int, int]:
    # _weight_norm_interface(v, g, dim) -> (w, norms): ||v|| over all but dim (one operation per element of
    # v), g / ||v|| (one per element of g: a channel) and w = v x g / ||v|| (one per element of w)
    v, g = op.input_shapes[0], op.input_shapes[1]
    return 0, 2 * math.prod(v) + math.prod(g)


@_builtin("torchvision::nms", kind="reduction")
def _nms(op: OpView) -> tuple[int, int]:
    # nms(boxes (N, 4), scores (N), iou_threshold): the scores sorted (one per box, as sort) and the IoU of
    # every pair of boxes (N (N - 1) / 2), the most the kernel computes: it skips boxes already suppressed,
    # which depends on the data
    n = op.input_shapes[0][0]
    return 0, n + n * (n - 1) // 2


_builtin(
    "threshold_backward", "hardtanh_backward", "sigmoid_backward", "tanh_backward", "silu_backward",
    "gelu_backward", "hardswish_backward", "hardsigmoid_backward", "leaky_relu_backward", "elu_backward",
    "softplus_backward", "mish_backward", "_prelu_kernel_backward",
    kind="activation")(_per_grad_output)
_builtin(
    "native_batch_norm_backward", "native_layer_norm_backward", "native_group_norm_backward",
    "batch_norm_backward", "_batch_norm_with_update_backward",
    kind="normalization")(_per_grad_output)
_builtin(
    "max_pool2d_with_indices_backward", "avg_pool2d_backward", "_adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d_backward", "max_pool3d_with_indices_backward", "avg_pool3d_backward",
    "_adaptive_avg_pool3d_backward",
    kind="pooling")(_per_grad_output)
_builtin("_softmax_backward_data", "_log_softmax_backward_data", kind="softmax")(_per_grad_output)
_builtin(
    "upsample_nearest2d_backward", "upsample_bilinear2d_backward", "upsample_nearest1d_backward",
    "upsample_nearest3d_backward", "upsample_bicubic2d_backward", "upsample_linear1d_backward",
    "upsample_trilinear3d_backward", "_upsample_nearest_exact2d_backward",
    kind="upsampling")(_per_grad_output)
_builtin("native_dropout_backward", kind="elementwise")(_per_output)
_builtin("slice_backward", "select_backward", "index_select_backward", "narrow_copy", "index_add", "index_add_",
         "embedding_dense_backward",
         kind="data")(_per_output)
_builtin("new_empty_strided", kind=FREE_KIND)(_free)


# --- applying the rules ---------------------------------------------------------------


def _user_cost(rule: CostRule, op: Op, trace: Trace) -> tuple[int, int]:
    """A user's rule, called with its answer checked: any failure is the user's, in one line."""
    name = getattr(rule.fn, "__qualname__", repr(rule.fn))
    where = f"the cost rule {name} for {op.target}"
    try:
        result = rule.fn(op_view(op, trace))
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's code
        raise UserError(f"{where} failed: {type(e).__name__}: {first_line(e, '')}".rstrip(": ")) from None
    ok = isinstance(result, tuple) and len(result) == 2 and all(
        isinstance(n, Integral) and not isinstance(n, bool) and n >= 0 for n in result)
    if not ok:
        shown = repr(result)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise UserError(f"{where} returned {shown}: a rule returns (macs, other_ops), two whole numbers >= 0")
    macs, other = int(result[0]), int(result[1])
    if macs and rule.kind not in MAC_KINDS:
        raise UserError(f"{where} returned {macs} MACs for kind '{rule.kind}': only the kinds "
                        f"{', '.join(MAC_KINDS)} have MACs (count the work as other_ops)")
    if other and rule.kind == FREE_KIND:
        raise UserError(f"{where} returned {other} other ops for kind '{FREE_KIND}', which costs nothing")
    return macs, other


def op_cost(op: Op, trace: Trace) -> tuple[str, int, int]:
    """(kind, MACs, other ops) of one traced op; kind ``unknown`` when no rule covers it."""
    rule = COST_RULES.get(op)
    if rule is None:
        return "unknown", 0, 0
    if rule.builtin:
        macs, other = rule.fn(op_view(op, trace))
    else:
        macs, other = _user_cost(rule, op, trace)
    return rule.kind, macs, other


def other_kind(kind: str) -> str:
    """The other-ops bucket of an op's extra (non-MAC) work: a MAC op's is its bias."""
    return "bias" if kind in MAC_KINDS else kind


def count_status(not_counted: Any) -> str:
    """'partial' when the MACs leave out ops without a cost rule (given as their calls, or a count
    of them), else 'complete': the one rule every report uses."""
    return "partial" if not_counted else "complete"


def unsupported_json(unsupported_ops: Iterable[tuple[str, int]]) -> list[dict[str, Any]]:
    """``[{"op": ..., "count": ...}]``: the JSON form of (op, calls) pairs not counted."""
    return [{"op": op, "count": n} for op, n in unsupported_ops]


class OpCosts:
    """Every op's cost in a trace, computed once; answered by module call, by kind, and what no
    rule covers (fvcore's by-module and by-operator views from one pass)."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.kinds: list[str] = []
        self.macs: list[int] = []  # per op
        self.other: list[int] = []  # per op
        self.by_kind: dict[str, int] = {k: 0 for k in MAC_KINDS}
        self.other_by_kind: dict[str, int] = {k: 0 for k in OTHER_KINDS}
        unknown: Counter[str] = Counter()
        prefix = [0]
        for op in trace.ops:
            kind, macs, extra = op_cost(op, trace)
            if kind == "unknown":
                unknown[op.target] += 1
            self.kinds.append(kind)
            self.macs.append(macs)
            self.other.append(extra)
            prefix.append(prefix[-1] + macs)
            if macs:
                self.by_kind[kind] += macs
            if extra:
                self.other_by_kind[other_kind(kind)] += extra
        self._prefix = prefix  # cumulative MACs: a call's MACs are an O(1) range query
        self.unsupported: tuple[tuple[str, int], ...] = tuple(sorted(unknown.items()))

    @property
    def total_macs(self) -> int:
        return self._prefix[-1]

    def by_call(self, call: Call) -> int:
        """MACs of the ops run inside one module call, its children's included."""
        return self._prefix[call.end_op] - self._prefix[call.first_op]

    def in_range(self, first_op: int, end_op: int) -> int:
        """MACs of the ops ``first_op`` up to (not including) ``end_op``."""
        return self._prefix[end_op] - self._prefix[first_op]

    @property
    def status(self) -> str:
        return count_status(self.unsupported)
