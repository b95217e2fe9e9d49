"""``archlab latency``: measured forward time beside MACs (the library: ``archlab.latency``)."""

from __future__ import annotations

from typing import Annotated, List

import typer

from archlab.cli.options import (Alpha, Batch, Device, Fmt, Force, Format, ForwardKw, InputSize, MinTime, Output, Res,
                                 Seed, Sets, Threads, TimeDType, TimedDType, emit, min_time_of, parse_common, seed_of,
                                 settle, stderr, warn_if_busy)


def latency_cmd(
    models: Annotated[List[str], typer.Argument(help="One or more model names or specs, e.g. mobilenet "
                                                 "mobilenet_v2 mobilenet_v2@alpha=1.4 (several: compared).")],
    device: Device = "cpu",
    batch: Batch = None,
    threads: Threads = None,
    dtype: TimedDType = TimeDType.fp32,
    channels_last: Annotated[bool, typer.Option("--channels-last", help="NHWC memory format for weights and input.")] = False,
    res: Res = None,
    input_size: InputSize = None,
    forward_kw: ForwardKw = None,
    alpha: Alpha = None,
    sets: Sets = None,
    min_time: MinTime = None,
    per_layer: Annotated[bool, typer.Option("--per-layer", help="Also each module's own time (its ops timed one by "
                                                              "one) beside its share of MACs.")] = False,
    per_op: Annotated[bool, typer.Option("--per-op", help="Also time each ATen op on real tensors, lined up with the "
                                                        "trace: time by kind and the slowest ops.")] = False,
    predict: Annotated[bool, typer.Option("--predict", help="Also the roofline prediction on the calibrated machine "
                                                          "(archlab calibrate; calibrates once if not cached) beside "
                                                          "the measured time, by kind.")] = False,
    engine: Annotated[str, typer.Option("--engine", help="Where the MACs come from: archlab (meta trace, default) "
                                                      "or real (one real forward on the CPU: for forwards "
                                                      "that read values).")] = "archlab",
    seed: Seed = None,
    force: Force = False,
    fmt: Fmt = Format.table,
    output: Output = None,
) -> None:
    """Measured latency (median, IQR), throughput and achieved GFLOP/s; several models: latency vs MACs."""
    from archlab.measure.latency import NOISY_IQR, measure_all
    from archlab.measure.ranking import compare
    from archlab.report import latency as latency_report

    settle()
    size, options = parse_common(input_size, sets, forward_kw)
    kw = dict(device=device, batch=batch, threads=threads, dtype=dtype.value, channels_last=channels_last, res=res,
              input_size=size, alpha=alpha, options=options, min_time=min_time_of(min_time), per_layer=per_layer,
              per_op=per_op, predict=predict, force=force, engine=engine, seed=seed_of(seed, engine))
    from contextlib import nullcontext

    from archlab.cli.progress import progress

    with progress("timing") if len(models) > 1 or per_op or per_layer or predict else nullcontext() as step:
        results = measure_all(models, progress=step, **kw)
    for r in results:
        if r.noisy:
            print(f"archlab: warning: {r.model}: noisy run (IQR {100 * r.iqr_fraction:.1f}% of the median, "
                  f"over {100 * NOISY_IQR:.0f}%); close other programs or raise --min-time", file=stderr())
    from archlab.measure.predict import prediction_warning

    predicted = [r.prediction for r in results if r.prediction is not None]
    warn_if_busy(predicted[0].machine if predicted else None)
    for r in results:
        warning = prediction_warning(r.model, r.predicted_over_measured) if r.prediction is not None else None
        if warning:
            print(warning, file=stderr())
    comparison = compare(results) if len(results) > 1 else None
    emit(latency_report.render(results, fmt.value, comparison), output)
