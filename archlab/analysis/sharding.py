"""``archlab memory --training --world-size N --shard ...``: one rank's memory bill of a data-parallel
training step, plain (DDP replicas) or sharded (ZeRO-1, ZeRO-2, ZeRO-3 / FSDP2), a pure function of the
step traced at the per-rank batch (``archlab.trace.run.trace_training``; the global batch divided by N).

What each scheme keeps on a rank (P parameters, G gradients, S optimizer state, all bytes):

* ``none``: DDP replicas. P, G and S whole, plus DDP's gradient buckets: with its default
  ``gradient_as_bucket_view=False`` every gradient is copied into a flat bucket of the reducer, so the
  buckets hold G more bytes for the whole run (``torch/nn/parallel/distributed.py``: caps of 25 MiB,
  ``_DEFAULT_BUCKET_CAP_MB``, the first bucket 1 MiB, ``dist._DEFAULT_FIRST_BUCKET_BYTES``).
* ``zero1``: DDP and ``torch.distributed.optim.ZeroRedundancyOptimizer``: P and G whole, the buckets,
  and the optimizer state of this rank's parameters only. ZeroRedundancyOptimizer assigns whole
  parameters, largest first, each to the rank with the fewest elements so far; the rank billed is the
  one whose peak is largest. After its step each rank broadcasts its parameters in place
  (``parameters_as_bucket_view=False``, the default): no buffer.
* ``zero2``: the ZeRO paper's stage 2: P whole, G and S sharded (each rank 1/N); gradients are
  reduce-scattered unit by unit (the FSDP units below) as the backward finishes each: the largest
  unit's gradients are whole until then, and its reduce-scatter input is a flat copy of them.
* ``zero3`` and ``fsdp`` (the same: FSDP2's ``fully_shard`` is PyTorch's ZeRO-3): P, G and S
  sharded as FSDP2 shards them (dim 0 of every parameter padded to a multiple of N). During the step
  a unit's parameters are all-gathered before its forward and its backward and freed after; the root
  unit (every parameter in no other unit) is not resharded after the forward (FSDP2 keeps the root's
  for the backward) and its gradients are reduce-scattered when the backward ends. Alive at once: the
  root unit's parameters and gradients, the largest unit's parameters and gradients, the flat all-gather
  output of a unit (the backward prefetches the next unit, whose all-gather output lives until its own
  backward copies it out) and the reduce-scatter input of a unit's gradients (a flat copy, kept until the
  next unit's reduce: ``reduce_scatter_max_input_buffers`` = 1)
  (``torch/distributed/fsdp/_fully_shard/``: ``_fsdp_collectives.py`` ``foreach_all_gather``,
  ``foreach_reduce``; ``_fsdp_param_group.py`` ``post_backward``, ``_backward_prefetch``).

FSDP units (``zero2``, ``zero3``, ``fsdp``): by default, one per top-level block: the children, with
parameters, of every outermost ``nn.Sequential``/``nn.ModuleList``/``nn.ModuleDict`` that holds at least two
children of one class with parameters (ResNet: each residual block of ``layer1``..``layer4``; a ViT:
each encoder block; a Llama-shaped decoder: each decoder layer of ``model.layers``); with
``fsdp_unit`` globs, the outermost modules each glob matches (units that two globs nest own their own
parameters). The rest is the root.

``offload``: ``optimizer`` keeps the optimizer state on the host and runs the step there (ZeRO-Offload,
DeepSpeed's ``offload_optimizer``); ``params`` (ZeRO-3 / FSDP2 only: FSDP2's ``CPUOffloadPolicy``)
keeps the sharded parameters, gradients and optimizer state on the host. Offloaded bytes are the
``host_bytes`` of a rank, not part of its device peak.

Activation checkpointing (``checkpointed``: module calls run under ``torch.utils.checkpoint``): the same replay
with those calls' inner activations freed after the forward and recomputed in the backward
(``archlab.analysis.checkpointing.Replay``, with this rank's gradient sizes); ``per_rank_plan`` chooses them to
fit a per-rank budget.

Approximations (upper bounds): the transient terms (all-gathered parameters, a unit's unsharded
gradients, the communication buffers) are added to the replay's peak as if they coincided with it;
autocast's weight copies (``amp``) are billed whole on every scheme. Not modelled: the communication
library's own buffers (NCCL, gloo), allocator rounding, and kernels' workspaces.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

from archlab.analysis.checkpointing import Replay, candidates, names_of, plan, plan_method
from archlab.analysis.training_memory import (STATE_BUFFERS, StepPeak, StepReplay, activation_bytes, adam_temporaries,
                                              bill_dict)
from archlab.errors import UserError
from archlab.trace.graph import Param, TrainingTrace
from archlab.units import SCHEMA_VERSION

SCHEMES = ("none", "zero1", "zero2", "zero3", "fsdp")
OFFLOADS = ("optimizer", "params")
DDP_BUCKET_CAP_BYTES = 25 * 2**20  # torch/nn/parallel/distributed.py: _DEFAULT_BUCKET_CAP_MB = 25, in MiB
DDP_FIRST_BUCKET_BYTES = 2**20  # dist._DEFAULT_FIRST_BUCKET_BYTES: the first bucket's cap
CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


def check_sharding(world_size: Any, shard: str, offload: str | None, batch: int | None = None,
                   fsdp_unit: Sequence[str] = ()) -> None:
    """A world size, scheme and offload this bill knows (and a global batch the world size divides, FSDP
    units only where a scheme has them), or one line saying what is wrong."""
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise UserError(f"--world-size must be a whole number of at least 1, got {world_size!r}")
    if shard not in SCHEMES:
        raise UserError(f"unknown --shard '{shard}' (choose {', '.join(SCHEMES)})")
    if offload is not None and offload not in OFFLOADS:
        raise UserError(f"unknown --offload '{offload}' (choose {', '.join(OFFLOADS)})")
    if offload is not None and shard == "none":
        raise UserError(f"--offload {offload} moves a rank's shard to the host: it needs sharding "
                        "(--shard zero1, zero2, zero3 or fsdp)")
    if offload == "params" and shard not in ("zero3", "fsdp"):
        raise UserError(f"--offload params keeps the sharded parameters on the host: it needs --shard zero3 or "
                        f"fsdp (--shard {shard} keeps every parameter on each rank)")
    if fsdp_unit and shard not in ("zero2", "zero3", "fsdp"):
        raise UserError(f"--fsdp-unit names the units that are sharded and gathered together: it applies to "
                        f"--shard zero2, zero3 or fsdp, not {shard}")
    if batch is not None and batch % world_size:
        raise UserError(f"--batch {batch} is the global batch: --world-size {world_size} does not divide it "
                        f"(each rank takes batch / world size; try --batch {batch // world_size * world_size or world_size}"
                        f" or {(batch // world_size + 1) * world_size})")


def shard_bytes(p: Param, world_size: int) -> int:
    """One rank's shard of ``p`` as FSDP2 makes it: dim 0 padded to a multiple of the world size."""
    if not p.shape:
        return p.itemsize
    return math.ceil(p.shape[0] / world_size) * math.prod(p.shape[1:]) * p.itemsize


