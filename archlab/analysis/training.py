"""What one training step costs, read from a training trace (``archlab.trace.run.trace_training``:
the training-mode forward, ``loss = sum of the outputs``, and autograd's real backward, all
recorded on meta tensors; each backward op attributed to the module call whose forward it
differentiates).

The split of backward MACs: ``convolution_backward`` computes the gradient of its input
(the transposed convolution of the output gradient; counted only when ``output_mask[0]``) and of
its weight (``output_mask[1]``): its parts are the input-gradient and weight-gradient MACs. A
matrix multiply of the backward (``mm``, ``bmm``) is a weight-gradient op when its result
reaches a parameter's ``.grad`` through views, copies and additions only; otherwise it computes
the gradient of an activation (an input gradient).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from archlab.analysis.costs import MAC_KINDS, OpCosts, op_view
from archlab.analysis.ops import GRADIENT_PASS, has
from archlab.trace.graph import TrainingTrace


def conv_backward_parts(grad_output: Sequence[int], input: Sequence[int], weight: Sequence[int],
                        transposed: bool, output_mask: Sequence[bool]) -> tuple[int, int]:
    """(input-gradient MACs, weight-gradient MACs) of one ``convolution_backward``.

    Both parts are the forward convolution's MACs, grouped and depthwise convolutions included:
    the input gradient is the transposed convolution of the output gradient with the weight
    (each product of the forward, ``x[i] * w[j]`` feeding ``y[k]``, is one product
    ``g[k] * w[j]`` feeding ``dx[i]``), and the weight gradient pairs the same ``x[i]`` with
    ``g[k]`` for ``dw[j]``. A forward convolution (N, Cout, H', W') from weight
    (Cout, Cin/groups, kh, kw) has N*Cout*H'*W'*Cin/groups*kh*kw of them; a transposed one,
    N*H*W (its input's positions) * Cin*Cout/groups*kh*kw."""
    if transposed:  # the forward's input is `input`, its weight (Cin, Cout/groups, k...)
        forward = input[0] * math.prod(weight) * math.prod(input[2:])
    else:
        forward = math.prod(grad_output) * math.prod(weight[1:])
    return (forward if output_mask[0] else 0), (forward if output_mask[1] else 0)


# --- the split of backward MACs -------------------------------------------------------

def weight_grad_ops(tt: TrainingTrace) -> set[int]:
    """Backward ops whose result reaches a parameter's gradient through ``GRADIENT_PASS`` ops only."""
    tr = tt.trace
    found: set[int] = set()
    todo = list(tt.param_grads)
    seen: set[int] = set()
    while todo:
        vid = todo.pop()
        if vid in seen:
            continue
        seen.add(vid)
        v = tr.values[vid]
        if v.alias_of is not None:
            todo.append(v.alias_of)
        if v.producer < tt.backward_start:
            continue
        op = tr.ops[v.producer]
        if has(GRADIENT_PASS, op):
            todo.extend(op.inputs)
        else:
            found.add(op.index)
    return found


@dataclass(frozen=True)
class BackwardSplit:
    """Per op of the backward: (input-gradient MACs, weight-gradient MACs)."""

    input_grad: list[int]  # per op, 0 for forward ops
    weight_grad: list[int]


def split_backward(tt: TrainingTrace, costs: OpCosts) -> BackwardSplit:
    tr = tt.trace
    n = len(tr.ops)
    ig, wg = [0] * n, [0] * n
    weight_ops = weight_grad_ops(tt)
    for op in tr.ops[tt.backward_start:]:
        macs = costs.macs[op.index]
        if not macs or costs.kinds[op.index] not in MAC_KINDS:
            continue
        if op.name == "convolution_backward":
            view = op_view(op, tr)
            a, b = conv_backward_parts(view.input_shapes[0], view.input_shapes[1], view.input_shapes[2],
                                       op.attrs["transposed"], op.attrs["output_mask"])
            ig[op.index], wg[op.index] = a, b
        elif op.index in weight_ops:
            wg[op.index] = macs
        else:
            ig[op.index] = macs
    return BackwardSplit(ig, wg)
