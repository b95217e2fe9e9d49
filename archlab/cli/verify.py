"""``archlab verify``: every number of the course's tables, recomputed."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archlab.cli.options import Fmt, Format, Output, emit, settle


def verify_cmd(
    only: Annotated[Optional[str], typer.Option("--only", help="Check only the claims whose id matches this glob, "
                                       "e.g. 'mobilenet*'.")] = None,
    data: Annotated[Optional[str], typer.Option("--data", help="Claims file to check (default: the course's, "
                                       "archlab/data/course_claims.toml).")] = None,
    wide: Annotated[bool, typer.Option("--wide", help="The table with every column (section, tolerance) and "
                              "longer cells; by default it fits 120 columns.")] = False,
    fmt: Fmt = Format.table,
    output: Output = None,
) -> None:
    """Recompute every quantitative claim of the course's tables; exit 3 if any row FAILs.

    Status per row: ok (within the tolerance of the printed rounding), known-discrepancy (outside it, for a
    recorded cause), FAIL. --format md is the committed report reports/course-tables.md."""
    from archlab.report import verify as verify_report
    from archlab.verify import verify

    settle()
    result = verify(data=data, only=only)
    emit(verify_report.render(result, fmt.value, wide=wide), output)
    result.raise_if_failed()  # exit code 3, after the report is out