@dataclass(frozen=True)
class Unit:
    """An FSDP unit: a module whose parameters are all-gathered together ("" is the root)."""

    name: str
    params: tuple[Param, ...]

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.params)

    @property
    def grad_bytes(self) -> int:
        return sum(p.bytes for p in self.params if p.trainable)

    def padded_bytes(self, world_size: int) -> int:
        return world_size * sum(shard_bytes(p, world_size) for p in self.params)

    def padded_grad_bytes(self, world_size: int) -> int:
        return world_size * sum(shard_bytes(p, world_size) for p in self.params if p.trainable)


def _owns(module: str, param: str) -> bool:
    return module == "" or param.startswith(module + ".")


def block_names(tt: TrainingTrace) -> list[str]:
    """The default units: the children (with parameters) of every outermost container of repeated blocks."""
    return blocks_of(tt.modules, [p.name for p in tt.parameters])


def blocks_of(modules: Sequence[tuple[str, str]], param_names: Sequence[str]) -> list[str]:
    """``block_names`` of a model given as (qualified name, class name) of every module, the model's first, and
    the qualified names of its parameters: a traced step's, or a real module's (the distributed measurement's)."""
    types = dict(modules)
    children: dict[str, list[str]] = {}
    for name, _ in modules:
        if name:
            children.setdefault(name.rpartition(".")[0], []).append(name)
    holding = {n for n, _ in modules if any(_owns(n, p) for p in param_names)}
    chosen: list[str] = []
    for name, kind in modules:
        if any(name == c or name.startswith(c + ".") for c in chosen) or kind not in CONTAINERS:
            continue
        kids = [k for k in children.get(name, []) if k in holding]
        kinds = [types[k] for k in kids]
        if any(kinds.count(k) >= 2 for k in kinds):
            chosen.extend(kids)
    return chosen


