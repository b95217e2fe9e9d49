"""``archlab memory --training``: the memory bill of one training step, from the trace of its forward
and backward (``archlab.trace.run.trace_training``).

The bill, each term in bytes for the whole batch:

* **parameters**: every parameter at the model's own dtype (fp32 for most; under ``amp``, these are
  the master weights);
* **amp weight copies** (``amp`` only): the bf16/fp16 copy autocast makes of each weight for the
  forward, saved by the layers for their backward;
* **gradients**: one per trainable parameter, at the parameter's dtype;
* **optimizer state**: ``sgd`` none, ``momentum`` one buffer per trainable parameter, ``adam`` and
  ``adamw`` two (exp_avg, exp_avg_sq) plus a one-element step counter per parameter tensor;
* **saved activations**: what the forward leaves alive for the backward (the tensors autograd saved,
  and the batch);
* **peak over the step**: the step replayed op by op in the traced order: the forward allocates each
  activation and frees it after its last reader, the backward frees each saved tensor after the
  backward op that consumes it while the gradients accumulate into ``.grad`` (kept to the end);
  then the optimizer's step, with every gradient alive plus its temporaries (PyTorch's single-tensor
  Adam on the CPU: two of a parameter's size, beside the previous parameter's one: ``adam_temporaries``).
  The peak is the persistent part (parameters,
  weight copies, optimizer state) plus the largest live total of activations and gradients.

What is not modelled: allocator rounding and caching, kernels' workspaces (oneDNN, cuDNN), and the
gradient ``AccumulateGrad`` copies when something else holds it (an eager step takes it as it is).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

from archlab import status
from archlab.analysis.memory import Storages
from archlab.trace.graph import TrainingTrace
from archlab.errors import UserError
from archlab.units import AMP, DTYPE_BYTES, OPTIMIZERS, SCHEMA_VERSION

STATE_BUFFERS = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}


@dataclass(frozen=True)
class StepPeak:
    """The largest live total of activations and gradients over the step, and where it is reached."""

    bytes: int
    where: str
    saved_bytes: int  # alive when the backward starts: what autograd saved, the batch, the outputs
    gradients_bytes: int
    extra_bytes: int = 0  # of ``bytes``: the replay's extra bytes alive at the peak's op (``StepReplay``'s extra)
    op: int = -1  # the index of the op where the peak is reached (-1: before the first op)


def accumulated_source(tt: TrainingTrace, st: Storages) -> dict[int, int]:
    """The tracer's AccumulateGrad copies (it holds every tensor, so autograd copies the gradient into
    ``.grad``): copy's storage -> the gradient it copied, which an eager step keeps instead."""
    src = {}
    for op in tt.trace.ops[tt.backward_start:]:
        if op.attrs.get("accumulate_grad") and op.name == "copy_" and len(op.inputs) > 1:
            src[st.root[op.outputs[0]]] = st.root[op.inputs[1]]
    return src


def step_peak(tt: TrainingTrace, act_bytes: int, grad_sizes: dict[int, int] | None = None,
              extra: dict[int, int] | None = None) -> StepPeak:
    """Replay the traced step: forward, backward (freeing saved tensors as they are consumed,
    gradients accumulating), and return the peak of activations + gradients. ``grad_sizes``: the bytes
    a gradient (by its value id in ``tt.param_grads``) keeps once made, where it is not its own size
    (a rank's shard of it, under sharding). ``extra``: more bytes alive while an op runs (by op index:
    a sharded rank's gathered parameters and communication buffers), counted in the peak."""
    return StepReplay(tt, act_bytes, grad_sizes, extra).peak(())


