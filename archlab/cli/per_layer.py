"""``archlab trace``: one row per layer (shapes, geometry, params, MACs, receptive field, activation size)."""

from __future__ import annotations



from archlab.cli.options import (Alpha, Batch, Depth, Fmt, Format, ForwardKw, InputSize, ModelArg, Output, Res, Sets,
                                 emit, parse_common, settle)

def trace_cmd(
    model: ModelArg,
    res: Res = None,
    input_size: InputSize = None,
    forward_kw: ForwardKw = None,
    batch: Batch = None,
    alpha: Alpha = None,
    sets: Sets = None,
    depth: Depth = 3,
    fmt: Fmt = Format.table,
    output: Output = None,
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