def fsdp_units(tt: TrainingTrace, globs: Sequence[str] = ()) -> tuple[Unit, list[Unit], str]:
    """(the root unit, the other units, the wrapping policy in words): by default per top-level block,
    or each module matching one of ``globs`` (each parameter in its innermost unit)."""
    if globs:
        names: list[str] = []
        modules = [n for n, _ in tt.modules if n]
        for g in globs:
            if not isinstance(g, str) or not g:
                raise UserError(f"--fsdp-unit takes a module-name glob such as 'layer*.*' or 'model.layers.*', "
                                f"got {g!r}")
            hits = [n for n in modules if fnmatch.fnmatchcase(n, g)]
            if not hits:
                shown = ", ".join(n for n in modules if "." not in n)
                raise UserError(f"--fsdp-unit {g}: no module of the model matches (its top-level modules: {shown})")
            if not any(_owns(h, p.name) for h in hits for p in tt.parameters):
                raise UserError(f"--fsdp-unit {g}: the modules it matches ({hits[0]}"
                                f"{', ...' if len(hits) > 1 else ''}) hold no parameters: no unit to shard")
            # a glob's outermost matches ('layer*' is layer1..layer4, not every module inside them too);
            # nesting is for separate globs to ask for
            names += [h for h in hits if h not in names and not any(h.startswith(o + ".") for o in hits)]
        policy = f"each outermost module matching {' or '.join(globs)}"
    else:
        names = block_names(tt)
        policy = ("per top-level block (each child of an outermost Sequential/ModuleList/ModuleDict of "
                  "repeated blocks)") if names else "one unit, the whole model (no container of repeated blocks)"
    owner: dict[str, list[Param]] = {n: [] for n in ["", *names]}
    for p in tt.parameters:
        best = max((n for n in names if _owns(n, p.name)), key=len, default="")
        owner[best].append(p)
    units = [Unit(n, tuple(owner[n])) for n in names if owner[n]]
    return Unit("", tuple(owner[""])), units, policy


def fsdp_timeline(tt: TrainingTrace, root: Unit, units: Sequence[Unit], world_size: int, *, gathers: bool,
                  shard_grads: dict[str, int]) -> tuple[dict[int, tuple[int, int, int]], dict[int, str]]:
    """What a sharded rank holds beside its activations while each op of the step runs, as FSDP2 schedules its
    units: (op index -> (gathered parameters, a unit's gradients beyond this rank's shard, communication
    buffers), in bytes; op index -> the name of the unit it runs in, where it runs in one). ``gathers``: the
    parameters are sharded and all-gathered (ZeRO-3 / FSDP2; not ZeRO-2); ``shard_grads``: the bytes of each unit's
    gradients that the replay already counts (this rank's shards). Forward: the root unit's parameters all along
    (FSDP2 does not reshard the root after its forward), a unit's while its ops run (resharded after its forward),
    and at a unit's first op also its flat all-gather output (alive while it is copied out into the parameters).
    Backward, units in the order their backward runs: the root's parameters; the unit's own; the next unit's
    all-gather output (prefetched at this unit's pre-backward, copied out at the next's); the unit's gradients
    whole; the last reduce-scatter input (a flat padded copy of a unit's gradients, kept until the next unit's
    reduce); at the unit's last op also its own reduce-scatter input beside its whole gradients. An op belongs to
    the innermost unit whose module holds it."""
    tr = tt.trace
    n = world_size
    names = sorted((u.name for u in units), key=len, reverse=True)
    by_name = {u.name: u for u in units}

    def unit_of(index: int) -> Unit | None:
        call = tr.ops[index].call
        module = tr.calls[call].name if call >= 0 else ""
        for name in names:
            if module == name or module.startswith(name + "."):
                return by_name[name]
        return None

    of = [unit_of(op.index) for op in tr.ops]
    names_at = {i: u.name for i, u in enumerate(of) if u is not None}
    root_params = root.bytes if gathers else 0
    timeline: dict[int, tuple[int, int, int]] = {}
    seen: set[str] = set()
    for i in range(tt.backward_start):
        u = of[i]
        gathered, comm = root_params, (root.padded_bytes(n) if gathers and i == 0 else 0)
        if u is not None and gathers:
            gathered += u.bytes
            if u.name not in seen:
                comm += u.padded_bytes(n)
        if u is not None:
            seen.add(u.name)
        timeline[i] = (gathered, 0, comm)
    order: list[Unit] = []  # the units in the order their backward runs
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for i in range(tt.backward_start, len(tr.ops)):
        u = of[i]
        if u is not None:
            if u.name not in first:
                first[u.name] = i
                order.append(u)
            last[u.name] = i
    position = {u.name: k for k, u in enumerate(order)}
    k, kept = 0, 0  # the next unit's position in ``order``; the last reduce-scatter input kept
    for i in range(tt.backward_start, len(tr.ops)):
        u = of[i]
        if u is None:
            upcoming = order[k] if k < len(order) else None
            prefetched = upcoming.padded_bytes(n) if gathers and upcoming is not None else 0
            timeline[i] = (root_params, 0, prefetched + kept)
            continue
        k = position[u.name] + 1
        upcoming = order[k] if k < len(order) else None
        own = u.bytes if gathers else 0
        grads = u.grad_bytes - shard_grads.get(u.name, 0)
        if i == first[u.name]:  # its all-gather output (prefetched) is copied out into its parameters
            comm = (u.padded_bytes(n) if gathers else 0) + kept
        else:
            comm = (upcoming.padded_bytes(n) if gathers and upcoming is not None else 0) + kept
        if i == last[u.name]:  # its post-backward: its gradients copied into a flat reduce-scatter input
            comm += u.padded_grad_bytes(n)
        timeline[i] = (root_params + own, grads, comm)
        if i == last[u.name]:
            kept = u.padded_grad_bytes(n)
    return timeline, names_at


