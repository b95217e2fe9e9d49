"""Renderers for ``archlab memory --training``: the training-step memory bill."""

from __future__ import annotations

from typing import Any

from archlab.analysis.sharding import PerRankBill
from archlab.analysis.training_memory import TrainingMemoryResult
from archlab.report import formats
from archlab.report.formats import csv_table, md_table, text_table, to_json
from archlab.units import human, human_bytes, shape_str

_STATE = {"sgd": "none (plain SGD keeps no state)", "momentum": "1 buffer per trainable parameter (momentum)",
          "adam": "2 buffers per trainable parameter (exp_avg, exp_avg_sq) + a step counter each",
          "adamw": "2 buffers per trainable parameter (exp_avg, exp_avg_sq) + a step counter each"}


def _lines(r: TrainingMemoryResult) -> list[tuple[str, str, str]]:
    master = f" (the {r.dtype} master weights)" if r.amp else ""
    rows = [("parameters", human_bytes(r.params_bytes), f"{r.params:,} params at {r.dtype}{master}")]
    if r.amp:
        rows.append(("amp weight copies", human_bytes(r.amp_weight_copies_bytes),
                     f"the {r.amp} copy of each weight autocast makes, kept for the backward"))
    rows += [
        ("gradients", human_bytes(r.gradients_bytes),
         f"one per trainable parameter ({r.trainable_params:,}), {r.dtype}"),
        ("optimizer state", human_bytes(r.optimizer_state_bytes), f"{r.optimizer}: {_STATE[r.optimizer]}"),
        ("saved activations", human_bytes(r.saved_activations_bytes),
         f"alive when the backward starts: what autograd saved, the batch, the outputs"
         f" (at {'2 bytes, ' + r.amp if r.amp else r.dtype})"),
        ("activations + gradients, peak", human_bytes(r.activation_peak_bytes),
         f"largest live total, saved tensors freed as the backward consumes them, gradients accumulating; "
         f"at {r.activation_peak_at}"),
        ("optimizer step", human_bytes(r.optimizer_step_bytes), "every gradient alive, plus the step's temporaries"),
        ("training peak", human_bytes(r.training_peak_bytes),
         "parameters + amp copies + optimizer state + the larger of the two lines above"),
    ]
    rows += _checkpoint_rows(r)
    if r.frozen:
        rows.insert(1, ("frozen", f"{r.params - r.trainable_params:,}",
                        f"parameters without gradient or state (--freeze {' '.join(r.frozen)})"))
    if r.measured_training_peak_bytes is not None:
        rows.append(("measured training peak", human_bytes(r.measured_training_peak_bytes),
                     f"{r.measured_method}; predicted {r.measured_diff_percent:+.1f}%"))
    if r.budget_bytes is not None:
        fits = (f"batch {r.max_batch} (predicted peak {human_bytes(r.max_batch_peak_bytes)})" if r.max_batch
                else "no batch fits")
        rows.append(("largest batch in budget", str(r.max_batch), f"{human_bytes(r.budget_bytes)}: {fits}"))
    return rows


def _checkpoint_rows(r: Any, per_rank: bool = False) -> list[tuple[str, str, str]]:
    """--checkpoint's lines (none without it): the modules, their recompute MACs, the peak without them, the plan."""
    if not r.checkpoint:
        return []
    names = (", ".join(r.checkpointed) if r.checkpointed else
             "none, the step fits without" if r.checkpoint == ("auto",) else "none")
    how = (f"the plan to the budget{' per rank' if per_rank else ''}" if r.checkpoint == ("auto",) else
           f"--checkpoint {','.join(r.checkpoint)}")
    rank = " on each rank" if per_rank else ""
    rows = [
        ("checkpointed modules", str(len(r.checkpointed)), f"{how}: {names}"),
        ("recompute MACs", f"{r.recompute_macs:,}",
         f"{human(r.recompute_macs, 'MACs')}: their forward, run again in the backward{rank} (torch.utils.checkpoint)"),
        ("without checkpointing", human_bytes(r.unplanned_training_peak_bytes),
         "the training peak" + (" per rank" if per_rank else "")),
    ]
    if r.plan_method:
        rows.append(("plan", "", r.plan_method))
    return rows


