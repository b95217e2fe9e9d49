"""``archlab count``: parameters, MACs, FLOPs and the other operations of a model, per layer."""

from __future__ import annotations

from typing import Annotated

import typer

from archlab.cli.options import (Alpha, Batch, Checkpoint, Depth, Device, Engine, Fmt, Force, Format, ForwardKw,
                                 Freeze, InputSize,
                                 ModelArg, Output, Res, Seed, Sets, Training, emit, parse_common, seed_of, settle)

def count(
    model: ModelArg,
    res: Res = None,
    input_size: InputSize = None,
    forward_kw: ForwardKw = None,
    batch: Batch = None,
    alpha: Alpha = None,
    sets: Sets = None,
    depth: Depth = 2,
    fmt: Fmt = Format.table,
    output: Output = None,
    engine: Annotated[Engine, typer.Option("--engine", help="archlab (meta trace, nothing runs), fvcore, or real (build and run on "
                                "--device, for builders and forwards that read values: counts for this input).")] = Engine.archlab,
    device: Device = "cpu",
    seed: Seed = None,
    force: Force = False,
    training: Training = False,
    freeze: Freeze = None,
    checkpoint: Checkpoint = None,
) -> None:
    """Parameters, MACs, FLOPs and the other operations of a model, per layer."""
    from archlab.api.count import count as count_api
    from archlab.measure.devices import check_device
    from archlab.report import count as count_report

    settle()
    check_device(device)
    seed = seed_of(seed, engine.value)
    size, options = parse_common(input_size, sets, forward_kw)
    from contextlib import nullcontext

    from archlab.cli.progress import progress

    # fvcore runs the model for real: up to a minute and more on a big input, said on a terminal
    with progress("counting") if engine.value == "fvcore" else nullcontext() as step:
        result = count_api(model, res=res, input_size=size, batch=batch, alpha=alpha, options=options,
                           depth=depth, engine=engine.value, device=device, force=force, progress=step,
                           training=training, freeze=tuple(freeze or ()), seed=seed,
                           checkpoint=checkpoint)
    emit(count_report.render(result, fmt.value), output)
