"""``archlab.compare``: several models side by side, and one model's width/resolution variant
against its law, each joined with measured latency on request."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from archlab.api.model import Model
from archlab.errors import UserError


def compare_models(specs: list[str], latency: bool = False, training: bool = False, optimizer: str = "sgd",
                   amp: str | None = None, res: int | None = None, batch: int | None = None,
                   input_size: Any = None, forward_kw: Any = None, **latency_options: Any) -> list[Any]:
    """One row per spec (``CompareRow``): params, MACs, receptive field, memory (and latency), in the
    given order; with ``training``, also the training step's MACs (forward + backward) and its
    predicted memory peak under ``optimizer`` (and ``amp``), at each model's batch. ``res``, ``batch``,
    ``input_size``, ``forward_kw`` apply to every model (a spec giving another value: refused, twice)."""
    from archlab.analysis.compare import compare_row, with_training

    models = [Model(spec, input_size, res=res, batch=batch, forward_kw=forward_kw) for spec in specs]
    timings: list[float | None] = [None] * len(specs)
    noisy = [False] * len(specs)
    if latency:
        from archlab.measure.latency import measure_all

        # the models' timed blocks take turns, so the machine's load falls on all alike
        results = measure_all(specs, traced=[(m.built, m.trace) for m in models], input_size=input_size,
                              forward_kw=forward_kw, **latency_options)
        timings = [r.median_ms for r in results]
        noisy = [r.noisy for r in results]
    rows = []
    for model, lat, noise in zip(models, timings, noisy):
        row = compare_row(model.trace, model.label, lat, noise)
        if training:
            try:
                step = model.training()
            except UserError:  # e.g. batch norm over one value per channel at batch 1
                step = None
            row = with_training(row, step, optimizer, amp)
        rows.append(row)
    return rows


def latency_pair(baseline: str, variant: str, **options: Any) -> tuple[float, float]:
    """Median latency (ms) of two specs, measured taking turns."""
    from archlab.measure.latency import measure_all

    a, b = measure_all([baseline, variant], **options)
    return a.median_ms, b.median_ms


def with_latency(c: Any, min_time: float = 1.0) -> Any:
    """A ``ScalingComparison`` with the baseline's and the variant's latency measured (CPU, batch 1,
    median of timed forwards, the two taking turns) in its ``latency`` field."""
    base, var = latency_pair(c.baseline["model"], c.variant["model"], min_time=min_time)
    return replace(c, latency={"device": "cpu", "batch": 1, "statistic": "median", "baseline_ms": base,
                               "variant_ms": var, "ratio": var / base if base else None})


def compare_schemes(specs: list[str], shards: Any = "all", *, world_size: int = 1, optimizer: str = "sgd",
                    amp: str | None = None, res: int | None = None, batch: int | None = None, input_size: Any = None,
                    forward_kw: Any = None) -> tuple[list[Any], dict[str, int]]:
    """One rank's training bill (``PerRankBill``) of each model under each scheme of ``shards`` ("all", names
    separated by commas, or a list), at ``world_size`` ranks and the global ``batch``: model by model, scheme by
    scheme (each equal to ``training_memory(model, world_size=, shard=)``); and each model's peak under ``none``
    (DDP replicas), which the savings are taken against."""
    from archlab.api.memory import shard_names, training_bills

    names = shard_names(shards)
    bills: list[Any] = []
    baselines: dict[str, int] = {}
    for spec in specs:
        asked = names if "none" in names else ("none", *names)
        mine = training_bills(spec, asked, world_size=world_size, optimizer=optimizer, amp=amp, res=res, batch=batch,
                              input_size=input_size, forward_kw=forward_kw)
        baselines[mine[0].model] = mine[asked.index("none")].training_peak_bytes
        bills += [b for b in mine if b.shard in names]
    return bills, baselines
