"""``archlab diagram``: the architecture as a block diagram (Mermaid, DOT, or SVG via Graphviz)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archlab.cli.options import Alpha, ForwardKw, InputSize, ModelArg, Output, Res, Sets, emit, parse_common, settle


def diagram_cmd(
    model: ModelArg,
    depth: Annotated[int, typer.Option("--depth", help="Depth of the boxes: 1 = the model's children (or the "
                              "block's), 2 = the modules inside them, ...")] = 1,
    block: Annotated[Optional[str], typer.Option("--block", help="Draw only this module (e.g. layer1.0, "
                                        "inception3a), its children as boxes.")] = None,
    expand: Annotated[bool, typer.Option("--expand", help="Draw repeated blocks one by one (by default a run "
                               "of blocks of the same structure is one box, 'Bottleneck × 6').")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="mermaid (renders on code-hosting sites and in "
                            "notebooks), dot (Graphviz), svg (needs Graphviz's dot), or html (an interactive "
                            "page: boxes expand down to single ops and collapse back).")] = "mermaid",
    color: Annotated[Optional[str], typer.Option("--color", help="html: colour boxes by their share of macs, "
                              "params, traffic, time or bound (time and bound: from 'archlab calibrate').")] = None,
    res: Res = None,
    input_size: InputSize = None,
    forward_kw: ForwardKw = None,
    alpha: Alpha = None,
    sets: Sets = None,
    output: Output = None,
) -> None:
    """The architecture as boxes (type, output shape, params, MACs) and the data flow between them."""
    from archlab.api.layers import diagram
    from archlab.report import diagram as diagram_report
    from archlab.errors import UserError

    if fmt not in diagram_report.FORMATS:
        raise UserError(f"unknown --format '{fmt}' (choose {', '.join(diagram_report.FORMATS)})")
    if fmt == "svg" and not diagram_report.dot_available():
        raise UserError(diagram_report.DOT_MISSING)
    if color is not None and fmt != "html":
        raise UserError(f"--color colours the interactive diagram: add --format html (got --format {fmt})")
    if color is not None and color not in diagram_report.COLORS:
        raise UserError(f"unknown --color '{color}' (choose {', '.join(diagram_report.COLORS)})")
    if fmt == "html" and block is not None:
        raise UserError("--format html draws the whole model (its boxes open down to any block): leave out --block")
    settle()
    size, options = parse_common(input_size, sets, forward_kw)
    if fmt == "html":
        from archlab.api.layers import diagram_html

        emit(diagram_html(model, depth=depth, color=color or "macs", res=res, input_size=size, alpha=alpha,
                          options=options), output)
        return
    try:
        d = diagram(model, depth=depth, block=block, expand=expand, res=res, input_size=size, alpha=alpha,
                    options=options)
    except UserError as e:  # a failing forward: the diagram up to the failing op, then the one-line error
        partial = getattr(e, "diagram", None)
        if partial is None:
            raise
        emit(diagram_report.render(partial, fmt), output)
        where = f"in {output}" if output and output != "-" else "on stdout"
        raise UserError(f"{e} (the diagram up to the failing op, marked FAILED, is {where})") from None
    emit(diagram_report.render(d, fmt), output)
