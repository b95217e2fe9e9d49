"""``archlab latency``: measured forward time beside MACs (the library: ``archlab.latency``)."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from archlab.cli.options import (ALPHA, BATCH, FORMAT, FORWARD_KW, INPUT_SIZE, OUTPUT, RES, SET, device_option, emit,
                                 force_option, Format, parse_common, settle, stderr, TimeDType)


def latency_cmd(
    models: List[str] = typer.Argument(..., help="One or more model names or specs, e.g. mobilenet "
                                                 "mobilenet_v2 mobilenet_v2@alpha=1.4 (several: compared)."),
    device: str = device_option("cpu or cuda (cuda:N for another GPU)."),
    batch: Optional[int] = BATCH,
    threads: Optional[int] = typer.Option(None, "--threads", help="torch intra-op threads while timing "
                                                                  "(default: torch's current setting)."),
    dtype: TimeDType = typer.Option(TimeDType.fp32, "--dtype", help="Weights and input dtype."),
    channels_last: bool = typer.Option(False, "--channels-last", help="NHWC memory format for weights and input."),
    res: Optional[int] = RES,
    input_size: Optional[str] = INPUT_SIZE,
    forward_kw: Optional[List[str]] = FORWARD_KW,
    alpha: Optional[float] = ALPHA,
    sets: Optional[List[str]] = SET,
    min_time: float = typer.Option(1.0, "--min-time", help="Seconds of timed forwards per model, at least."),
    per_layer: bool = typer.Option(False, "--per-layer", help="Also each module's own time (its ops timed one by "
                                                              "one) beside its share of MACs."),
    per_op: bool = typer.Option(False, "--per-op", help="Also time each ATen op on real tensors, lined up with the "
                                                        "trace: time by kind and the slowest ops."),
    predict: bool = typer.Option(False, "--predict", help="Also the roofline prediction on the calibrated machine "
                                                          "(archlab calibrate; calibrates once if not cached) beside "
                                                          "the measured time, by kind."),
    force: bool = force_option("Run even if the model looks too big for free memory."),
    fmt: Format = FORMAT,
    output: Optional[str] = OUTPUT,
) -> None:
    """Measured latency (median, IQR), throughput and achieved GFLOP/s; several models: latency vs MACs."""
    from archlab.measure.latency import NOISY_IQR, check_specs, measure_all
    from archlab.measure.ranking import compare
    from archlab.report import latency as latency_report

    settle()
    size, options = parse_common(input_size, sets, forward_kw)
    kw = dict(device=device, batch=batch, threads=threads, dtype=dtype.value, channels_last=channels_last, res=res,
              input_size=size, alpha=alpha, options=options, min_time=min_time, per_layer=per_layer,
              per_op=per_op, predict=predict, force=force)
    check_specs(models, **kw)  # before the progress bar: an error stays one line
    if len(models) > 1 and sys.stderr is not None and sys.stderr.isatty():
        results = _with_progress(models, kw)
    else:
        results = measure_all(models, **kw)
    for r in results:
        if r.noisy:
            print(f"archlab: warning: {r.model}: noisy run (IQR {100 * r.iqr_fraction:.1f}% of the median, "
                  f"over {100 * NOISY_IQR:.0f}%); close other programs or raise --min-time", file=stderr())
    comparison = compare(results) if len(results) > 1 else None
    emit(latency_report.render(results, fmt.value, comparison), output)


def _with_progress(models: List[str], kw: dict):
    """A rich progress bar on stderr while measuring, gone once done (only on a terminal:
    elsewhere rich would leave an empty line in the captured stderr)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from archlab.measure.latency import measure_all

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("", total=1.0)

        def step(done: float, total: float, what: str) -> None:
            bar.update(task, total=total, completed=done, description=what)

        return measure_all(models, progress=step, **kw)
