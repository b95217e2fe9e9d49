"""``archlab count``: parameters, MACs, FLOPs and the other operations of a model, per layer."""

from __future__ import annotations

from typing import List, Optional

import typer

from archlab.cli.options import (ALPHA, BATCH, DEPTH, FORMAT, FORWARD_KW, INPUT_SIZE, OUTPUT, RES, SET, device_option,
                                 emit, Engine, force_option, Format, parse_common, settle)

def count(
    model: str = typer.Argument(..., help="Model name or spec, e.g. resnet50 or mobilenet@alpha=0.5,res=160."),
    res: Optional[int] = RES,
    input_size: Optional[str] = INPUT_SIZE,
    forward_kw: Optional[List[str]] = FORWARD_KW,
    batch: Optional[int] = BATCH,
    alpha: Optional[float] = ALPHA,
    sets: Optional[List[str]] = SET,
    depth: int = DEPTH,
    fmt: Format = FORMAT,
    output: Optional[str] = OUTPUT,
    engine: Engine = typer.Option(Engine.archlab, "--engine", help="archlab (meta trace, nothing runs), fvcore, or real (build and run on "
                                "--device, for builders and forwards that read values: counts for this input)."),
    device: str = device_option("cpu, cuda or cuda:N (where --engine fvcore or real runs the model)."),
    force: bool = force_option("Run --engine fvcore or real even if it looks too big for memory."),
    training: bool = typer.Option(False, "--training", help="Count one training step: the forward and autograd's "
                                  "backward (input- and weight-gradient MACs), per layer."),
    freeze: Optional[List[str]] = typer.Option(None, "--freeze", help="With --training: module-name glob whose "
                                               "parameters get no gradient (repeatable), e.g. 'layer*'."),
) -> None:
    """Parameters, MACs, FLOPs and the other operations of a model, per layer."""
    from archlab.api.count import count as count_api
    from archlab.measure.devices import check_device
    from archlab.report import count as count_report

    settle()
    check_device(device)
    size, options = parse_common(input_size, sets, forward_kw)
    from contextlib import nullcontext

    from archlab.cli.progress import progress

    # fvcore runs the model for real: up to a minute and more on a big input, said on a terminal
    with progress("counting") if engine.value == "fvcore" else nullcontext() as step:
        result = count_api(model, res=res, input_size=size, batch=batch, alpha=alpha, options=options,
                           depth=depth, engine=engine.value, device=device, force=force, progress=step,
                           training=training, freeze=tuple(freeze or ()))
    emit(count_report.render(result, fmt.value), output)
