"""Activation checkpointing in the training step's bill (``memory --training --checkpoint MODULES``), and the
plan of which modules to checkpoint to fit a memory budget (``--checkpoint auto --budget 8GiB``).

A checkpointed module call (``torch.utils.checkpoint.checkpoint(module, x, use_reentrant=False)``) keeps
only its inputs for the backward: the activations made inside it are freed after their last reader of the
forward (or of a backward outside the module: a module's output that the next layer saved stays alive for
that layer). When the backward reaches the module (its first backward op), its forward runs again on the
kept inputs: its inner activations are alive again during its own backward, each freed after its last
reader there. The replay is the step's one (``archlab.analysis.training_memory.StepReplay``, which
``step_peak`` runs with nothing checkpointed) with those recompute segments inserted; it takes the same
``grad_sizes`` (a rank's gradient shards, ``archlab.analysis.sharding``).

The recompute MACs are the forward MACs of the checkpointed calls (each call recomputed once, in full, as
``torch.utils.checkpoint`` does with ``set_checkpoint_early_stop(False)``; PyTorch's default early stop
skips the trailing ops of a module that save nothing, so its recompute can be smaller). A module that is
checkpointed inside another checkpointed module adds nothing: only the outermost match counts.

**The plan** (``plan``): among the candidate calls (the module tree cut at one depth: every call at that
depth, and the shallower calls without children), the set with the least recompute MACs whose predicted
training peak fits the budget. The method is exact: a branch and bound over the candidates (each in or
out), pruned by the recompute of the set so far against the best plan found and by a lower bound of the
peak of every completion, the replay with the undecided calls taken optimistically (their inner
activations freed after the forward, no recompute copies, their inputs not kept): each storage is then
alive at most where it is alive in any completion, so no completion peaks lower. Where the search would
replay more than ``node_limit`` sets it stops and says so, with the best plan found and a lower bound of
the optimum's recompute (the least recompute among the sets it did not search).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

from archlab.analysis.costs import OpCosts
from archlab.analysis.training_memory import StepReplay, TrainingMemoryResult, activation_bytes, bill, persistent_bytes
from archlab.errors import UserError, shorten
from archlab.trace.graph import TrainingTrace
from archlab.units import human_bytes

NODE_LIMIT = 20000  # replays of the planner's search before it stops with a bounded answer


def select(tt: TrainingTrace, patterns: Sequence[str]) -> list[int]:
    """The calls (indices) whose module name matches one of the globs, outermost only (a call inside a
    matched call is recomputed with it); a glob that matches no called module is refused."""
    calls = tt.trace.calls
    hit: set[int] = set()
    for pattern in patterns:
        if not pattern or pattern == "auto":
            raise UserError("--checkpoint takes module-name globs such as 'layer*' or 'features.3' (or auto with "
                            f"--budget), got {pattern!r}")
        found = {c.index for c in calls if c.depth > 0 and fnmatch.fnmatchcase(c.name, pattern)}
        if not found:
            shown = ", ".join(c.name for c in calls if c.depth == 1)
            raise UserError(f"--checkpoint {pattern}: no module of the model matches (its top-level modules: "
                            f"{shorten(shown, 80)})")
        hit |= found
    return [c for c in sorted(hit) if not _under(calls, c, hit)]


def checkpoint_patterns(checkpoint: Sequence[str] | str | None) -> tuple[str, ...]:
    """``--checkpoint``'s globs: repeatable, each comma-separated; empty items refused."""
    if checkpoint is None:
        return ()
    items = [checkpoint] if isinstance(checkpoint, str) else list(checkpoint)
    out = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                raise UserError(f"--checkpoint takes module-name globs such as 'layer*' (comma-separated or repeated) "
                                f"or auto, got {str(item)!r}")
            out.append(part)
    return tuple(dict.fromkeys(out))


def _under(calls: list, c: int, chosen: Iterable[int]) -> bool:
    chosen = set(chosen)
    p = calls[c].parent
    while p >= 0:
        if p in chosen:
            return True
        p = calls[p].parent
    return False


def candidates(tt: TrainingTrace, depth: int) -> list[tuple[int, ...]]:
    """The planner's candidates: the module tree cut at ``depth`` (the calls at that depth, and shallower
    calls without children), each with forward ops and a backward to recompute for; the calls of one module
    (a module called twice) are one candidate, as checkpointing wraps the module."""
    if depth < 1:
        raise UserError(f"--checkpoint-depth must be 1 or more, got {depth}")
    calls = tt.trace.calls
    parents = {c.parent for c in calls}
    with_backward = {op.call for op in tt.trace.ops[tt.backward_start:] if op.call >= 0}
    below: set[int] = set()  # calls that have a backward op in them or under them
    for c in with_backward:
        while c >= 0 and c not in below:
            below.add(c)
            c = calls[c].parent
    groups: dict[str, list[int]] = {}
    for c in calls:
        if (0 < c.depth <= depth and (c.depth == depth or c.index not in parents) and c.end_op > c.first_op
                and c.index in below):
            groups.setdefault(c.name, []).append(c.index)
    return [tuple(g) for g in groups.values()]


