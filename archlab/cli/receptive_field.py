"""``archlab rf``: receptive field, jump and first-unit centre per layer."""

from __future__ import annotations


from archlab.cli.options import (Alpha, Depth, Fmt, Format, ForwardKw, InputSize, ModelArg, Output, Res, Sets, emit,
                                 parse_common, settle)

def rf_cmd(
    model: ModelArg,
    res: Res = None,
    input_size: InputSize = None,
    forward_kw: ForwardKw = None,
    alpha: Alpha = None,
    sets: Sets = None,
    depth: Depth = 2,
    fmt: Fmt = Format.table,
    output: Output = None,
) -> None:
    """Receptive field, effective stride (jump) and first-unit centre per layer, on the data-flow graph."""
    from archlab.api.layers import receptive_field
    from archlab.report import receptive_field as rf_report

    settle()
    size, options = parse_common(input_size, sets, forward_kw)
    result = receptive_field(model, res=res, input_size=size, alpha=alpha, options=options, depth=depth)
    emit(rf_report.render_rf(result, fmt.value), output)