def ddp_buckets(params: Sequence[Param]) -> int:
    """How many gradient buckets DDP makes of the trainable ``params`` (rebuilt after the first step in the
    order the gradients become ready, about the reverse of the parameters'): a bucket closes when it reaches
    its cap, 1 MiB for the first and 25 MiB after; one bucket list per dtype."""
    open_: dict[int, int] = {}
    caps: dict[int, int] = {}
    count = 0
    for p in reversed([p for p in params if p.trainable]):
        key = p.itemsize
        if key not in open_:
            open_[key], caps[key] = 0, DDP_FIRST_BUCKET_BYTES
        open_[key] += p.bytes
        if open_[key] >= caps[key]:
            count += 1
            open_[key], caps[key] = 0, DDP_BUCKET_CAP_BYTES
    return count + sum(1 for v in open_.values() if v)


def zero1_partition(params: Sequence[Param], world_size: int) -> list[list[Param]]:
    """ZeroRedundancyOptimizer's partition: parameters by size, largest first (a stable sort), each to the
    rank with the fewest elements so far (the lowest such rank)."""
    ranks: list[list[Param]] = [[] for _ in range(world_size)]
    sizes = [0] * world_size
    for p in sorted(params, key=lambda p: p.numel, reverse=True):
        r = sizes.index(min(sizes))
        ranks[r].append(p)
        sizes[r] += p.numel
    return ranks


def _state(params: Sequence[Param], optimizer: str, sizes: dict[str, int] | None = None) -> int:
    trainable = [p for p in params if p.trainable]
    total = sum((sizes or {}).get(p.name, p.bytes) for p in trainable)
    return STATE_BUFFERS[optimizer] * total + (4 * len(trainable) if optimizer in ("adam", "adamw") else 0)


def _temporaries(params: Sequence[Param], optimizer: str, sizes: dict[str, int] | None = None) -> int:
    """Single-tensor Adam's temporaries over ``params`` (or their shards) in the optimizer's order
    (``training_memory.adam_temporaries``); SGD and momentum none."""
    trainable = [p for p in params if p.trainable]
    if optimizer not in ("adam", "adamw") or not trainable:
        return 0
    return adam_temporaries([(sizes or {}).get(p.name, p.bytes) for p in trainable])