class StepReplay:
    """The step replayed op by op, some module calls checkpointed or not: ``peak(chosen)`` (``chosen``: call
    indices; none: the plain step); ``peak(chosen, optimistic)`` is the planner's lower bound with the
    ``optimistic`` calls undecided (``archlab.analysis.checkpointing``). ``grad_sizes``: as ``step_peak``'s.

    Each storage is made at its first writer and freed after its last reader (the batch and the gradients
    are kept to the end). A checkpointed call's inner activations are freed after their last reader of the
    forward; at the call's first backward op its forward runs again on the kept inputs, and the recomputed
    activations are freed after their last reader in the backward."""

    def __init__(self, tt: TrainingTrace, act_bytes: int, grad_sizes: dict[int, int] | None = None,
                 extra: dict[int, int] | None = None) -> None:
        self.tt = tt
        self.extra = extra or {}  # op index -> bytes alive beside the replay's while it runs (step_peak's)
        tr = tt.trace
        st = Storages(tr, act_bytes)
        st.unmade = set()  # in training, max pooling's indices are read by its backward
        src = accumulated_source(tt, st)
        self.grads = {src.get(st.root[g], st.root[g]) for g in tt.param_grads}
        kept = {src.get(st.root[g], st.root[g]): n for g, n in (grad_sizes or {}).items()}
        skip = {op.index for op in tr.ops[tt.backward_start:] if op.attrs.get("accumulate_grad")}
        self.ops = [op for op in tr.ops if op.index not in skip]
        self.ins = {op.index: sorted(st.of(op.inputs)) for op in self.ops}
        self.outs = {op.index: sorted(st.of(op.outputs)) for op in self.ops}
        self.inputs = sorted(st.of(tr.inputs))
        self.nv = len(tr.values)
        self.sizes = [0] * self.nv
        for sid in range(self.nv):
            v = tr.values[sid]
            self.sizes[sid] = kept[sid] if sid in kept else v.numel * v.itemsize if sid in self.grads else st.size(sid)
        self.made_in = [-1] * self.nv  # the forward call (innermost) whose op made each storage
        for op in tr.ops[:tt.backward_start]:
            for sid in self.outs.get(op.index, ()):
                if self.made_in[sid] == -1 and tr.values[sid].producer == op.index:
                    self.made_in[sid] = op.call

    def owners(self, chosen: Iterable[int]) -> list[int]:
        """Per call: the outermost chosen call it is in (itself included), or -1."""
        chosen = set(chosen)
        owner: list[int] = []
        for c in self.tt.trace.calls:
            up = owner[c.parent] if c.parent >= 0 else -1
            owner.append(up if up >= 0 else (c.index if c.index in chosen else -1))
        return owner

    def peak(self, chosen: Iterable[int], optimistic: Iterable[int] = ()) -> StepPeak:
        tt, tr = self.tt, self.tt.trace
        chosen, optimistic = set(chosen), set(optimistic)
        owner = self.owners(chosen | optimistic)
        order = {c: k + 1 for k, c in enumerate(sorted(chosen))}  # recompute keys: storage + k * nv
        made_in, nv, bs = self.made_in, self.nv, tt.backward_start

        def inner(sid: int) -> int:  # the chosen or optimistic call whose forward made this storage, or -1
            c = made_in[sid]
            return owner[c] if c >= 0 else -1

        events: list[tuple[int, int, list[int], list[int]]] = []  # (op index, recomputing call, inputs, outputs)
        recomputed: set[int] = set()
        at: list[int] = []  # per event: the op index whose extra bytes are alive then
        for op in self.ops:
            o = owner[op.call] if op.call >= 0 else -1
            if op.index < bs:
                events.append((op.index, -1, self.ins[op.index], self.outs[op.index]))
                at.append(op.index)
                continue
            if o in chosen and o not in recomputed:  # the module's forward runs again, on its kept inputs
                recomputed.add(o)
                call = tr.calls[o]
                for j in range(call.first_op, call.end_op):
                    if j not in self.ins:
                        continue
                    key = [s + order[o] * nv if inner(s) == o else s for s in self.ins[j]]
                    out = [s + order[o] * nv if inner(s) == o else s for s in self.outs[j]]
                    events.append((j, o, key, out))
                    at.append(op.index)  # a recomputed op runs while this backward op waits: its extra
            if o in chosen:
                key = [s + order[o] * nv if inner(s) == o else s for s in self.ins[op.index]]
            elif o in optimistic:
                key = [s for s in self.ins[op.index] if inner(s) != o]
            else:
                key = self.ins[op.index]
            events.append((op.index, -1, key, self.outs[op.index]))
            at.append(op.index)
        # each storage's interval: made at its first event, freed after its last reader (or at once)
        alloc: dict[int, int] = {s: -1 for s in self.inputs}
        last: dict[int, int] = {}
        for pos, (_, _, ins, outs) in enumerate(events):
            for s in ins:
                last[s] = pos
            for s in outs:
                alloc.setdefault(s, pos)
        keep = self.grads | set(self.inputs)
        n = len(events)
        delta = [0] * (n + 1)
        base = 0
        first_bw = next((p for p, e in enumerate(events) if e[0] >= bs or e[1] >= 0), n)
        saved = 0
        for s, a in alloc.items():
            size = self.sizes[s % nv]
            end = n - 1 if s in keep else max(last.get(s, a), a)
            if a < 0:
                base += size
            else:
                delta[a] += size
            delta[end + 1] -= size
            if a < first_bw <= end:
                saved += size
        extra = self.extra
        best, where, total, best_extra, best_op = base, "the batch", base, 0, -1
        for pos in range(n):
            total += delta[pos]
            here = total + extra.get(at[pos], 0)
            if here > best:
                j, c, _, _ = events[pos]
                op = tr.ops[j]
                module = tr.calls[op.call].name if op.call >= 0 else ""
                phase = (f"recompute of '{tr.calls[c].name}'" if c >= 0 else
                         "backward" if j >= bs else "forward")
                best, where = here, f"{phase}: {op.target}" + (f" in '{module}'" if module else "")
                best_extra, best_op = extra.get(at[pos], 0), at[pos]
        if first_bw == n:
            saved = total
        return StepPeak(best, where, saved, sum(self.sizes[g] for g in self.grads), best_extra, best_op)


