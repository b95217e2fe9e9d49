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
    if r.shard in ("zero3", "fsdp"):
        largest = f" + the largest unit, '{r.largest_unit}' ({human_bytes(r.largest_unit_bytes)})" if r.largest_unit \
            else ""
        rows.append(("all-gathered parameters", human_bytes(r.gathered_params_bytes),
                     f"whole during the step: the root unit ({human_bytes(r.root_unit_bytes)}, not resharded after the "
                     f"forward){largest}"))
    if sharded:
        rows.append(("unit gradients", human_bytes(r.unit_gradients_bytes),
                     "the largest unit's gradients, whole until its reduce-scatter"))
    act = "2 bytes, " + r.amp if r.amp else r.dtype
    rows += [
        ("saved activations", human_bytes(r.saved_activations_bytes),
         f"alive when the backward starts, at this rank's batch of {r.per_rank_batch} (at {act})"),
        ("activations + gradients, peak", human_bytes(r.activation_peak_bytes),
         f"largest live total, with this rank's gradients ({'the root unit whole, the others shards' if sharded else 'all'}"
         f"); at {r.activation_peak_at}"),
        ("optimizer step", human_bytes(r.optimizer_step_bytes),
         "this rank's gradients, plus the step's temporaries" + (" (the root's reduce-scatter, if larger)"
                                                                 if sharded else "")),
    ]
    during = "the activation peak" + (" + all-gathered parameters + unit gradients + communication buffers"
                                      if sharded else "")
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