@dataclass(frozen=True)
class PerRankBill:
    """One rank's training-step memory, bytes on its device unless said otherwise (see the module)."""

    model: str
    input_shape: tuple[int, ...]  # one rank's input: the global batch divided by the world size
    world_size: int
    global_batch: int
    shard: str
    offload: str | None
    optimizer: str
    amp: str | None
    dtype: str
    params: int
    trainable_params: int
    params_bytes: int  # this rank's parameters: all (none, zero1, zero2) or its shard
    amp_weight_copies_bytes: int
    gradients_bytes: int  # this rank's gradients once the backward is done: all, or its shard
    optimizer_state_bytes: int
    comm_buffers_bytes: int
    comm_buffers_what: str
    gathered_params_bytes: int  # zero3/fsdp: parameters all-gathered and alive when the rank's peak is reached
    unit_gradients_bytes: int  # zero2/zero3/fsdp: a unit's whole gradients (beyond this rank's shard) at the peak
    saved_activations_bytes: int
    # activations + this rank's gradients: at their largest over the step (none, zero1), or as they are when the
    # rank's peak is reached (zero2, zero3, fsdp: the peak of the sum with the terms above)
    activation_peak_bytes: int
    activation_peak_at: str
    optimizer_step_bytes: int
    training_peak_bytes: int  # the per-rank peak on the device
    host_bytes: int = 0  # offloaded to the host, per rank
    rank: int = 0  # the rank billed (zero1: the one with the largest peak; the others are alike)
    wrap_policy: str | None = None
    units: int = 0  # FSDP units besides the root
    largest_unit: str | None = None
    largest_unit_bytes: int = 0
    root_unit_bytes: int = 0
    peak_unit: str | None = None  # zero2/zero3/fsdp: the unit whose ops run when the rank's peak is reached
    ddp_buckets: int = 0
    budget_bytes: int | None = None
    max_batch: int | None = None  # the largest global batch (a multiple of the world size) whose peak fits
    max_batch_peak_bytes: int | None = None
    measured_training_peak_bytes: int | None = None  # a measured rank's peak (the largest of the ranks')
    measured_method: str | None = None
    # with --checkpoint, as the single-device bill's (TrainingMemoryResult): the globs as given or ("auto",), the
    # modules recomputed in the backward, their forward MACs (per rank), the per-rank peak without them, the plan
    checkpoint: tuple[str, ...] = ()
    checkpointed: tuple[str, ...] = ()
    recompute_macs: int | None = None
    unplanned_training_peak_bytes: int | None = None
    plan_method: str | None = None

    @property
    def per_rank_batch(self) -> int:
        return self.global_batch // self.world_size

    @property
    def measured_diff_percent(self) -> float | None:
        if not self.measured_training_peak_bytes:
            return None
        return 100.0 * (self.training_peak_bytes - self.measured_training_peak_bytes) / self.measured_training_peak_bytes

    @property
    def persistent_bytes(self) -> int:
        """What stays on the device for the whole run: parameters, copies, optimizer state, DDP's buckets."""
        buckets = self.comm_buffers_bytes if self.shard in ("none", "zero1") else 0
        return self.params_bytes + self.amp_weight_copies_bytes + self.optimizer_state_bytes + buckets

    def to_dict(self) -> dict[str, Any]:
        d = bill_dict(self)
        d["per_rank_batch"] = self.per_rank_batch
        d["fsdp_units"] = d.pop("units")  # "units" is the JSON's description of its units
        return {"schema_version": SCHEMA_VERSION,
                "units": {"bytes": "bytes per rank, on its device (host_bytes: on its host)",
                          "training_peak_bytes": "persistent (parameters, amp copies, optimizer state, DDP buckets) + "
                                                 "the larger of: the largest sum over the step's ops of activations + "
                                                 "gradients + gathered parameters + the unit's gradients + the "
                                                 "reduce-scatter/all-gather buffers (the fields give each at that op); "
                                                 "the optimizer step",
                          **({"recompute_macs": "forward MACs of the checkpointed modules, run again in the backward, "
                                                "on each rank"} if self.checkpoint else {})},
                **d}


