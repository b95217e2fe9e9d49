"""Memory, from the one trace: parameters, the inference peak, training activations, and
the MobileNetV2 paper's M(G).

Activation sizes are those of the traced tensors, with floating-point tensors counted at
``act_dtype`` (integer tensors, such as max-pooling indices, keep their own size). Views and
in-place results share their input's storage and are counted once.

* Inference peak: the forward runs in execution order; a tensor is allocated by the op that
  makes it and freed after its last consumer (model inputs are live from the start, model
  outputs to the end). The peak is the largest total of live activation storage.
* M(G) (Sandler et al. 2018, section 5.1): max over operations of the total size of the
  op's inputs, its outputs and its own working memory |op|. |op| is 0 unless
  ``workspace="im2col"``, which charges a convolution with a kernel larger than 1x1 the
  C_in/groups·k_h·k_w·H_out·W_out column buffer a GEMM-based convolution allocates.
  With ``fuse``, each call of a module of the named types (MobileNetV2's
  ``InvertedResidual`` by default) is one operation: its inner tensors are disposable,
  so only its input and output count -- the paper's argument that memory is then dominated
  by the bottleneck tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from archlab.analysis.trace import CONST, PARAM, Trace

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
DEFAULT_FUSE = ("InvertedResidual",)


@dataclass(frozen=True)
class Peak:
    bytes: int
    where: str  # the op (or fused block) that reaches it


class _Storages:
    """Maps values to the storage they live in, with sizes at the activation dtype."""

    def __init__(self, trace: Trace, act_bytes: int) -> None:
        self.trace = trace
        self.root: list[int] = []
        for v in trace.values:
            r = v.id
            while trace.values[r].alias_of is not None and trace.values[r].alias_of != r:
                r = trace.values[r].alias_of
            self.root.append(r)
        self.act_bytes = act_bytes
        # On the meta device max pooling always returns its int64 indices; an eager inference
        # forward (no gradient) runs the index-free kernel. Indices nobody reads are not made.
        read = {v for op in trace.ops for v in op.inputs} | set(trace.outputs)
        self.unmade = {op.outputs[1] for op in trace.ops
                       if op.name == "max_pool2d_with_indices" and len(op.outputs) > 1 and op.outputs[1] not in read}

    def is_activation(self, vid: int) -> bool:
        return self.trace.values[self.root[vid]].producer not in (PARAM, CONST)

    def size(self, sid: int) -> int:
        v = self.trace.values[sid]
        itemsize = self.act_bytes if v.dtype.is_floating_point else v.itemsize
        return v.numel * itemsize

    def of(self, vids) -> set[int]:
        return {self.root[v] for v in vids if self.is_activation(v) and v not in self.unmade}


def _where(trace: Trace, op) -> str:
    module = trace.calls[op.call].name if op.call >= 0 else ""
    return f"{op.target} in '{module}'" if module else op.target


def inference_peak(trace: Trace, act_bytes: int, held: bool = False) -> Peak:
    """Peak of live activations. ``held=False``: a tensor is freed after its last consumer
    (the lower bound any executor can reach). ``held=True``: as eager PyTorch runs it, a
    tensor passed to a module also stays alive until that module returns (the caller's frame
    holds it: ``nn.Sequential`` keeps a block's input while the block runs), and the model
    input stays alive to the end."""
    st = _Storages(trace, act_bytes)
    last_use: dict[int, int] = {}
    for op in trace.ops:
        for sid in st.of(op.inputs):
            last_use[sid] = op.index
    keep = st.of(trace.outputs)  # outputs outlive the forward
    if held:
        for call in trace.calls:
            for sid in st.of(call.inputs):
                last_use[sid] = max(last_use.get(sid, -1), call.end_op - 1)
        keep |= st.of(trace.inputs)
    live = {sid: st.size(sid) for sid in st.of(trace.inputs)}
    best = Peak(sum(live.values()), "the model input")
    for op in trace.ops:
        for sid in st.of(op.outputs):
            live.setdefault(sid, st.size(sid))
        total = sum(live.values())
        if total > best.bytes:
            best = Peak(total, _where(trace, op))
        for sid in [s for s in live if s not in keep and last_use.get(s, op.index) <= op.index]:
            del live[sid]  # freed after its last consumer (or at once, if nothing reads it)
    return best


def _workspace(trace: Trace, op, act_bytes: int) -> int:
    if op.name != "convolution" or op.attrs.get("transposed"):
        return 0
    kernel = op.attrs["kernel"]
    if math.prod(kernel) == 1:
        return 0
    w = trace.values[op.inputs[1]].shape
    out = trace.values[op.outputs[0]].shape
    return w[1] * math.prod(kernel) * math.prod(out[2:]) * out[0] * act_bytes


def _fused_calls(trace: Trace, fuse: tuple[str, ...]) -> list:
    calls = []
    for call in trace.calls:
        if call.type not in fuse:
            continue
        parent, nested = call.parent, False
        while parent >= 0:
            if trace.calls[parent].type in fuse:
                nested = True
                break
            parent = trace.calls[parent].parent
        if not nested:
            calls.append(call)
    return calls


def m_of_g(trace: Trace, act_bytes: int, fuse: tuple[str, ...] = (), workspace: str = "none") -> tuple[Peak, Peak]:
    """(M(G), the largest single activation) over the graph, with ``fuse`` types as single ops."""
    st = _Storages(trace, act_bytes)
    fused = {c.first_op: c for c in _fused_calls(trace, fuse)}
    best = Peak(0, "")
    biggest = Peak(0, "")
    i = 0
    while i < len(trace.ops):
        op = trace.ops[i]
        call = fused.get(i)
        if call is not None and call.end_op > call.first_op:
            ins, outs = st.of(call.inputs), st.of(call.outputs)
            where, extra = f"{call.type} '{call.name}' (fused)", 0
            i = call.end_op
        else:
            ins, outs = st.of(op.inputs), st.of(op.outputs)
            where = _where(trace, op)
            extra = _workspace(trace, op, act_bytes) if workspace == "im2col" else 0
            i += 1
        total = sum(st.size(s) for s in ins | outs) + extra
        if total > best.bytes:
            best = Peak(total, where)
        for s in outs:
            if st.size(s) > biggest.bytes:
                biggest = Peak(st.size(s), where)
    return best, biggest


def training_bytes(saved: list[torch.Tensor], act_bytes: int) -> int:
    total = 0
    for t in saved:
        itemsize = act_bytes if t.dtype.is_floating_point else t.element_size()
        total += t.numel() * itemsize
    return total
