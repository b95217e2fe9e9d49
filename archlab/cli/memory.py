"""``archlab memory``: parameter memory, inference peak, training activations and M(G)."""

from __future__ import annotations

from typing import List, Optional

import typer

from archlab.cli.options import (ALPHA, BATCH, FORMAT, INPUT_SIZE, OUTPUT, RES, SET, DType, Format, device_option, emit,
                                 force_option, parse_common, settle)
from archlab.errors import UserError

def memory_cmd(
    models: List[str] = typer.Argument(..., help="One or more model names or specs (several: side by side)."),
    res: Optional[int] = RES,
    input_size: Optional[str] = INPUT_SIZE,
    batch: Optional[int] = BATCH,
    alpha: Optional[float] = ALPHA,
    sets: Optional[List[str]] = SET,
    dtype: DType = typer.Option(DType.fp32, "--dtype", help="Parameter dtype."),
    act_dtype: DType = typer.Option(DType.fp32, "--act-dtype", help="Activation dtype."),
    fuse: Optional[List[str]] = typer.Option(
        None, "--fuse", help="Module type to treat as one op in M(G) (repeatable); default InvertedResidual."),
    no_fuse: bool = typer.Option(False, "--no-fuse", help="Fuse nothing."),
    workspace: str = typer.Option("none", "--workspace", help="|op| of M(G): none or im2col."),
    measure: bool = typer.Option(False, "--measure", help="Also run a real forward and measure its peak."),
    device: str = device_option("cpu or cuda, for --measure."),
    force: bool = force_option("Run --measure even if it looks too big for memory."),
    fmt: Format = FORMAT,
    output: Optional[str] = OUTPUT,
) -> None:
    """Parameter memory, inference peak, training activations and M(G) (the MobileNetV2 paper's model)."""
    from archlab.analysis.memory import memory
    from archlab.report import memory as memory_report

    settle()
    size, options = parse_common(input_size, sets)
    if no_fuse and fuse:
        raise UserError("give either --fuse or --no-fuse, not both")
    fuse_types = () if no_fuse else (tuple(fuse) if fuse else None)
    results = [memory(m, dtype=dtype.value, act_dtype=act_dtype.value, fuse=fuse_types, workspace=workspace,
                      measure=measure, device=device, force=force, res=res, input_size=size, batch=batch, alpha=alpha,
                      options=options) for m in models]
    emit(memory_report.render(results, fmt.value), output)