@dataclass(frozen=True)
class TrainingMemoryResult:
    model: str
    input_shape: tuple[int, ...]
    optimizer: str
    amp: str | None
    params: int
    trainable_params: int
    params_bytes: int
    amp_weight_copies_bytes: int
    gradients_bytes: int
    optimizer_state_bytes: int
    saved_activations_bytes: int
    activation_peak_bytes: int  # activations + gradients at their largest, over the step
    activation_peak_at: str
    optimizer_step_bytes: int  # gradients + the step's temporaries
    training_peak_bytes: int
    frozen: tuple[str, ...] = ()
    dtype: str = "fp32"  # the model's own floating dtype: its parameters', gradients' and activations' (without amp)
    measured_training_peak_bytes: int | None = None
    measured_method: str | None = None
    budget_bytes: int | None = None
    max_batch: int | None = None  # the largest batch whose predicted training peak fits budget_bytes
    max_batch_peak_bytes: int | None = None
    # with --checkpoint: the modules recomputed in the backward (their names), the forward MACs that adds, the
    # peak without them, and (--checkpoint auto) how the plan was found
    checkpoint: tuple[str, ...] = ()  # the --checkpoint globs as given, or ("auto",)
    checkpointed: tuple[str, ...] = ()
    recompute_macs: int | None = None
    unplanned_training_peak_bytes: int | None = None
    plan_method: str | None = None

    @property
    def persistent_bytes(self) -> int:
        return self.params_bytes + self.amp_weight_copies_bytes + self.optimizer_state_bytes

    @property
    def measured_diff_percent(self) -> float | None:
        if not self.measured_training_peak_bytes:
            return None
        return 100.0 * (self.training_peak_bytes - self.measured_training_peak_bytes) / self.measured_training_peak_bytes

    def to_dict(self) -> dict[str, Any]:
        d = bill_dict(self)
        d["frozen"] = list(self.frozen)
        return {"schema_version": SCHEMA_VERSION,
                "units": {"bytes": "bytes, whole batch",
                          "training_peak_bytes": "parameters + amp weight copies + optimizer state + the peak of "
                                                 "activations and gradients over forward, backward and step",
                          **({"recompute_macs": "forward MACs of the checkpointed modules, run again in the backward"}
                             if self.checkpoint else {})},
                **d}