def per_rank_bill(tt: TrainingTrace, *, world_size: int, shard: str = "none", optimizer: str = "sgd",
                  amp: str | None = None, offload: str | None = None, fsdp_unit: Sequence[str] = (),
                  label: str = "", global_batch: int | None = None, checkpointed: Sequence[int] = (),
                  checkpoint: Sequence[str] = (), plan_method: str | None = None) -> PerRankBill:
    """One rank's memory bill of the training step ``tt``, traced at the per-rank batch (the global batch
    divided by ``world_size``), under ``shard`` (none, zero1, zero2, zero3, fsdp), ``optimizer`` (sgd,
    momentum, adam, adamw), ``amp`` (None, bf16, fp16) and ``offload`` (None, optimizer, params); FSDP units
    per top-level block or as ``fsdp_unit`` globs name them. Nothing runs: a function of the trace (the
    module's docstring says what each scheme keeps and what is an upper bound).

    ``checkpointed``: the module calls (the trace's call indices, as ``archlab.analysis.checkpointing.select``
    or ``by_names`` give them) run under ``torch.utils.checkpoint``: the step is replayed with their inner
    activations freed after the forward and recomputed in the backward (``checkpointing.Replay``), with this
    rank's gradient sizes; ``checkpoint`` (the globs as given, or ("auto",)) and ``plan_method`` are for the
    record.

    The result's ``training_peak_bytes`` is the prediction of one rank's peak on its device; for
    ``zero1`` the rank with the largest one. ``global_batch``: for the record (default: the traced batch
    times the world size)."""
    fsdp_unit = (fsdp_unit,) if isinstance(fsdp_unit, str) else tuple(fsdp_unit)
    check_sharding(world_size, shard, offload, fsdp_unit=fsdp_unit)
    options = dict(world_size=world_size, shard=shard, optimizer=optimizer, amp=amp, offload=offload,
                   fsdp_unit=fsdp_unit, label=label, global_batch=global_batch)
    calls = tuple(checkpointed)
    grad_sizes, timeline, unit_names = rank_schedule(tt, world_size, shard, offload, fsdp_unit)
    extra = {i: sum(parts) for i, parts in timeline.items()}
    options.update(timeline=timeline, unit_names=unit_names)
    if not calls and not checkpoint:
        replay = StepReplay(tt, activation_bytes(tt, amp), grad_sizes, extra)
        return _largest(_rank_bills(tt, replay.peak(()), **options))
    ckpt = Replay(tt, activation_bytes(tt, amp), grad_sizes, extra)
    best = _largest(_rank_bills(tt, ckpt.peak(calls), **options))
    plain = _largest(_rank_bills(tt, ckpt.peak(()), **options))
    record = tuple(checkpoint) or (("auto",) if plan_method else names_of(tt, calls))
    return replace(best, checkpoint=record, checkpointed=names_of(tt, calls), recompute_macs=ckpt.recompute_macs(calls),
                   unplanned_training_peak_bytes=plain.training_peak_bytes, plan_method=plan_method)


def _largest(bills: list[PerRankBill]) -> PerRankBill:
    """The rank billed: the one with the largest peak (the first of equals)."""
    return max(bills, key=lambda b: b.training_peak_bytes)


def _outside_replay(b: PerRankBill) -> int:
    """What a rank holds beside its activations and gradients at its peak: all-gathered parameters, a unit's
    gradients and the sharded schemes' buffers (DDP's buckets are persistent). The replay counts them op by op
    (its extra bytes): a bill made from no replay (``StepPeak`` of nothing) has none."""
    sharded = b.shard in ("zero2", "zero3", "fsdp")
    return b.gathered_params_bytes + b.unit_gradients_bytes + (b.comm_buffers_bytes if sharded else 0)


