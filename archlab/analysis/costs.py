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
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Callable

from archlab.analysis.trace import Op, Trace

MAC_KIND = "macs"

Rule = Callable[[Op, Trace], tuple[int, int]]  # -> (macs, other ops)


def _shape(trace: Trace, vid: int) -> tuple[int, ...]:
    return trace.values[vid].shape


def _out_numel(op: Op, trace: Trace) -> int:
    return trace.values[op.outputs[0]].numel if op.outputs else 0


def _in_numel(op: Op, trace: Trace) -> int:
    return trace.values[op.inputs[0]].numel if op.inputs else 0


def _convolution(op: Op, trace: Trace) -> tuple[int, int]:
    x, w = _shape(trace, op.inputs[0]), _shape(trace, op.inputs[1])
    out = _shape(trace, op.outputs[0])
    if op.attrs["transposed"]:
        # Each input element is scattered through the whole kernel: Cin*Cout/groups*k^2 per input position.
        macs = x[0] * math.prod(w) * math.prod(x[2:])
    else:
        macs = math.prod(out) * math.prod(w[1:])
    has_bias = len(op.inputs) > 2
    return macs, math.prod(out) if has_bias else 0


def _mm(op: Op, trace: Trace) -> tuple[int, int]:
    a, b = _shape(trace, op.inputs[0]), _shape(trace, op.inputs[1])
    return math.prod(a) * b[-1], 0


def _addmm(op: Op, trace: Trace) -> tuple[int, int]:
    # addmm(bias, mat1, mat2): mat1 @ mat2 plus a bias broadcast over the rows
    a, b = _shape(trace, op.inputs[1]), _shape(trace, op.inputs[2])
    return math.prod(a) * b[-1], _out_numel(op, trace)


def _bmm(op: Op, trace: Trace) -> tuple[int, int]:
    a, b = _shape(trace, op.inputs[-2]), _shape(trace, op.inputs[-1])
    extra = _out_numel(op, trace) if op.name == "baddbmm" else 0
    return math.prod(a) * b[-1], extra


def _per_output(op: Op, trace: Trace) -> tuple[int, int]:
    return 0, _out_numel(op, trace)


def _per_input(op: Op, trace: Trace) -> tuple[int, int]:
    return 0, _in_numel(op, trace)


def _window(op: Op, trace: Trace) -> tuple[int, int]:
    return 0, _out_numel(op, trace) * math.prod(op.attrs.get("kernel", (1,)))


def _free(op: Op, trace: Trace) -> tuple[int, int]:
    return 0, 0


def _pool3d(op: Op, trace: Trace) -> tuple[int, int]:
    # avg_pool3d as used by F.local_response_norm: kernel is the 2nd argument
    return 0, _out_numel(op, trace)


