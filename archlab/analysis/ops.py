"""What archlab knows of ops beside their costs: traits, each an ``OpRules`` table (one key per op,
``"aten::zeros"`` for every overload; a duplicate raises), and the one classification of
convolutions that the per-layer notation, the timing kinds and the prediction kinds all read.

Traits (``has(TABLE, op)`` for a traced op):

* ``FILLS``: ops of the free kind (they cost no operations) that still write their output;
* ``OVERWRITES``: in-place ops that overwrite their first argument without reading it (``copy_``
  reads its source, ``fill_`` its value, ``zero_`` nothing);
* ``GATHERS``: ops that read only the rows they gather (their output's size) and their indices;
* ``SEE_THROUGH``: ops that only re-describe a tensor (the diagram looks through them);
* ``GRADIENT_PASS``: ops a gradient passes through on its way into ``.grad`` unchanged in value
  (views, copies, the sum of the contributions of a parameter used more than once);
* ``EXP_ACTIVATIONS``: activations that evaluate exp (or tanh, erf): several times a ReLU's work
  per element.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archlab.trace.graph import Op, Trace
from archlab.trace.rules import OpRules


def _trait(what: str, *ops: str) -> OpRules[bool]:
    table: OpRules[bool] = OpRules(f"'{what}' trait")
    table.add(ops, True)
    return table


FILLS = _trait("fill", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "new_zeros", "new_ones",
               "new_full", "arange", "linspace", "scalar_tensor", "rand", "randn", "rand_like", "randn_like",
               "lift_fresh_copy", "split_copy")
OVERWRITES = _trait("overwrite", "copy_", "fill_", "zero_")
GATHERS = _trait("gather", "embedding", "index_select", "gather", "index", "_unsafe_index", "take")
SEE_THROUGH = _trait("see-through", "view", "_unsafe_view", "reshape", "_reshape_alias", "flatten", "t", "transpose",
                     "permute", "expand", "squeeze", "unsqueeze", "contiguous", "clone", "detach", "alias",
                     "as_strided", "unflatten", "lift_fresh", "_to_copy", "to")
GRADIENT_PASS = _trait("gradient pass", "add", "add_", "clone", "_to_copy", "copy_", "copy", "contiguous", "detach",
                       "view", "_unsafe_view", "reshape", "t", "transpose", "permute", "expand", "squeeze",
                       "unsqueeze", "alias", "as_strided", "_reshape_alias", "view_as", "flatten")
EXP_ACTIVATIONS = _trait("exp activation", "sigmoid", "sigmoid_", "silu", "silu_", "tanh", "tanh_", "gelu", "gelu_",
                         "elu", "elu_", "softplus", "mish", "mish_", "selu", "selu_", "celu", "celu_",
                         "log_sigmoid_forward")


def has(table: OpRules[bool], op: Any) -> bool:
    """Whether ``op`` (a traced op, a target text or an ``OpOverload``) has the table's trait."""
    return bool(table.get(op, False))


@dataclass(frozen=True)
class ConvShape:
    """A convolution's geometry, whether read from its module (``Conv2d``'s attributes) or from a
    traced ``convolution`` op; ``cout`` is None where it is not known."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    cin: int
    cout: int | None
    groups: int
    transposed: bool = False

    @classmethod
    def of_module(cls, attrs: dict[str, Any]) -> ConvShape | None:
        """From a module call's attributes; None for a module that is no convolution."""
        if not {"kernel_size", "in_channels"} <= attrs.keys():
            return None
        k, s = attrs["kernel_size"], attrs.get("stride", 1)
        return cls(k if isinstance(k, tuple) else (k,), s if isinstance(s, tuple) else (s,), attrs["in_channels"],
                   attrs.get("out_channels"), attrs.get("groups", 1))

    @classmethod
    def of_op(cls, op: Op, trace: Trace) -> ConvShape:
        """From a traced ``convolution`` op: its recorded geometry and its input's channels."""
        a = op.attrs
        shape = trace.values[op.inputs[0]].shape if op.inputs else ()
        return cls(tuple(a.get("kernel", (1,))), tuple(a.get("stride", (1,))), shape[1] if len(shape) > 1 else 1,
                   None, a.get("groups", 1), bool(a.get("transposed")))

    @property
    def per_channel(self) -> bool:
        """One filter per input map (groups = input channels): the timing's and the prediction's
        depthwise, whatever the number of output maps."""
        return self.groups > 1 and self.groups == self.cin

    @property
    def depthwise(self) -> bool:
        """Depthwise in the course's (MobileNet Table 1's) sense: one filter per input map, as many
        output maps as input maps."""
        return self.per_channel and self.cout == self.cin

    @property
    def pointwise(self) -> bool:
        return all(k == 1 for k in self.kernel)

    @property
    def strided(self) -> bool:
        return max(self.stride) > 1

    @property
    def size(self) -> str:
        return "x".join(map(str, self.kernel))
