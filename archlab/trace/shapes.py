"""Output shapes of common ATen ops, answered without PyTorch's meta kernels.

The meta kernels of convolution, batch norm, pooling, mean, cat, addmm and the element-wise
ops are Python functions that import sympy or torch._dynamo on first use (about 2 s, more
than the whole count). Their output shapes are simple, so the trace computes them here;
tests/test_shapes.py checks these rules against real tensors, and a test checks that
tracing every model of the zoo imports neither module.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from archlab.trace.rules import OpRules
from archlab.units import pair as _pair


def _dims(shape) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _conv_shape(inp, weight, stride, padding, dilation, transposed, output_padding, groups):
    # PyTorch's own check (and message): the input must have the channels the weight expects
    expected = weight.shape[0] if transposed else weight.shape[1] * groups
    if inp.dim() != weight.dim() or inp.shape[1] != expected:
        raise RuntimeError(f"Given groups={groups}, weight of size {_dims(weight.shape)}, expected input"
                           f"{_dims(inp.shape)} to have {expected} channels, but got {inp.shape[1]} channels instead")
    n = inp.shape[0]
    spatial_in = inp.shape[2:]
    k = weight.shape[2:]
    # one value for every spatial dimension ('valid' padding arrives as [0] for a 2-D convolution)
    stride, padding, dilation, output_padding = (_pair(v, len(k)) for v in (stride, padding, dilation, output_padding))
    out = []
    for i, size in enumerate(spatial_in):
        if transposed:
            o = (size - 1) * stride[i] - 2 * padding[i] + dilation[i] * (k[i] - 1) + output_padding[i] + 1
        else:
            o = (size + 2 * padding[i] - dilation[i] * (k[i] - 1) - 1) // stride[i] + 1
        out.append(o)
    channels = weight.shape[1] * groups if transposed else weight.shape[0]
    if any(o <= 0 for o in out):
        raise Vanished(tuple(spatial_in), tuple(k))
    return (n, channels, *out)


class Vanished(Exception):
    def __init__(self, spatial, kernel):
        super().__init__(spatial, kernel)
        self.spatial = spatial
        self.kernel = kernel


def _meta(shape, like) -> torch.Tensor:
    return torch.empty(shape, dtype=like.dtype, device="meta")


def _shape_convolution(args):
    inp, weight, _bias, stride, padding, dilation, transposed, output_padding, groups = args[:9]
    return _meta(_conv_shape(inp, weight, stride, padding, dilation, transposed, output_padding, groups), inp)


def _check_norm_channels(inp, weight) -> None:
    if weight is not None and (inp.dim() < 2 or weight.shape[0] != inp.shape[1]):
        raise RuntimeError(f"running_mean should contain {inp.shape[1] if inp.dim() > 1 else 0} elements "
                           f"not {weight.shape[0]}")  # PyTorch's words


def _shape_batch_norm(args):
    inp = args[0]
    _check_norm_channels(inp, args[1])
    training = args[5] if len(args) > 5 else False
    c = inp.shape[1] if training else 0
    return (_meta(inp.shape, inp), _meta((c,), inp), _meta((c,), inp))


def _shape_batch_norm_no_training(args):
    inp = args[0]
    _check_norm_channels(inp, args[1])
    return (_meta(inp.shape, inp), _meta((0,), inp), _meta((0,), inp))


def _shape_mean(args, kwargs):
    inp = args[0]
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    if dims is None:
        return _meta((), inp)
    dims = {d % inp.dim() for d in (dims if isinstance(dims, (list, tuple)) else [dims])}
    shape = [1 if i in dims else s for i, s in enumerate(inp.shape) if keepdim or i not in dims]
    return _meta(tuple(shape), inp)


def _pool_out(size, k, s, p, d, ceil_mode):
    span = size + 2 * p - d * (k - 1) - 1
    if span < 0:
        raise Vanished((size,), (k,))
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1  # the last window must start inside the input or its left padding
    return out


def _shape_pool(args, kwargs, with_indices, ndim=2):
    inp = args[0]
    kernel = _pair(args[1], ndim)
    stride = _pair(args[2], ndim) if len(args) > 2 and args[2] else kernel
    padding = _pair(args[3], ndim) if len(args) > 3 else (0,) * ndim
    if with_indices:
        dilation = _pair(args[4], ndim) if len(args) > 4 else (1,) * ndim
        ceil_mode = bool(args[5]) if len(args) > 5 else False
    else:
        dilation = (1,) * ndim
        ceil_mode = bool(args[4]) if len(args) > 4 else False
    spatial = inp.shape[-ndim:]
    try:
        out = tuple(_pool_out(spatial[i], kernel[i], stride[i], padding[i], dilation[i], ceil_mode)
                    for i in range(ndim))
    except Vanished:
        raise Vanished(tuple(spatial), kernel) from None
    if min(out) <= 0:
        raise Vanished(tuple(spatial), kernel)
    shape = (*inp.shape[:-ndim], *out)
    if with_indices:
        return (_meta(shape, inp), torch.empty(shape, dtype=torch.int64, device="meta"))
    return _meta(shape, inp)


def _shape_same(args, kwargs):
    return _meta(args[0].shape, args[0])


def _shape_cat(args, kwargs):
    tensors = [t for t in args[0] if not (t.dim() == 1 and t.shape[0] == 0)]  # legacy empty inputs are skipped
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    dim %= tensors[0].dim()
    shape = list(tensors[0].shape)
    for t in tensors[1:]:
        if t.dim() != len(shape) or any(a != b for i, (a, b) in enumerate(zip(t.shape, shape)) if i != dim):
            raise RuntimeError(
                f"torch.cat: sizes of tensors must match except in dimension {dim}: "
                f"{'x'.join(map(str, shape))} and {'x'.join(map(str, t.shape))}"
            )
        shape[dim] += t.shape[dim]
    return _meta(tuple(shape), tensors[0])


def _shape_upsample(args, kwargs, ndim=2):
    inp, size = args[0], args[1] if len(args) > 1 else None
    if size:
        out = tuple(size)
    else:
        scales = args[-1] if isinstance(args[-1], (list, tuple)) else kwargs.get("scale_factors")
        out = tuple(int(s * f) for s, f in zip(inp.shape[-ndim:], _pair(scales, ndim)))
    return _meta((*inp.shape[:-ndim], *out), inp)


def _shape_adaptive(args, kwargs, with_indices=False):
    inp, size = args[0], _pair(args[1])
    shape = (*inp.shape[:-2], *size)
    if with_indices:
        return (_meta(shape, inp), torch.empty(shape, dtype=torch.int64, device="meta"))
    return _meta(shape, inp)


def _shape_pad(args, kwargs):
    inp, pad = args[0], list(args[1])
    shape = list(inp.shape)
    for i in range(len(pad) // 2):  # pairs from the last dimension backwards
        shape[-1 - i] += pad[2 * i] + pad[2 * i + 1]
    if any(s < 0 for s in shape):
        raise RuntimeError(f"padding {pad} makes a negative size from {tuple(inp.shape)}")
    return _meta(tuple(shape), inp)


def _shape_binary(args, kwargs):
    a, b = args[0], args[1]
    shape = _broadcast(a.shape, b.shape) if isinstance(b, torch.Tensor) else tuple(a.shape)
    dtype = torch.result_type(a, b)
    return torch.empty(shape, dtype=dtype, device="meta")


def _broadcast(a, b):
    # torch.broadcast_shapes imports sympy on first use; this is the same rule
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x != y and 1 not in (x, y):
            raise RuntimeError(f"shapes {tuple(a)} and {tuple(b)} cannot be broadcast together")
        out.append(y if x == 1 else x)
    return tuple(out)


def _shape_mm(args, kwargs):
    a, b = args[-2], args[-1]
    if a.shape[-1] != b.shape[-2]:
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({'x'.join(map(str, a.shape))} and "
            f"{'x'.join(map(str, b.shape))})"
        )
    return torch.empty((*a.shape[:-1], b.shape[-1]), dtype=a.dtype, device="meta")


def _shape_grouped_mm(args, kwargs):
    # a grouped matmul (MoE experts): PyTorch's meta kernel takes bf16 only, where the CPU kernel also
    # runs fp32 and fp16; the shapes are those of its four forms (offs: the groups' end offsets)
    a, b = args[0], args[1]
    offs = args[2] if len(args) > 2 else kwargs.get("offs")
    out_dtype = (args[4] if len(args) > 4 else None) or kwargs.get("out_dtype") or a.dtype
    if a.dtype != b.dtype:
        raise RuntimeError(f"grouped mm: mat_a and mat_b must have one dtype, got {a.dtype} and {b.dtype}")
    forms = {  # (a's dims, b's dims): (a's inner dim, b's inner dim, the output shape)
        (2, 3): lambda: (a.shape[1], b.shape[1], (a.shape[0], b.shape[2])),  # rows of a in groups
        (3, 3): lambda: (a.shape[2], b.shape[1], (a.shape[0], a.shape[1], b.shape[2])),  # one matmul a group
        (2, 2): lambda: (a.shape[1], b.shape[0], (offs.shape[0] if offs is not None else 0, a.shape[0], b.shape[1])),
        (3, 2): lambda: (a.shape[2], b.shape[0], (a.shape[1], b.shape[1])),  # columns of b in groups
    }
    form = forms.get((a.dim(), b.dim()))
    if form is None:
        raise RuntimeError(f"grouped mm takes 2-d or 3-d matrices, got {a.dim()}-d and {b.dim()}-d")
    k_a, k_b, shape = form()
    if k_a != k_b or (a.dim() == b.dim() == 3 and a.shape[0] != b.shape[0]) or ((a.dim(), b.dim()) != (3, 3)
                                                                                 and offs is None):
        raise RuntimeError(f"grouped mm: shapes {'x'.join(map(str, a.shape))} and {'x'.join(map(str, b.shape))} "
                           f"cannot be multiplied{' without offs' if offs is None else ''}")
    return torch.empty(shape, dtype=out_dtype, device="meta")


def _shape_inplace(args, kwargs):
    # an in-place op returns its first argument; the identity of the tensor is what the trace follows
    return args[0]


_aten = torch.ops.aten
# Element-wise ops of one tensor whose output has the input's shape.
_UNARY = ("relu", "sigmoid", "tanh", "silu", "gelu", "hardtanh", "hardswish", "hardsigmoid", "leaky_relu",
          "elu", "clamp", "clamp_min", "clamp_max", "neg", "exp", "sqrt", "rsqrt", "reciprocal", "abs",
          "_softmax", "_log_softmax", "mish", "softplus")
_BINARY = ("add", "sub", "mul", "div")

# op overload -> fn(args, kwargs) returning the meta output(s)
SHAPE_RULES: OpRules[Callable[[tuple, dict], Any]] = OpRules("shape rule")
SHAPE_RULES.add((_aten.addmm.default, _aten.mm.default, _aten.bmm.default), _shape_mm)
SHAPE_RULES.register(_aten.max_pool2d_with_indices.default, lambda a, k: _shape_pool(a, k, True))
SHAPE_RULES.register(_aten.avg_pool2d.default, lambda a, k: _shape_pool(a, k, False))
SHAPE_RULES.register(_aten.avg_pool3d.default, lambda a, k: _shape_pool(a, k, False, ndim=3))
SHAPE_RULES.register(_aten.cat.default, _shape_cat)
if hasattr(_aten, "_grouped_mm"):  # PyTorch 2.8 and later
    SHAPE_RULES.register(_aten._grouped_mm.default, _shape_grouped_mm)
SHAPE_RULES.register(_aten._adaptive_avg_pool2d.default, _shape_adaptive)
SHAPE_RULES.register(_aten.adaptive_max_pool2d.default, lambda a, k: _shape_adaptive(a, k, True))
SHAPE_RULES.register(_aten.constant_pad_nd.default, _shape_pad)
SHAPE_RULES.add((_aten.upsample_nearest2d.default, _aten.upsample_nearest2d.vec, _aten.upsample_bilinear2d.default,
                 _aten.upsample_bilinear2d.vec), _shape_upsample)
SHAPE_RULES.register(_aten.pow.Tensor_Scalar, _shape_same)
SHAPE_RULES.register(_aten.pow_.Scalar, _shape_inplace)
SHAPE_RULES.add((getattr(_aten, n).default for n in _UNARY), _shape_same)
SHAPE_RULES.add((getattr(_aten, n + "_").default for n in _UNARY if hasattr(_aten, n + "_")), _shape_inplace)
SHAPE_RULES.add((getattr(getattr(_aten, n), o) for n in _BINARY for o in ("Tensor", "Scalar")), _shape_binary)
SHAPE_RULES.add((getattr(getattr(_aten, n + "_"), o) for n in _BINARY for o in ("Tensor", "Scalar")), _shape_inplace)
SHAPE_RULES.register(_aten.convolution.default, lambda a, k: _shape_convolution(a))
SHAPE_RULES.register(_aten.native_batch_norm.default, lambda a, k: _shape_batch_norm(a))
SHAPE_RULES.register(_aten._native_batch_norm_legit_no_training.default,
                     lambda a, k: _shape_batch_norm_no_training(a))
SHAPE_RULES.register(_aten.mean.dim, _shape_mean)
SHAPE_RULES.register(_aten.sum.dim_IntList, _shape_mean)  # a reduction keeps the same shape as a mean


# --- output shapes of the backward ops ------------------------------------------------
# PyTorch's meta kernels of most *_backward ops are Python decompositions whose first call
# imports torch._dynamo (about 1.5 s, more than the whole count); their shapes are simple.

def _like(t: torch.Tensor | None, shape: Any = None) -> torch.Tensor:
    return torch.empty(tuple(t.shape) if shape is None else tuple(shape), dtype=t.dtype, device="meta")


def _first_like(args: tuple, kwargs: dict) -> torch.Tensor:
    return _like(args[0])


def _second_like(args: tuple, kwargs: dict) -> torch.Tensor:
    return _like(args[1])


def _like_factory(args: tuple, kwargs: dict) -> torch.Tensor:
    # empty_like / zeros_like / ones_like / full_like: contiguous, on meta, in the asked dtype
    t = args[0]
    return torch.empty(tuple(t.shape), dtype=kwargs.get("dtype") or t.dtype, device="meta")


def _conv_backward_shapes(args: tuple, kwargs: dict) -> tuple:
    grad, inp, weight, bias_sizes = args[:4]
    mask = args[10]
    bias = _like(grad, tuple(bias_sizes) if bias_sizes else (weight.shape[0],)) if mask[2] else None
    return (_like(inp) if mask[0] else None, _like(weight) if mask[1] else None, bias)


def _batch_norm_backward_shapes(args: tuple, kwargs: dict) -> tuple:
    inp, weight = args[1], args[2]
    mask = args[-1]
    c = (inp.shape[1],)
    return (_like(inp) if mask[0] else None, _like(inp, c) if mask[1] else None,
            _like(inp, c) if mask[2] else None)


def _upsample_backward_shape(args: tuple, kwargs: dict) -> torch.Tensor:
    return _like(args[0], args[2])


def _sizes_backward_shape(args: tuple, kwargs: dict) -> torch.Tensor:
    # slice_backward / select_backward(grad, input_sizes, ...): the gradient of the whole input
    return _like(args[0], args[1])


def _register_backward_shapes() -> None:
    aten = torch.ops.aten
    same = ("threshold_backward", "hardtanh_backward", "sigmoid_backward", "tanh_backward", "silu_backward",
            "gelu_backward", "hardswish_backward", "hardsigmoid_backward", "leaky_relu_backward", "elu_backward",
            "softplus_backward", "mish_backward", "native_dropout_backward", "_softmax_backward_data",
            "_log_softmax_backward_data")
    rules: list[tuple[Any, Any]] = [(getattr(aten, n).default, _first_like) for n in same if hasattr(aten, n)]
    rules += [(getattr(aten, n).default, _like_factory) for n in ("empty_like", "zeros_like", "ones_like", "full_like")]
    rules += [(aten.max_pool2d_with_indices_backward.default, _second_like),
              (aten.avg_pool2d_backward.default, _second_like),
              (aten.avg_pool3d_backward.default, _second_like),
              (aten.max_pool3d_with_indices_backward.default, _second_like),
              (aten.index_add.default, _first_like),
              (aten.slice_backward.default, _sizes_backward_shape),
              (aten.select_backward.default, _sizes_backward_shape),
              (aten._adaptive_avg_pool2d_backward.default, _second_like),
              (aten.adaptive_max_pool2d_backward.default, _second_like),
              (aten.convolution_backward.default, _conv_backward_shapes),
              (aten.native_batch_norm_backward.default, _batch_norm_backward_shapes),
              (aten.upsample_nearest2d_backward.default, _upsample_backward_shape),
              (aten.upsample_bilinear2d_backward.default, _upsample_backward_shape)]
    for op, rule in rules:
        SHAPE_RULES.register(op, rule)


_register_backward_shapes()