def bill_dict(bill: Any) -> dict[str, Any]:
    """The fields of a training bill (``TrainingMemoryResult`` or a rank's ``PerRankBill``) as JSON wants them:
    lists for tuples, the checkpointing, measurement and budget fields only where they were asked for, and the
    derived ``persistent_bytes`` and ``measured_diff_percent``."""
    d = asdict(bill)
    d["input_shape"] = list(bill.input_shape)
    d["checkpoint"], d["checkpointed"] = list(bill.checkpoint), list(bill.checkpointed)
    if not bill.checkpoint:
        for k in ("checkpoint", "checkpointed", "recompute_macs", "unplanned_training_peak_bytes", "plan_method"):
            d.pop(k)
    d["persistent_bytes"] = bill.persistent_bytes
    if bill.measured_training_peak_bytes is None:
        d.pop("measured_method")
    else:
        d["measured_diff_percent"] = bill.measured_diff_percent
    if bill.budget_bytes is None:
        for k in ("budget_bytes", "max_batch", "max_batch_peak_bytes"):
            d.pop(k)
    return d


def _optimizer_state(tt: TrainingTrace, optimizer: str) -> int:
    tr = tt.trace
    trainable = [tr.values[g] for g in tt.param_grads]
    state = STATE_BUFFERS[optimizer] * sum(v.numel * v.itemsize for v in trainable)
    if optimizer in ("adam", "adamw"):
        state += 4 * len(trainable)  # the step counter, a one-element fp32 tensor per parameter
    return state


def step_temporaries(tt: TrainingTrace, optimizer: str) -> int:
    """What the optimizer's step allocates besides its state (single-tensor implementations, as PyTorch
    runs them on the CPU): Adam's denominators (``adam_temporaries``, over the trainable parameters in the
    model's order, the optimizer's); SGD and momentum update in place."""
    if optimizer not in ("adam", "adamw") or not tt.param_grads:
        return 0
    sizes = [p.bytes for p in tt.parameters if p.trainable] or \
        [tt.trace.values[g].numel * tt.trace.values[g].itemsize for g in tt.param_grads]
    return adam_temporaries(sizes)


def adam_temporaries(sizes: Sequence[int]) -> int:
    """The largest total of single-tensor Adam's (and AdamW's) temporaries over one step of parameters of
    ``sizes`` bytes, in the optimizer's order: a parameter's denominator, ``sqrt(exp_avg_sq) / bias_correction``,
    is two tensors of its size at once, while the previous parameter's is still bound to ``denom`` until the
    new one replaces it (``torch/optim/adam.py``, ``_single_tensor_adam``): the largest
    ``sizes[i-1] + 2 * sizes[i]``. Measured to the byte (less 12 bytes of scalars) on the CPU for several
    orders of 4.7 and 9.4 MB parameters."""
    return max((2 * s + (sizes[i - 1] if i else 0) for i, s in enumerate(sizes)), default=0)


def activation_bytes(tt: TrainingTrace, amp: str | None) -> int:
    """Bytes per element of the step's floating activations: 2 under amp, else the model's own dtype's."""
    return 2 if amp else DTYPE_BYTES[tt.trace.float_dtype]


def persistent_bytes(tt: TrainingTrace, optimizer: str, amp: str | None) -> int:
    """Parameters + amp weight copies + optimizer state: what the whole step holds."""
    return tt.trace.stored_params_bytes + (tt.trace.params * 2 if amp else 0) + _optimizer_state(tt, optimizer)