_SCHEME = {"none": "DDP replicas", "zero1": "ZeRO-1 (DDP + ZeroRedundancyOptimizer)",
           "zero2": "ZeRO-2", "zero3": "ZeRO-3 (FSDP2 fully_shard)", "fsdp": "FSDP2 fully_shard (ZeRO-3)"}


def _rank_lines(r: PerRankBill) -> list[tuple[str, str, str]]:
    n = r.world_size
    sharded = r.shard in ("zero2", "zero3", "fsdp")
    master = f" (the {r.dtype} master weights)" if r.amp else ""
    if r.shard in ("zero3", "fsdp"):
        where = "on the host (--offload params)" if r.offload == "params" else "on the device"
        params = (f"this rank's shard of {r.params:,} params at {r.dtype}{master}: 1/{n}, dim 0 padded to a "
                  f"multiple of {n} (as FSDP2 shards), {where}")
    else:
        params = f"all {r.params:,} params at {r.dtype}{master}, on every rank"
    rows = [("parameters", human_bytes(r.params_bytes), params)]
    if r.amp:
        rows.append(("amp weight copies", human_bytes(r.amp_weight_copies_bytes),
                     f"the {r.amp} copy of each weight autocast makes, kept for the backward (all of them: an upper "
                     "bound under sharding)"))
    grads = (f"this rank's shard of the {r.trainable_params:,} trainable parameters' gradients, reduce-scattered "
             "unit by unit" if sharded else
             f"one per trainable parameter ({r.trainable_params:,}), {r.dtype}, all-reduced in place")
    if r.offload == "params":
        grads += ", on the host"
    rows.append(("gradients", human_bytes(r.gradients_bytes), grads))
    if r.offload is not None:
        state = "on the host (--offload): the step runs there"
    elif r.shard == "zero1":
        state = (f"{r.optimizer}: {_STATE[r.optimizer]}, for rank {r.rank}'s parameters (ZeroRedundancyOptimizer: "
                 "largest first, each to the emptiest rank)")
    elif sharded:
        state = f"{r.optimizer}: {_STATE[r.optimizer]}, for this rank's shards"
    else:
        state = f"{r.optimizer}: {_STATE[r.optimizer]}"
    rows.append(("optimizer state", human_bytes(r.optimizer_state_bytes), state))
    rows.append(("communication buffers", human_bytes(r.comm_buffers_bytes), r.comm_buffers_what))
    if sharded:
        rows.append(("FSDP units", str(r.units), f"wrapping policy: {r.wrap_policy}; the root unit (the parameters in "
                                                 f"no other unit) holds {human_bytes(r.root_unit_bytes)}"))
    at_peak = f"unit '{r.peak_unit}'" if r.peak_unit else "the root unit's ops"
    if r.shard in ("zero3", "fsdp"):
        largest = f"; the largest unit is '{r.largest_unit}' ({human_bytes(r.largest_unit_bytes)})" \
            if r.largest_unit else ""
        rows.append(("all-gathered parameters", human_bytes(r.gathered_params_bytes),
                     f"whole at the peak (in {at_peak}): the root unit ({human_bytes(r.root_unit_bytes)}, not "
                     f"resharded after the forward) and the unit running{largest}"))
    if sharded:
        rows.append(("unit gradients", human_bytes(r.unit_gradients_bytes),
                     f"at the peak (in {at_peak}): the unit's gradients whole, beyond this rank's shard, until its "
                     "reduce-scatter"))
    act = "2 bytes, " + r.amp if r.amp else r.dtype
    rows += [
        ("saved activations", human_bytes(r.saved_activations_bytes),
         f"alive when the backward starts, at this rank's batch of {r.per_rank_batch} (at {act})"),
        ("activations + gradients, peak" if not sharded else "activations + gradients", human_bytes(r.activation_peak_bytes),
         ("largest live total, with this rank's gradients (all)" if not sharded else
          "live at the rank's peak, with this rank's gradients (the root unit whole, the others shards)")
         + f"; at {r.activation_peak_at}"),
        ("optimizer step", human_bytes(r.optimizer_step_bytes),
         "this rank's gradients, plus the step's temporaries" + (" (the root's reduce-scatter, if larger)"
                                                                 if sharded else "")),
    ]
    during = ("the activation peak" if not sharded else "the largest sum over the step's ops of activations + "
              "gradients + all-gathered parameters + unit gradients + communication buffers")
    persistent = ("parameters" + (" + amp copies" if r.amp else "") + " + optimizer state"
                  + (" + DDP's buckets" if not sharded else ""))
    rows.append(("training peak per rank", human_bytes(r.training_peak_bytes),
                 f"{persistent} + the larger of ({during}) and the optimizer step"))
    rows += _checkpoint_rows(r, per_rank=True)
    if r.offload is not None:
        rows.append(("host memory per rank", human_bytes(r.host_bytes),
                     "offloaded: " + ("the optimizer state and its step's temporaries" if r.offload == "optimizer" else
                                      "the parameter and gradient shards, the optimizer state and its temporaries")))
    if r.measured_training_peak_bytes is not None:
        rows.append(("measured peak per rank", human_bytes(r.measured_training_peak_bytes),
                     f"{r.measured_method}; predicted {r.measured_diff_percent:+.1f}%"))
    if r.budget_bytes is not None:
        fits = (f"global batch {r.max_batch} ({r.max_batch // n} per rank; predicted peak per rank "
                f"{human_bytes(r.max_batch_peak_bytes)})" if r.max_batch else "no batch fits")
        rows.append(("largest batch in budget", str(r.max_batch), f"{human_bytes(r.budget_bytes)} per rank: {fits}"))
    return rows