def per_rank_plan(tt: TrainingTrace, *, budget: int, depth: int = 2, budget_text: str = "", world_size: int,
                  shard: str = "none", optimizer: str = "sgd", amp: str | None = None, offload: str | None = None,
                  fsdp_unit: Sequence[str] = (), label: str = "", global_batch: int | None = None) -> PerRankBill:
    """``--checkpoint auto --budget`` with ``--world-size/--shard``: the bill (``per_rank_bill``) of the
    least-recompute set of modules to checkpoint whose per-rank peak fits ``budget`` bytes (the budget is
    per rank), by ``checkpointing.plan``'s branch and bound over the per-rank replay; one line
    (``UserError``) naming the smallest per-rank peak any plan reaches, and with which plan, where none fits.

    A rank's peak is ``persistent + max(R + outside, step)`` with R the replay's activation peak: the plan
    bounds R by the budget less the rank's persistent and outside terms (every rank's, for zero1)."""
    fsdp_unit = (fsdp_unit,) if isinstance(fsdp_unit, str) else tuple(fsdp_unit)
    check_sharding(world_size, shard, offload, fsdp_unit=fsdp_unit)
    options = dict(world_size=world_size, shard=shard, optimizer=optimizer, amp=amp, offload=offload,
                   fsdp_unit=fsdp_unit, label=label, global_batch=global_batch)
    grad_sizes, timeline, unit_names = rank_schedule(tt, world_size, shard, offload, fsdp_unit)
    replay = Replay(tt, activation_bytes(tt, amp), grad_sizes, {i: sum(parts) for i, parts in timeline.items()})
    cands = candidates(tt, depth)
    # the terms that no plan changes (the sharded schemes' transient terms are in the replay, op by op)
    ranks = _rank_bills(tt, StepPeak(0, "", 0, 0), timeline=timeline, unit_names=unit_names, **options)
    limit = min(budget - b.persistent_bytes - _outside_replay(b) for b in ranks)
    step = max(b.persistent_bytes + b.optimizer_step_bytes for b in ranks)  # the peak where the step dominates
    floor = min(step - b.persistent_bytes - _outside_replay(b) for b in ranks)
    found = plan(replay, cands, limit, floor=floor)

    def peak_of(activations: int) -> int:
        return max(b.persistent_bytes + max(activations + _outside_replay(b), b.optimizer_step_bytes) for b in ranks)

    method = plan_method(tt, found, len(cands), depth, peak_of(found.activation_peak), budget, budget_text,
                         step > budget, what="training peak per rank")
    result = per_rank_bill(tt, **options, checkpointed=found.calls, checkpoint=("auto",), plan_method=method)
    assert result.training_peak_bytes == peak_of(result.activation_peak_bytes + _outside_replay(result)) <= budget
    return result


def rank_grad_sizes(tt: TrainingTrace, world_size: int, shard: str, offload: str | None,
                fsdp_unit: Sequence[str]) -> dict[int, int] | None:
    """The replay's gradient sizes under sharding (zero2, zero3, fsdp): a unit's gradients become this rank's
    shard (on the host, with --offload params: 0 on the device) once the unit's backward is done; the root's
    stay whole to the end of the backward. None: every gradient whole (none, zero1)."""
    if shard not in ("zero2", "zero3", "fsdp"):
        return None
    root, _, _ = fsdp_units(tt, fsdp_unit)
    in_root = {p.name for p in root.params}
    on_host = offload == "params"
    return {p.grad: (p.bytes if p.name in in_root else (0 if on_host else shard_bytes(p, world_size)))
            for p in tt.parameters if p.trainable and p.grad is not None}


def rank_schedule(tt: TrainingTrace, world_size: int, shard: str, offload: str | None, fsdp_unit: Sequence[str],
                  ) -> tuple[dict[int, int] | None, dict[int, tuple[int, int, int]], dict[int, str]]:
    """What the replay of a rank's step needs beside the trace: the gradient sizes (``rank_grad_sizes``) and, for
    the sharded schemes, ``fsdp_timeline``'s terms op by op and the unit each op runs in (empty for none, zero1)."""
    grad_sizes = rank_grad_sizes(tt, world_size, shard, offload, fsdp_unit)
    if grad_sizes is None:
        return None, {}, {}
    root, units, _ = fsdp_units(tt, fsdp_unit)
    shard_grads = {u.name: sum(grad_sizes.get(p.grad, 0) for p in u.params if p.trainable) for u in units}
    timeline, names = fsdp_timeline(tt, root, units, world_size, gathers=shard != "zero2", shard_grads=shard_grads)
    return grad_sizes, timeline, names


