"""``archlab trace``: one row per layer (shapes, geometry, params, MACs, receptive field, activation size)."""

from __future__ import annotations

from typing import List, Optional

import typer

from archlab.cli.options import (ALPHA, BATCH, FORMAT, FORWARD_KW, INPUT_SIZE, OUTPUT, RES, SET, emit, Format,
                                 parse_common, settle)

def trace_cmd(
    model: str = typer.Argument(..., help="Model name or spec."),
    res: Optional[int] = RES,
    input_size: Optional[str] = INPUT_SIZE,
    forward_kw: Optional[List[str]] = FORWARD_KW,
    batch: Optional[int] = BATCH,
    alpha: Optional[float] = ALPHA,
    sets: Optional[List[str]] = SET,
    depth: int = typer.Option(3, "--depth", help="Depth of the per-layer table: 1 = the model's children. The "
                              "default, 3, is one deeper than count's and rf's (2, the blocks): kernels, strides and "
                              "padding belong to the layers inside the blocks (a ResNet's layer1.0.conv1)."),
    fmt: Format = FORMAT,
    output: Optional[str] = OUTPUT,
) -> None:
    """Per layer: input/output shapes, kernel/stride/padding/dilation/groups, params, MACs, receptive field,
    output activation size."""
    from archlab.api.layers import trace_layers
    from archlab.report import per_layer as per_layer_report

    settle()
    size, options = parse_common(input_size, sets, forward_kw)
    result = trace_layers(model, res=res, input_size=size, batch=batch, alpha=alpha, options=options,
                                depth=depth)
    emit(per_layer_report.render_trace(result, fmt.value), output)
