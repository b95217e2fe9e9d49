"""``archlab verify``: every number of the course's tables, recomputed."""

from __future__ import annotations

from typing import Optional

import typer

from archlab.cli.options import FORMAT, OUTPUT, Format, emit, settle


def verify_cmd(
    only: Optional[str] = typer.Option(None, "--only", help="Check only the claims whose id matches this glob, "
                                       "e.g. 'mobilenet*'."),
    data: Optional[str] = typer.Option(None, "--data", help="Claims file to check (default: the course's, "
                                       "archlab/data/course_claims.toml)."),
    wide: bool = typer.Option(False, "--wide", help="The table with every column (section, tolerance) and "
                              "longer cells; by default it fits 120 columns."),
    fmt: Format = FORMAT,
    output: Optional[str] = OUTPUT,
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
