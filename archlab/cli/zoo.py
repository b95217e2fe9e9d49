"""``archlab list``: the zoo, one row per registered model."""

from __future__ import annotations

from typing import List, Optional

import typer

from archlab.cli.options import OUTPUT, choices, emit, settle
from archlab.errors import UserError
from archlab.report.formats import FORMATS

# archlab list also draws the zoo at a glance: an html page with the plots
ZooFormat = choices("ZooFormat", (*FORMATS, "html"))

def list_cmd(
    pattern: Optional[str] = typer.Argument(None, help="Glob over model names, e.g. 'resnet*', or a word they contain."),
    fmt: ZooFormat = typer.Option(ZooFormat.table, "--format", "-f",
                                  help="Output format; html: the page with params vs MACs and published "
                                       "top-1 vs MACs plots."),
    output: Optional[str] = OUTPUT,
) -> None:
    """Every registered model: family, paper, default input, params and MACs."""
    from archlab.analysis.zoo import zoo_rows
    from archlab.report import zoo

    settle()
    rows = zoo_rows(pattern)
    if not rows:
        raise UserError(f"no model matches '{pattern}'; see 'archlab list'")
    emit(zoo.render(rows, fmt.value), output)
