"""``archlab compare``: a width/resolution variant against its baseline and its law, or several
models side by side."""

from __future__ import annotations

import math
from typing import List, Optional

import typer

from archlab.cli.options import OUTPUT, choices, emit, settle
from archlab.report.formats import FORMATS

CompareFormat = choices("CompareFormat", (*FORMATS, "html"))
from archlab.errors import UserError


def compare_cmd(
    models: List[str] = typer.Argument(..., help="Model specs; one model with --alpha/--rho (or alpha=/res= in its "
                                       "spec) compares a variant with its baseline."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Width multiplier of the variant (one model); or "
                                          "alpha= in the spec, not both."),
    rho: Optional[str] = typer.Option(None, "--rho", help="Resolution in pixels (> 1) or multiplier in (0, 1] of the "
                                      "default resolution; or res= in the spec, not both."),
    latency: bool = typer.Option(False, "--latency", help="Also measure latency (CPU, batch 1)."),
    min_time: Optional[float] = typer.Option(None, "--min-time", help="With --latency: seconds of timed forwards per "
                                             "model (default 1)."),
    training: bool = typer.Option(False, "--training", help="Several models: also one training step's MACs "
                                  "(forward + backward) and its predicted memory peak, batch 1."),
    optimizer: str = typer.Option("sgd", "--optimizer", help="With --training: the optimizer of the memory peak "
                                  "(sgd, momentum, adam, adamw)."),
    fmt: CompareFormat = typer.Option(CompareFormat.table, "--format", "-f",
                                      help="Output format; html (several models): a page with the models side "
                                           "by side as bars."),
    output: Optional[str] = OUTPUT,
) -> None:
    """Compare a width/resolution variant with its baseline, or several models side by side.

    One model: the baseline is the model at alpha = 1 and its default resolution (the spec's other
    options kept); the variant takes alpha from alpha= in the spec or --alpha, and its resolution from
    res= in the spec or --rho."""
    from archlab.analysis import laws
    from archlab.report import laws as laws_report
    from archlab.spec import parse_spec

    settle()
    if min_time is not None:
        if not (min_time > 0 and math.isfinite(min_time)):
            raise UserError(f"--min-time must be a positive number of seconds, got {min_time}")
        if not latency:
            raise UserError("--min-time sets how long --latency times each model; add --latency or drop --min-time")
    min_time = 1.0 if min_time is None else min_time
    scaling = alpha is not None or rho is not None
    if len(models) == 1 and not scaling:
        spec = parse_spec(models[0])
        scaling = "alpha" in spec.options or spec.res is not None
    if optimizer != "sgd" and not training:
        raise UserError("--optimizer applies to the training view: add --training")
    if training:
        from archlab.analysis.training_memory import OPTIMIZERS

        if optimizer not in OPTIMIZERS:
            raise UserError(f"unknown --optimizer '{optimizer}' (choose {', '.join(OPTIMIZERS)})")
        if scaling:
            raise UserError("--training compares several models side by side; the one-model comparison with "
                            "--alpha/--rho has no training view")
    if scaling and fmt.value == "html":
        raise UserError("--format html draws several models side by side; the one-model comparison prints "
                        "table, json, csv or md")
    if scaling:
        if len(models) != 1:
            raise UserError("--alpha/--rho compare one model with its baseline; name exactly one model")
        c = laws.compare_scaling(models[0], alpha, rho, course_lookup=laws.course_mobilenet_row)
        if latency:  # in the data: JSON and CSV carry it as fields, table and md as a line
            from archlab.api.compare import with_latency

            c = with_latency(c, min_time=min_time)
        emit(laws_report.render_scaling(c, fmt.value), output)
        return
    if len(models) < 2:
        raise UserError("compare needs two or more models, or one model with --alpha or --rho (or alpha=/res= in "
                        "its spec)")
    from archlab.api.compare import compare_models
    from archlab.report import compare as compare_report

    rows = compare_models(models, latency=latency, min_time=min_time, training=training, optimizer=optimizer)
    emit(compare_report.render_compare(rows, fmt.value, latency=latency), output)