def _title(r: Any) -> str:
    amp = f", autocast {r.amp}" if r.amp else ""
    if isinstance(r, PerRankBill):
        off = f", offload {r.offload}" if r.offload else ""
        return (f"{r.model}  input {shape_str(r.input_shape)} per rank (global batch {r.global_batch} over "
                f"{r.world_size} ranks)  training step, optimizer {r.optimizer}{amp}, {_SCHEME[r.shard]}{off} "
                "(KiB/MiB/GiB = 1024/1024^2/1024^3 bytes, one rank)")
    return (f"{r.model}  input {shape_str(r.input_shape)}  training step, optimizer {r.optimizer}{amp} "
            "(KiB/MiB/GiB = 1024/1024^2/1024^3 bytes, whole batch)")


CSV_KEYS = ("model", "optimizer", "amp", "params_bytes", "amp_weight_copies_bytes", "gradients_bytes",
            "optimizer_state_bytes", "saved_activations_bytes", "activation_peak_bytes", "optimizer_step_bytes",
            "training_peak_bytes", "measured_training_peak_bytes", "max_batch", "recompute_macs")


RANK_CSV_KEYS = ("model", "world_size", "global_batch", "shard", "offload", "optimizer", "amp", "params_bytes",
                 "amp_weight_copies_bytes", "gradients_bytes", "optimizer_state_bytes", "comm_buffers_bytes",
                 "gathered_params_bytes", "unit_gradients_bytes", "saved_activations_bytes", "activation_peak_bytes",
                 "optimizer_step_bytes", "training_peak_bytes", "host_bytes", "measured_training_peak_bytes",
                 "max_batch", "recompute_macs")


def _rows(r: Any) -> list[tuple[str, str, str]]:
    return _rank_lines(r) if isinstance(r, PerRankBill) else _lines(r)


def render(results: list[Any], fmt: str) -> str:
    """``archlab memory --training``'s output in ``fmt`` (``TrainingMemoryResult``s, or ``PerRankBill``s)."""
    def table() -> str:
        return "\n".join(_title(r) + "\n" + text_table(None, _rows(r), "lrl", max_width=200) for r in results)

    def md() -> str:
        return "\n".join(f"### {_title(r)}\n\n" + md_table(("quantity", "bytes", "what"), _rows(r), "lrl")
                         for r in results)

    def js() -> str:
        data = [r.to_dict() for r in results]
        return to_json(data[0] if len(data) == 1 else data)

    def csv() -> str:
        keys = RANK_CSV_KEYS if isinstance(results[0], PerRankBill) else CSV_KEYS
        return csv_table(keys, [[r.to_dict().get(k) for k in keys] for r in results])

    return formats.render(fmt, table=table, json=js, csv=csv, md=md)


