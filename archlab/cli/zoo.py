"""``archlab list``: the zoo, one row per registered model."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archlab.cli.options import Output, PageFmt, PageFormat, emit, settle
from archlab.errors import UserError

# archlab list also draws the zoo at a glance: an html page with the plots

def list_cmd(
    pattern: Annotated[Optional[str], typer.Argument(help="Glob over model names, e.g. 'resnet*', or a word they contain.")] = None,
    fmt: PageFmt = PageFormat.table,
    output: Output = None,
) -> None:
    """Every registered model: family, paper, default input, params and MACs."""
    from archlab.analysis.zoo import zoo_rows
    from archlab.report import zoo

    settle()
    rows = zoo_rows(pattern)
    if not rows:
        raise UserError(f"no model matches '{pattern}'; see 'archlab list'")
    emit(zoo.render(rows, fmt.value), output)
