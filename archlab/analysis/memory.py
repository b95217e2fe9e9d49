"""``archlab memory``, from the one trace: parameters, the inference peak, training activations, and
the MobileNetV2 paper's M(G).

Activation sizes are those of the traced tensors, with floating-point tensors counted at
``act_dtype`` (by default the model's own floating dtype, its parameters'; integer tensors, such
as max-pooling indices, keep their own size). Parameters are counted at ``dtype``, by default each
at the dtype the model holds it in. Views and
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
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Sequence

import torch

from archlab.trace.rules import OpRules
from archlab.trace.graph import CONST, Op, PARAM, Trace
from archlab.errors import UserError
from archlab.units import DTYPE_BYTES, SCHEMA_VERSION

DEFAULT_FUSE = ("InvertedResidual",)


@dataclass(frozen=True)
class Peak:
    bytes: int
    where: str  # the op (or fused block) that reaches it


class Storages:
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

    def of(self, vids: Iterable[int]) -> set[int]:
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
    st = Storages(trace, act_bytes)
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


# op -> fn(trace, op, act_bytes): the op's own working memory |op| under workspace="im2col"
WORKSPACE: OpRules[Callable[[Trace, Op, int], int]] = OpRules("workspace rule")


def _workspace(trace: Trace, op: Op, act_bytes: int) -> int:
    rule = WORKSPACE.get(op)
    return rule(trace, op, act_bytes) if rule is not None else 0


@WORKSPACE.rule("convolution")
def _im2col(trace: Trace, op: Op, act_bytes: int) -> int:
    """The column buffer of a GEMM-based convolution with a kernel larger than 1x1."""
    if op.attrs.get("transposed"):
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
    st = Storages(trace, act_bytes)
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


def run_bytes(trace: Trace, act_bytes: int | None = None) -> int:
    """What one real inference forward needs: the parameters as the model holds them (a cast to
    fp16/bf16 comes after), plus the eager activation peak at ``act_bytes`` per element (None: the
    model's own floating dtype) (``archlab.measure.guard`` refuses a real run that would not fit)."""
    act = DTYPE_BYTES[trace.float_dtype] if act_bytes is None else act_bytes
    return trace.stored_params_bytes + inference_peak(trace, act, held=True).bytes


# --- archlab memory -----------------------------------------------------------------


@dataclass(frozen=True)
class MemoryResult:
    model: str
    input_shape: tuple[int, ...]
    dtype: str
    act_dtype: str
    params: int
    params_bytes: int
    buffers_bytes: int
    activation_peak_bytes: int
    activation_peak_at: str
    activation_peak_held_bytes: int
    activation_peak_held_at: str
    training_activation_bytes: int | None  # None: the training-mode forward fails (see training_note)
    mg_bytes: int
    mg_op: str
    max_tensor_bytes: int
    fused_types: tuple[str, ...]
    mg_fused_bytes: int | None
    mg_fused_op: str | None
    max_tensor_fused_bytes: int | None
    workspace: str
    measured_peak_bytes: int | None = None
    measured_method: str | None = None
    predicted_for_measure_bytes: int | None = None
    measured_dtype: str | None = None  # the dtype the measured forward ran in: the model's own
    training_note: str | None = None  # why training_activation_bytes is None

    @property
    def measured_diff_percent(self) -> float | None:
        if self.measured_peak_bytes is None or not self.measured_peak_bytes:
            return None
        return 100.0 * (self.predicted_for_measure_bytes - self.measured_peak_bytes) / self.measured_peak_bytes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["fused_types"] = list(self.fused_types)
        d["measured_diff_percent"] = self.measured_diff_percent
        if not self.fused_types:
            for k in ("mg_fused_bytes", "mg_fused_op", "max_tensor_fused_bytes"):
                d.pop(k)
        if self.training_note is None:
            d.pop("training_note")
        if self.measured_peak_bytes is None:
            for k in ("measured_peak_bytes", "measured_method", "predicted_for_measure_bytes",
                      "measured_diff_percent", "measured_dtype"):
                d.pop(k)
        return {"schema_version": SCHEMA_VERSION,
                "units": {"bytes": "bytes, whole batch", "activations": f"floating-point tensors at {self.act_dtype}"},
                **d}


def check_dtype(value: str, flag: str) -> int:
    if value not in DTYPE_BYTES:
        raise UserError(f"unknown {flag} '{value}' (choose {', '.join(DTYPE_BYTES)})")
    return DTYPE_BYTES[value]


WORKSPACES = ("none", "im2col")


def check_memory_options(dtype: str | None, act_dtype: str | None, workspace: str) -> tuple[int | None, int | None]:
    """The memory analysis's options checked (one line each for a bad one): (bytes per parameter,
    bytes per floating activation); None for a dtype not given (the model's own)."""
    sizes = (None if dtype is None else check_dtype(dtype, "--dtype"),
             None if act_dtype is None else check_dtype(act_dtype, "--act-dtype"))
    if workspace not in WORKSPACES:
        raise UserError(f"unknown --workspace '{workspace}' (choose {' or '.join(WORKSPACES)})")
    return sizes


def memory_of(
    trace: Trace,
    label: str,
    *,
    dtype: str | None = None,
    act_dtype: str | None = None,
    fuse: Sequence[str] | None = None,
    workspace: str = "none",
    saved: Sequence[torch.Tensor] | None = None,
    training_note: str | None = None,
    buffers_bytes: int = 0,
) -> MemoryResult:
    """Memory of a traced model. ``fuse``: module type names treated as single ops in M(G)
    (default: MobileNetV2's inverted residual blocks, where present; ``()`` for none). ``saved``: the
    tensors a training step keeps for its backward (``archlab.trace.run.saved_for_backward``; None
    with ``training_note`` saying why there are none); ``buffers_bytes``: the model's buffers."""
    param_bytes, act_bytes = check_memory_options(dtype, act_dtype, workspace)
    dtype, act_dtype = dtype or trace.float_dtype, act_dtype or trace.float_dtype  # not given: the model's own
    act_bytes = act_bytes or DTYPE_BYTES[act_dtype]
    params_bytes = trace.stored_params_bytes if param_bytes is None else trace.params * param_bytes
    present = {c.type for c in trace.calls}
    if fuse is None:
        fuse_types = tuple(t for t in DEFAULT_FUSE if t in present)
    else:
        fuse_types = tuple(fuse)
        missing = [t for t in fuse_types if t not in present]
        if missing:
            types = ", ".join(sorted(present - {"Sequential"}))
            raise UserError(f"--fuse {missing[0]}: no module of that type in {label} (its types: {types})")
    peak = inference_peak(trace, act_bytes)
    held = inference_peak(trace, act_bytes, held=True)
    mg, biggest = m_of_g(trace, act_bytes, (), workspace)
    fused = m_of_g(trace, act_bytes, fuse_types, workspace) if fuse_types else None
    return MemoryResult(
        model=label, input_shape=trace.input_shape, dtype=dtype, act_dtype=act_dtype,
        params=trace.params, params_bytes=params_bytes, buffers_bytes=buffers_bytes,
        activation_peak_bytes=peak.bytes, activation_peak_at=peak.where,
        activation_peak_held_bytes=held.bytes, activation_peak_held_at=held.where,
        training_activation_bytes=None if saved is None else training_bytes(saved, act_bytes),
        training_note=training_note,
        mg_bytes=mg.bytes, mg_op=mg.where, max_tensor_bytes=biggest.bytes,
        fused_types=fuse_types,
        mg_fused_bytes=fused[0].bytes if fused else None, mg_fused_op=fused[0].where if fused else None,
        max_tensor_fused_bytes=fused[1].bytes if fused else None, workspace=workspace,
    )