def _rank_bills(tt: TrainingTrace, replay: StepPeak, *, world_size: int, shard: str, optimizer: str,
                amp: str | None, offload: str | None, fsdp_unit: tuple[str, ...], label: str,
                global_batch: int | None, timeline: dict[int, tuple[int, int, int]],
                unit_names: dict[int, str]) -> list[PerRankBill]:
    """Every rank's bill (zero1: each rank's; the others: one, alike on every rank), with ``replay`` the step's
    replayed peak (with this rank's gradient sizes and, for the sharded schemes, ``timeline``'s terms op by op:
    ``rank_schedule``'s)."""
    tr = tt.trace
    n = world_size
    per_rank = tr.input_shape[0] if tr.input_shape else 1
    global_batch = global_batch if global_batch is not None else per_rank * n
    params = list(tt.parameters)
    trainable = [p for p in params if p.trainable]
    P = sum(p.bytes for p in params) if params else tr.stored_params_bytes
    G = sum(p.bytes for p in trainable)
    copies = tr.params * 2 if amp else 0
    sharded = shard in ("zero2", "zero3", "fsdp")
    common = dict(model=label, input_shape=tr.input_shape, world_size=n, global_batch=global_batch, shard=shard,
                  offload=offload, optimizer=optimizer, amp=amp, dtype=tr.float_dtype, params=tr.params,
                  trainable_params=tr.trainable_params, amp_weight_copies_bytes=copies)

    if not sharded:
        buckets = ddp_buckets(params)
        what = (f"DDP's gradient buckets: {buckets} (caps 1 MiB for the first, 25 MiB after), a copy of every "
                "gradient (gradient_as_bucket_view=False)")
        if shard == "none":
            ranks = [(0, _state(params, optimizer), _temporaries(params, optimizer))]
        else:
            what += "; ZeroRedundancyOptimizer broadcasts each parameter in place: no buffer"
            ranks = [(r, _state(ps, optimizer), _temporaries(ps, optimizer))
                     for r, ps in enumerate(zero1_partition(params, n))]
        bills = []
        for r, state, temps in ranks:
            host = state + temps if offload == "optimizer" else 0
            state_dev = 0 if offload == "optimizer" else state
            step = G + (0 if offload == "optimizer" else temps)
            peak = P + copies + state_dev + G + max(replay.bytes, step)
            bills.append(PerRankBill(**common, params_bytes=P, gradients_bytes=G, optimizer_state_bytes=state_dev,
                                   comm_buffers_bytes=G, comm_buffers_what=what, gathered_params_bytes=0,
                                   unit_gradients_bytes=0, saved_activations_bytes=replay.saved_bytes,
                                   activation_peak_bytes=replay.bytes, activation_peak_at=replay.where,
                                   optimizer_step_bytes=step, training_peak_bytes=peak, host_bytes=host, rank=r,
                                   ddp_buckets=buckets))
        return bills

    root, units, policy = fsdp_units(tt, fsdp_unit)
    sizes = {p.name: shard_bytes(p, n) for p in params}
    on_host = offload == "params"
    largest = max(units, key=lambda u: u.bytes, default=None)
    shard_params = sum(sizes[p.name] for p in params)
    shard_grads = sum(sizes[p.name] for p in trainable)
    state = _state(params, optimizer, sizes)
    temps = _temporaries(params, optimizer, sizes)
    params_dev = P if shard == "zero2" else (0 if on_host else shard_params)
    # the transient terms as they are when the rank's peak is reached (the replay's op; none before the first)
    gathered, unit_grads, comm = timeline.get(replay.op, (0, 0, 0))
    what = ("reduce-scatter inputs (a unit's gradients, flat, dim 0 padded)" if shard == "zero2" else
            "all-gather outputs (a unit's parameters, flat, dim 0 padded) and reduce-scatter inputs (a unit's "
            "gradients, flat, dim 0 padded)") + ", as alive at the peak"
    grads_dev = 0 if on_host else shard_grads
    host = 0
    state_dev, temps_dev = state, temps
    if offload is not None:
        host = state + temps + (shard_params + shard_grads if on_host else 0)
        state_dev, temps_dev = 0, 0
    # the end of the backward: every gradient reduced but the root's, reduce-scattered now
    root_grads = root.grad_bytes
    end = grads_dev - (0 if on_host else sum(sizes[p.name] for p in root.params if p.trainable)) + root_grads \
        + root.padded_grad_bytes(n)
    step = max(grads_dev + temps_dev, end)
    peak = params_dev + copies + state_dev + max(replay.bytes, step)
    return [PerRankBill(**common, params_bytes=params_dev, gradients_bytes=grads_dev, optimizer_state_bytes=state_dev,
                       comm_buffers_bytes=comm, comm_buffers_what=what, gathered_params_bytes=gathered,
                       unit_gradients_bytes=unit_grads, saved_activations_bytes=replay.saved_bytes,
                       activation_peak_bytes=replay.bytes - replay.extra_bytes, activation_peak_at=replay.where,
                       optimizer_step_bytes=step, training_peak_bytes=peak, host_bytes=host, wrap_policy=policy,
                       units=len(units), largest_unit=largest.name if largest else None,
                       largest_unit_bytes=largest.bytes if largest else 0, root_unit_bytes=root.bytes,
                       peak_unit=unit_names.get(replay.op))]