# kind -> (rule, op names)
_TABLE: dict[str, tuple[Rule, tuple[str, ...]]] = {
    "conv": (_convolution, ("convolution",)),
    "linear": (_addmm, ("addmm",)),
    "matmul": (_mm, ("mm",)),
    "bmm": (_bmm, ("bmm", "baddbmm")),
    "normalization": (_per_input, (
        "native_batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
        "native_layer_norm", "native_group_norm", "_batch_norm_with_update", "_batch_norm_no_update",
    )),
    "activation": (_per_output, (
        "relu", "relu_", "relu6", "sigmoid", "sigmoid_", "tanh", "tanh_", "silu", "silu_", "gelu", "gelu_",
        "hardtanh", "hardtanh_", "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "leaky_relu",
        "leaky_relu_", "elu", "elu_", "clamp", "clamp_", "clamp_min", "clamp_min_", "clamp_max", "threshold",
        "mish", "softplus", "prelu", "_prelu_kernel",
    )),
    "softmax": (_per_output, ("_softmax", "_log_softmax", "softmax", "log_softmax", "_safe_softmax")),
    "pooling": (_window, ("max_pool2d_with_indices", "max_pool2d", "avg_pool2d")),
    "pooling ": (_per_input, (
        "_adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_avg_pool2d", "_adaptive_avg_pool3d",
        "avg_pool3d", "max_pool3d_with_indices", "avg_pool1d", "max_pool1d",
    )),
    "reduction": (_per_input, ("mean", "sum", "amax", "amin", "max", "min", "prod", "var", "var_mean", "std")),
    "elementwise": (_per_output, (
        "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "pow", "pow_", "neg", "exp", "exp_",
        "log", "sqrt", "rsqrt", "reciprocal", "abs", "maximum", "minimum", "where", "addcmul", "addcdiv",
        "square", "erf", "lerp", "sign", "floor", "ceil", "round", "fmod", "remainder", "eq", "ne", "lt", "le",
        "gt", "ge", "logical_and", "logical_or", "logical_not", "bitwise_and", "bitwise_or",
    )),
    "upsampling": (_per_output, (
        "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact2d",
        "upsample_bilinear2d", "_upsample_bilinear2d_aa", "upsample_bicubic2d", "upsample_linear1d",
        "upsample_trilinear3d", "grid_sampler_2d",
    )),
    "data": (_per_output, (
        "cat", "stack", "clone", "contiguous", "constant_pad_nd", "reflection_pad2d", "replication_pad2d",
        "index", "index_select", "gather", "_to_copy", "copy_", "copy", "roll", "flip", "repeat", "masked_fill",
        "masked_fill_", "fill_", "zero_", "scatter", "index_put_", "index_put", "native_dropout", "bernoulli_",
        "tril", "triu", "channel_shuffle", "pixel_shuffle", "pixel_unshuffle", "_unsafe_index",
    )),
    "views": (_free, (
        "view", "_unsafe_view", "reshape", "t", "transpose", "permute", "expand", "squeeze", "unsqueeze",
        "flatten", "slice", "select", "narrow", "split", "split_with_sizes", "chunk", "unbind", "detach",
        "alias", "as_strided", "lift_fresh", "empty", "empty_like", "empty_strided", "zeros", "zeros_like",
        "ones", "ones_like", "full", "full_like", "new_empty", "new_zeros", "new_ones", "new_full", "arange",
        "scalar_tensor", "_local_scalar_dense", "unfold", "movedim", "expand_as", "view_as", "resize_",
        "set_", "_reshape_alias", "diagonal", "split_copy", "unsqueeze_", "squeeze_", "t_", "transpose_",
        "linspace", "lift_fresh_copy", "rand", "randn", "rand_like", "randn_like", "dim", "sym_size",
        "_to_dense", "unsafe_split", "unsafe_split_with_sizes", "unsafe_chunk",
    )),
}

KIND_OF: dict[str, str] = {}
RULE_OF: dict[str, Rule] = {}
for _kind, (_rule, _names) in _TABLE.items():
    for _n in _names:
        KIND_OF[_n] = _kind.strip()
        RULE_OF[_n] = _rule

MAC_KINDS = ("conv", "linear", "matmul", "bmm")
# The order in which other-op kinds are reported (each one element-wise op).
OTHER_KINDS = ("bias", "normalization", "activation", "pooling", "reduction", "elementwise", "upsampling",
               "softmax", "data")


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


def op_cost(op: Op, trace: Trace) -> tuple[str, int, int]:
    """(kind, MACs, other ops) of one traced op; kind ``unknown`` when not in the table."""
    rule = RULE_OF.get(op.name)
    if rule is None:
        return "unknown", 0, 0
    macs, other = rule(op, trace)
    return KIND_OF[op.name], macs, other


def other_kind(kind: str) -> str:
    """The other-ops bucket of an op's extra (non-MAC) work: a MAC op's is its bias."""
    return "bias" if kind in MAC_KINDS else kind


def count_status(not_counted) -> str:
    """'partial' when the MACs leave out ops without a cost rule (given as their calls, or a count
    of them), else 'complete': the one rule every report uses."""
    return "partial" if not_counted else "complete"


def unsupported(trace: Trace) -> Counter[str]:
    return Counter(op.target for op in trace.ops if op.name not in RULE_OF)
