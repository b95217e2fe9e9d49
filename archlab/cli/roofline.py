"""``archlab calibrate`` and ``archlab roofline``: the machine model, and a model's layers on it."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archlab.cli.options import (Alpha, Batch, Device, Fmt, Force, Format, ForwardKw, InputSize, Measure, ModelArg,
                                 Output, Res, Seed, Sets, Threads, TimeDType, TimedDType, emit, parse_common, seed_of,
                                 settle, stderr, warn_if_busy)


def calibrate_cmd(
    device: Device = "cpu",
    threads: Threads = None,
    dtype: TimedDType = TimeDType.fp32,
    show: Annotated[bool, typer.Option("--show", help="Print the cached calibration (measure only if none is cached).")] = False,
    fmt: Fmt = Format.table,
    output: Output = None,
) -> None:
    """Measure the machine (peak compute, bandwidth, per-op overhead, convolution and memory-bound rates by kind)
    in a few seconds and cache it for latency --predict and roofline."""
    from archlab.cli.progress import progress
    from archlab.measure.calibrate import machine
    from archlab.report import roofline as roofline_report

    settle()
    with progress("calibrating") as step:
        m = machine(device, threads, dtype.value, fresh=not show, progress=step)
    warn_if_busy(m)
    emit(roofline_report.render_machine(m, fmt.value), output)


def roofline_cmd(
    model: ModelArg,
    plot: Annotated[Optional[str], typer.Option("--plot", help="Draw the roofline to this .png or .svg file.")] = None,
    measure: Measure = False,
    device: Device = "cpu",
    threads: Threads = None,
    dtype: TimedDType = TimeDType.fp32,
    batch: Batch = None,
    res: Res = None,
    input_size: InputSize = None,
    forward_kw: ForwardKw = None,
    alpha: Alpha = None,
    sets: Sets = None,
    engine: Annotated[str, typer.Option("--engine", help="Where the layers come from: archlab (meta trace, "
                                                      "default) or real (one real forward on the CPU: for "
                                                      "forwards that read values).")] = "archlab",
    seed: Seed = None,
    force: Force = False,
    fmt: Fmt = Format.table,
    output: Output = None,
) -> None:
    """The calibrated machine's roofline and each layer of a model at its arithmetic intensity (FLOPs per byte)
    and predicted (and with --measure, achieved) GFLOP/s."""
    from archlab.errors import UserError
    from archlab.measure.roofline import roofline
    from archlab.report import roofline as roofline_report
    from archlab.report.files import write_atomic

    if plot is not None and not plot.lower().endswith((".png", ".svg")):
        raise UserError(f"--plot writes a .png or .svg file, not '{plot}'")
    if plot is not None:  # before anything is measured: a bad path fails at once
        import os

        folder = os.path.dirname(os.path.abspath(plot))
        if not os.path.isdir(folder):
            raise UserError(f"cannot write '{plot}': directory '{folder}' does not exist")
        if os.path.isdir(plot):
            raise UserError(f"cannot write '{plot}': it is a directory")
    settle()
    size, options = parse_common(input_size, sets, forward_kw)
    seed = seed_of(seed, engine)
    from archlab.cli.progress import progress

    with progress("calibrating (once per machine, threads and dtype)") as step:
        r = roofline(model, device=device, threads=threads, dtype=dtype.value, measure=measure, force=force,
                     input_size=size, res=res, batch=batch, alpha=alpha, options=options, progress=step, engine=engine,
                     seed=seed)
    warn_if_busy(r.machine)
    if r.measured_ms:  # --measure: the prediction beside the ops' measured sum
        from archlab.measure.predict import prediction_warning

        warning = prediction_warning(r.model, r.predicted_ms / r.measured_ms)
        if warning:
            print(warning, file=stderr())
    if plot is not None:
        write_atomic(plot, roofline_report.image(r, plot))
        # the same words as report's "wrote X"; on stderr, as stdout carries the table
        print(f"archlab: wrote {plot}", file=stderr())
    emit(roofline_report.render(r, fmt.value), output)
