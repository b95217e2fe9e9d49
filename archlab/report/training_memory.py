"""Renderers for ``archlab memory --training``: the training-step memory bill."""

from __future__ import annotations

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
    if r.checkpoint:
        names = (", ".join(r.checkpointed) if r.checkpointed else
                 "none, the step fits without" if r.checkpoint == ("auto",) else "none")
        how = "the plan to the budget" if r.checkpoint == ("auto",) else f"--checkpoint {','.join(r.checkpoint)}"
        rows += [
            ("checkpointed modules", str(len(r.checkpointed)), f"{how}: {names}"),
            ("recompute MACs", f"{r.recompute_macs:,}",
             f"{human(r.recompute_macs, 'MACs')}: their forward, run again in the backward (torch.utils.checkpoint)"),
            ("without checkpointing", human_bytes(r.unplanned_training_peak_bytes), "the training peak"),
        ]
        if r.plan_method:
            rows.append(("plan", "", r.plan_method))
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


def _title(r: TrainingMemoryResult) -> str:
    amp = f", autocast {r.amp}" if r.amp else ""
    return (f"{r.model}  input {shape_str(r.input_shape)}  training step, optimizer {r.optimizer}{amp} "
            "(KiB/MiB/GiB = 1024/1024^2/1024^3 bytes, whole batch)")


CSV_KEYS = ("model", "optimizer", "amp", "params_bytes", "amp_weight_copies_bytes", "gradients_bytes",
            "optimizer_state_bytes", "saved_activations_bytes", "activation_peak_bytes", "optimizer_step_bytes",
            "training_peak_bytes", "measured_training_peak_bytes", "max_batch", "recompute_macs")


def render(results: list[TrainingMemoryResult], fmt: str) -> str:
    """``archlab memory --training``'s output in ``fmt``."""
    def table() -> str:
        return "\n".join(_title(r) + "\n" + text_table(None, _lines(r), "lrl", max_width=200) for r in results)

    def md() -> str:
        return "\n".join(f"### {_title(r)}\n\n" + md_table(("quantity", "bytes", "what"), _lines(r), "lrl")
                         for r in results)

    def js() -> str:
        data = [r.to_dict() for r in results]
        return to_json(data[0] if len(data) == 1 else data)

    def csv() -> str:
        return csv_table(CSV_KEYS, [[r.to_dict().get(k) for k in CSV_KEYS] for r in results])

    return formats.render(fmt, table=table, json=js, csv=csv, md=md)