def by_names(tt: TrainingTrace, names: Sequence[str]) -> list[int]:
    """The calls of the modules named (exactly): a plan's modules in a trace at another batch."""
    wanted = set(names)
    return [c.index for c in tt.trace.calls if c.depth > 0 and c.name in wanted]


def names_of(tt: TrainingTrace, calls: Iterable[int]) -> tuple[str, ...]:
    """The module names of the calls, in the forward's order, each once."""
    return tuple(dict.fromkeys(tt.trace.calls[c].name for c in sorted(calls)))


def recompute_macs(tt: TrainingTrace, chosen: Iterable[int], costs: OpCosts) -> int:
    """The forward MACs of the outermost chosen calls that the backward reaches (a call without a backward op
    is never recomputed), each call once."""
    calls = tt.trace.calls
    chosen = set(chosen)
    outer = {c for c in chosen if not _under(calls, c, chosen)}
    done = set()
    for op in tt.trace.ops[tt.backward_start:]:
        c = op.call
        while c >= 0 and c not in outer:
            c = calls[c].parent
        if c >= 0:
            done.add(c)
    return sum(sum(costs.macs[calls[c].first_op:calls[c].end_op]) for c in done)


class Replay(StepReplay):
    """The step replayed with some calls checkpointed (``StepReplay``, the one replay of the step), with the
    forward MACs of the calls: ``recompute_macs(chosen)``."""

    def __init__(self, tt: TrainingTrace, act_bytes: int, grad_sizes: dict[int, int] | None = None,
                 extra: dict[int, int] | None = None) -> None:
        super().__init__(tt, act_bytes, grad_sizes, extra)
        self.costs = OpCosts(tt.trace)

    def recompute_macs(self, chosen: Iterable[int]) -> int:
        return recompute_macs(self.tt, chosen, self.costs)


@dataclass(frozen=True)
class Plan:
    """The planner's answer: the calls to checkpoint, their recompute MACs, and how it was found."""

    calls: tuple[int, ...]
    recompute_macs: int
    activation_peak: int  # bytes: the activations + gradients peak of the step under the plan
    fits: bool
    exact: bool  # the search finished: no set of candidates fits with less recompute
    lower_bound_macs: int  # a lower bound of the optimum's recompute (== recompute_macs when exact)
    searched: int  # sets replayed
    candidates: tuple[tuple[int, ...], ...] = field(default=())


def plan(replay: Replay, cands: Sequence[tuple[int, ...]], limit: int, node_limit: int = NODE_LIMIT,
         floor: int = 0) -> Plan:
    """The least-recompute set of ``cands`` (each a module's calls) whose activation peak (activations +
    gradients, bytes) is at most ``limit``, by branch and bound; when none fits, the set with the smallest
    peak (``fits`` False), no peak below ``floor`` counting as smaller (the optimizer's step, which no plan
    changes), the least recompute among those, then the fewest modules."""
    calls = replay.tt.trace.calls
    macs = {g: sum(sum(replay.costs.macs[calls[c].first_op:calls[c].end_op]) for c in g) for g in cands}
    order = list(cands)
    searched = 0

    def flat(groups: Iterable[tuple[int, ...]]) -> set[int]:
        return {c for g in groups for c in g}

    def bound(chosen: frozenset, i: int) -> int:
        nonlocal searched
        searched += 1
        return replay.peak(flat(chosen), flat(order[i:])).bytes

    def cost_of(chosen: Iterable[tuple[int, ...]]) -> tuple[int, int]:
        chosen = list(chosen)
        return sum(macs[c] for c in chosen), len(chosen)

    # 1. a set that fits, or the smallest peak of any set: depth-first, include-first, pruned by the bound
    every = frozenset(order)
    best_peak, best_set = max(replay.peak(flat(every)).bytes, floor), every
    searched += 1
    stack = [(frozenset(), 0)]
    while best_peak > limit and stack and searched < node_limit:
        chosen, i = stack.pop()
        lb = max(bound(chosen, i), floor)
        if lb > best_peak or (lb == best_peak and cost_of(chosen) >= cost_of(best_set)):
            continue
        if i == len(order):
            best_peak, best_set = lb, chosen
            continue
        stack.append((chosen, i + 1))
        stack.append((chosen | {order[i]}, i + 1))
    if best_peak > limit:
        cost = cost_of(best_set)[0]
        return Plan(tuple(sorted(flat(best_set))), cost, replay.peak(flat(best_set)).bytes, False, not stack, cost,
                    searched, tuple(order))
    # 2. the least recompute that fits: exclude-first depth-first search, pruned by the recompute against the
    # best plan found and by the bound
    best_cost = cost_of(best_set)[0]
    stack = [(frozenset(), 0, 0)]
    open_costs: list[int] = []
    while stack:
        if searched >= node_limit:
            open_costs = [cost for _, _, cost in stack if cost < best_cost]
            break
        chosen, i, cost = stack.pop()
        if cost >= best_cost:
            continue
        lb = bound(chosen, i)
        if lb > limit:
            continue
        if i == len(order):
            best_cost, best_set = cost, chosen
            continue
        c = order[i]
        stack.append((chosen | {c}, i + 1, cost + macs[c]))
        stack.append((chosen, i + 1, cost))
    exact = not open_costs
    peak = replay.peak(flat(best_set)).bytes
    searched += 1
    return Plan(tuple(sorted(flat(best_set))), best_cost, peak, True, exact,
                best_cost if exact else min([best_cost, *open_costs]), searched, tuple(order))