def training_section(bills: list[PerRankBill], chosen: str | None) -> tuple[Any, tuple[str, ...],
                                                                          list[tuple[str, ...]], str]:
    """The report page's training-memory section: (its figure's spec, the table's headers, its rows, the caption)
    of one rank's bills under every scheme, ``chosen`` the scheme marked."""
    baselines = {r.model: r.training_peak_bytes for r in bills if r.shard == "none"}
    headers = ("per rank", *columns(bills, chosen))
    caption = (f"One rank's training-step memory under each scheme, {chosen} chosen; each bar stacks the parts "
               "that add up to its peak (gradients are inside activations + gradients): "
               + schemes_caption(bills).strip())
    return rank_bills_figure(bills, chosen), headers, scheme_rows(bills, baselines), caption


# One rank's bill, component by component: the parts that add up to its training peak, in the order they
# are stacked (the last: what the optimizer step needs past the rest, when the step is the larger branch)
RANK_STACK = (("parameters", "params_bytes"), ("amp weight copies", "amp_weight_copies_bytes"),
              ("optimizer state", "optimizer_state_bytes"), ("communication buffers", "comm_buffers_bytes"),
              ("all-gathered parameters", "gathered_params_bytes"), ("unit gradients", "unit_gradients_bytes"),
              ("activations + gradients at the peak", "activation_peak_bytes"))
STEP_EXCESS = "optimizer step, past the rest"


def rank_stack(r: PerRankBill) -> list[tuple[str, int]]:
    """The parts of one rank's peak as (component, bytes), from the bill's fields; they add up to
    ``training_peak_bytes`` (the last part: the optimizer step's excess over the other branch, often 0)."""
    parts = [(label, getattr(r, key)) for label, key in RANK_STACK]
    return parts + [(STEP_EXCESS, r.training_peak_bytes - sum(v for _, v in parts))]


def _column(r: PerRankBill, several_models: bool, several_schemes: bool) -> str:
    if several_models and several_schemes:
        return f"{r.model} {r.shard}"
    return r.model if several_models else r.shard


def columns(bills: list[PerRankBill], chosen: str | None = None) -> list[str]:
    models = len({r.model for r in bills}) > 1
    schemes = len({r.shard for r in bills}) > 1 or not models
    return [_column(r, models, schemes) + (" (chosen)" if r.shard == chosen else "") for r in bills]


def rank_bills_figure(bills: list[PerRankBill], chosen: str | None = None) -> Any:
    """One stacked bar per bill (per scheme, or per model), one rank's peak split into its parts
    (``rank_stack``), in the binary unit of the largest peak; ``chosen``: the scheme marked under its bar.
    Parts that are 0 in every bar are left out of the legend."""
    from archlab.report.figures import FigureSpec, Series
    from archlab.units import binary_unit

    factor, unit = binary_unit(max(r.training_peak_bytes for r in bills))
    stacks = [rank_stack(r) for r in bills]
    series = tuple(Series(label, tuple(s[i][1] / factor for s in stacks), kind="stack")
                   for i, (label, _) in enumerate(stacks[0]) if any(s[i][1] for s in stacks))
    first = bills[0]
    dtype = f"{first.dtype}" + (f", autocast {first.amp}" if first.amp else "")
    return FigureSpec(
        key="training", title=f"Training memory of one rank of {first.world_size}, global batch "
                              f"{first.global_batch} ({first.per_rank_batch} per rank), optimizer {first.optimizer}: "
                              f"each bar stacks the parts of the per-rank peak (▼ the peak)",
        xlabel="scheme" if len({r.model for r in bills}) == 1 else "model",
        ylabels=(f"{unit} per rank ({dtype})",), series=series,
        marks=tuple((i, r.training_peak_bytes / factor, human_bytes(r.training_peak_bytes))
                    for i, r in enumerate(bills)),
        xticklabels=tuple(columns(bills, chosen)), size=(9.0, 5.5),
        extra={"factor": factor})


