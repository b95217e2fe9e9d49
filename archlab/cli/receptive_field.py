"""``archlab rf``: receptive field, jump and first-unit centre per layer."""

from __future__ import annotations

from typing import List, Optional

import typer

from archlab.cli.options import (ALPHA, DEPTH, FORMAT, FORWARD_KW, INPUT_SIZE, OUTPUT, RES, SET, emit, Format,
                                 parse_common, settle)

def rf_cmd(
    model: str = typer.Argument(..., help="Model name or spec."),
    res: Optional[int] = RES,
    input_size: Optional[str] = INPUT_SIZE,
    forward_kw: Optional[List[str]] = FORWARD_KW,
    alpha: Optional[float] = ALPHA,
    sets: Optional[List[str]] = SET,
    depth: int = DEPTH,
    fmt: Format = FORMAT,
    output: Optional[str] = OUTPUT,
) -> None:
    """Receptive field, effective stride (jump) and first-unit centre per layer, on the data-flow graph."""
    from archlab.api.layers import receptive_field
    from archlab.report import receptive_field as rf_report

    settle()
    size, options = parse_common(input_size, sets, forward_kw)
    result = receptive_field(model, res=res, input_size=size, alpha=alpha, options=options, depth=depth)
    emit(rf_report.render_rf(result, fmt.value), output)