def checkpointed_bill(tt: TrainingTrace, label: str, optimizer: str, amp: str | None, calls: Sequence[int],
                      checkpoint: Sequence[str], method: str | None = None) -> TrainingMemoryResult:
    """The training-step bill with ``calls`` checkpointed (``checkpoint``: the globs as given, or ("auto",))."""
    replay = Replay(tt, activation_bytes(tt, amp))
    plain = bill(tt, label, optimizer, amp)
    r = bill(tt, label, optimizer, amp, peak=replay.peak(calls))
    return replace(r, checkpoint=tuple(checkpoint), checkpointed=names_of(tt, calls),
                   recompute_macs=replay.recompute_macs(calls), unplanned_training_peak_bytes=plain.training_peak_bytes,
                   plan_method=method)


def plan_bill(tt: TrainingTrace, label: str, optimizer: str, amp: str | None, budget: int, depth: int,
              budget_text: str = "") -> TrainingMemoryResult:
    """``--checkpoint auto --budget``: the bill of the least-recompute plan that fits ``budget`` bytes; one line
    (``UserError``) naming the smallest peak any plan reaches, and with which plan, where none fits."""
    replay = Replay(tt, activation_bytes(tt, amp))
    cands = candidates(tt, depth)
    fixed = persistent_bytes(tt, optimizer, amp)
    plain = bill(tt, label, optimizer, amp)
    step = plain.optimizer_step_bytes
    found = plan(replay, cands, budget - fixed, floor=step)
    method = plan_method(tt, found, len(cands), depth, fixed + max(found.activation_peak, step), budget,
                         budget_text, fixed + step > budget)
    return checkpointed_bill(tt, label, optimizer, amp, found.calls, ("auto",), method)


def plan_method(tt: TrainingTrace, found: Plan, n_candidates: int, depth: int, peak: int, budget: int,
                budget_text: str = "", step_over: bool = False, what: str = "training peak") -> str:
    """How the plan ``found`` was found, in words (exact or bounded); or one line (``UserError``) naming the
    smallest ``what`` (bytes: ``peak``) any plan reaches, and with which plan, where it is over ``budget``
    (``step_over``: the optimizer's step alone is over it)."""
    how = (f"{n_candidates} candidate modules at depth {depth} (--checkpoint-depth), {found.searched:,} sets replayed"
           if n_candidates else f"no module at depth {depth} has a backward to recompute for")
    shown = budget_text or human_bytes(budget)
    if not found.fits or peak > budget:
        names = names_of(tt, found.calls)
        which = (f"checkpointing {len(names)} module{'s' if len(names) != 1 else ''}: {shorten(', '.join(names), 160)}"
                 if names else "checkpointing nothing")
        floor = " (the optimizer's step alone needs more)" if step_over else ""
        proven = "" if found.exact else " found (the search stopped early)"
        raise UserError(f"--budget {shown}: no plan of checkpointed modules fits; the smallest {what}{proven} "
                        f"is {human_bytes(peak)} ({peak:,} bytes), {which}{floor} ({how})")
    if found.exact:
        return f"exact: branch and bound over {how}; no other set fits with less recompute"
    return (f"bounded: branch and bound over {how}, stopped at the limit; the optimum recomputes at least "
            f"{found.lower_bound_macs:,} MACs")