def bill(tt: TrainingTrace, label: str, optimizer: str, amp: str | None,
         peak: StepPeak | None = None) -> TrainingMemoryResult:
    """The training-step memory bill of a traced step (``peak``: the step's replayed activation peak, when it
    was replayed otherwise, as with checkpointed modules)."""
    tr = tt.trace
    if peak is None:
        peak = step_peak(tt, activation_bytes(tt, amp))
    params_bytes = tr.stored_params_bytes
    copies = tr.params * 2 if amp else 0
    state = _optimizer_state(tt, optimizer)
    step = peak.gradients_bytes + step_temporaries(tt, optimizer)
    return TrainingMemoryResult(
        model=label, input_shape=tr.input_shape, optimizer=optimizer, amp=amp, params=tr.params,
        trainable_params=tr.trainable_params, params_bytes=params_bytes, amp_weight_copies_bytes=copies,
        gradients_bytes=peak.gradients_bytes, optimizer_state_bytes=state,
        saved_activations_bytes=peak.saved_bytes, activation_peak_bytes=peak.bytes, activation_peak_at=peak.where,
        optimizer_step_bytes=step, training_peak_bytes=params_bytes + copies + state + max(peak.bytes, step),
        frozen=tt.freeze, dtype=tr.float_dtype,
    )


def parse_bytes(text: Any) -> int:
    """``8GiB``, ``512MiB``, ``16GB``, ``4096B``: a number of bytes (GiB/MiB/KiB powers of 1024, GB/MB/KB of 1000).
    A text must name its unit (``8`` alone would be 8 bytes, never what was meant); a Python number is bytes."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        s = str(text).strip().replace(" ", "")
        units = {"gib": 2**30, "mib": 2**20, "kib": 2**10, "tib": 2**40, "gb": 10**9, "mb": 10**6, "kb": 10**3,
                 "tb": 10**12, "g": 2**30, "m": 2**20, "k": 2**10, "b": 1}
        factor = None
        for unit, f in units.items():
            if s.lower().endswith(unit):
                s, factor = s[: -len(unit)], f
                break
        if factor is None:
            try:
                float(s)
            except ValueError:
                pass
            else:
                raise UserError(f"--budget needs a unit, such as 8GiB, 512MiB or 16GB (4096B for bytes), got '{text}'")
            factor = 1
        try:
            value = float(s) * factor
        except ValueError:
            raise UserError(f"--budget takes a size such as 8GiB, 512MiB or 16GB, got '{text}'") from None
    if not (value > 0 and math.isfinite(value)):
        raise UserError(f"--budget must be a positive size, got '{text}'")
    return int(value)


def check_step_options(optimizer: str, amp: str | None) -> None:
    """An optimizer and an amp setting this bill knows, or one line naming the choices."""
    if optimizer not in OPTIMIZERS:
        raise UserError(f"unknown --optimizer '{optimizer}' (choose {', '.join(OPTIMIZERS)})")
    if amp is not None and amp not in AMP:
        raise UserError(f"unknown --amp '{amp}' (choose {', '.join(AMP)})")


def largest_batch(at: Any, limit: int) -> tuple[int, int] | None:
    """(largest batch, its predicted peak) with the peak <= limit; the peak grows with the batch, so:
    doubling, then bisection. Batch norm in training needs batch >= 2 where it normalizes one value per
    channel; a batch the model refuses counts as not fitting."""
    def peak(b: int) -> int | None:
        status.doing(f"looking for the largest batch within the budget (tracing batch {b})")
        try:
            return at(b).training_peak_bytes
        except UserError:
            return None

    lo, lo_peak = 0, None
    b = 1
    while True:
        p = peak(b)
        if p is None and b == 1:
            b = 2
            continue
        if p is None or p > limit:
            hi = b
            break
        lo, lo_peak = b, p
        if b >= 2**24:
            return lo, lo_peak
        b *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        p = peak(mid)
        if p is not None and p <= limit:
            lo, lo_peak = mid, p
        else:
            hi = mid
    return (lo, lo_peak) if lo else None