def _saving(r: PerRankBill, none_peak: int | None) -> str:
    if none_peak is None or r.shard == "none":
        return "-"
    saved = none_peak - r.training_peak_bytes
    sign = "-" if saved < 0 else ""
    return f"{sign}{human_bytes(abs(saved))} ({100 * saved / none_peak:.1f}%)"


def scheme_rows(bills: list[PerRankBill], baselines: dict[str, int]) -> list[tuple[str, ...]]:
    """The side-by-side table of one rank's bills: a row per component, a column per bill (bytes on the
    rank's device); ``baselines``: each model's peak under ``none`` (DDP), for the saving row."""
    rows: list[tuple[str, ...]] = []
    keys = [("parameters", "params_bytes"), ("amp weight copies", "amp_weight_copies_bytes"),
            ("gradients (after the backward)", "gradients_bytes"), ("optimizer state", "optimizer_state_bytes"),
            ("communication buffers", "comm_buffers_bytes"), ("all-gathered parameters", "gathered_params_bytes"),
            ("unit gradients", "unit_gradients_bytes"), ("saved activations", "saved_activations_bytes"),
            ("activations + gradients at the peak", "activation_peak_bytes"), ("optimizer step", "optimizer_step_bytes")]
    for label, key in keys:
        if key == "amp_weight_copies_bytes" and not any(r.amp for r in bills):
            continue
        rows.append((label, *(human_bytes(getattr(r, key)) for r in bills)))
    rows.append(("training peak per rank", *(human_bytes(r.training_peak_bytes) for r in bills)))
    rows.append(("saving against none", *(_saving(r, baselines.get(r.model)) for r in bills)))
    return rows


def schemes_caption(bills: list[PerRankBill]) -> str:
    first = bills[0]
    amp = f", autocast {first.amp}" if first.amp else ""
    schemes = {r.shard for r in bills}
    scheme = f"{_SCHEME[first.shard]}, " if len(schemes) == 1 else ""
    return (f"{scheme}one rank of {first.world_size}, global batch {first.global_batch} "
            f"({first.per_rank_batch} per rank), optimizer {first.optimizer}{amp}; bytes on the rank's device at "
            f"{first.dtype} "
            "(KiB/MiB/GiB = 1024/1024^2/1024^3 bytes); the peak = parameters + optimizer state (+ DDP's buckets) + "
            "the larger of (activations + gradients + all-gathered parameters + unit gradients + communication "
            "buffers, at the op where their sum is largest: the rows give each at that op) and the optimizer step; "
            "saving against none: the peak under DDP replicas less this one\n")


SCHEME_CSV_KEYS = tuple(k for k in RANK_CSV_KEYS if k not in ("offload", "host_bytes", "measured_training_peak_bytes",
                                                              "max_batch")) + ("saving_against_none_bytes",)


def render_schemes(bills: list[PerRankBill], baselines: dict[str, int], fmt: str) -> str:
    """``archlab compare --training --world-size N --shard ...``: one rank's bills side by side, a column per
    scheme (or per model), a row per component (table, md, json, csv; html: ``archlab.report.compare``)."""
    headers = ("per rank", *columns(bills))

    def saving(r: PerRankBill) -> int | None:
        none = baselines.get(r.model)
        return None if none is None else none - r.training_peak_bytes

    def table() -> str:
        return text_table(headers, scheme_rows(bills, baselines), "l" + "r" * len(bills)) + schemes_caption(bills)

    def md() -> str:
        return (md_table(headers, scheme_rows(bills, baselines), "l" + "r" * len(bills)) + "\n"
                + schemes_caption(bills))

    def js() -> str:
        return to_json([{**r.to_dict(), "saving_against_none_bytes": saving(r)} for r in bills])

    def csv() -> str:
        return csv_table(SCHEME_CSV_KEYS, [[{**r.to_dict(), "saving_against_none_bytes": saving(r)}.get(k)
                                            for k in SCHEME_CSV_KEYS] for r in bills])

    return formats.render(fmt, table=table, json=js, csv=csv, md=md)
