"""``archlab compare``: a width/resolution variant against its baseline and its law, or several
models side by side."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from archlab.cli.options import (Batch, ForwardKw, InputSize, Latency, MinTime, Optimizer, Output, PageFmt,
                                 PageFormat, Res, Training, emit, min_time_of, parse_common, settle)
from archlab.errors import UserError


def compare_cmd(
    models: Annotated[List[str], typer.Argument(help="Model specs; one model with --alpha/--rho (or alpha=/res= in its "
                                       "spec) compares a variant with its baseline.")],
    alpha: Annotated[Optional[float], typer.Option("--alpha", help="Width multiplier of the variant (one model); or "
                                          "alpha= in the spec, not both.")] = None,
    rho: Annotated[Optional[str], typer.Option("--rho", help="Resolution in pixels (> 1) or multiplier in (0, 1] of the "
                                      "default resolution; or res= in the spec, not both.")] = None,
    res: Res = None,
    batch: Batch = None,
    input_size: InputSize = None,
    forward_kw: ForwardKw = None,
    latency: Latency = False,
    min_time: MinTime = None,
    training: Training = False,
    optimizer: Optimizer = "sgd",
    amp: Annotated[Optional[str], typer.Option("--amp", help="With --training: mixed precision, bf16 or fp16 "
                                                           "activations in the training peak.")] = None,
    world_size: Annotated[Optional[int], typer.Option("--world-size", help="With --training: one of N data-parallel "
                                              "ranks' bill, per scheme; --batch is then the global batch.")] = None,
    shard: Annotated[Optional[str], typer.Option("--shard", help="With --training: the schemes side by side, "
                                    "separated by commas (none, zero1, zero2, zero3, fsdp) or all (default with "
                                    "--world-size).")] = None,
    fmt: PageFmt = PageFormat.table,
    output: Output = None,
) -> None:
    """Compare a width/resolution variant with its baseline, or several models side by side.

    One model: the baseline is the model at alpha = 1 and its default resolution (the spec's other
    options kept); the variant takes alpha from alpha= in the spec or --alpha, and its resolution from
    res= in the spec or --rho."""
    from archlab.analysis import laws
    from archlab.report import laws as laws_report
    from archlab.spec import parse_spec

    settle()
    min_time = min_time_of(min_time, latency)
    scaling = alpha is not None or rho is not None
    per_rank = world_size is not None or shard is not None  # one rank's bills, a column per scheme (or model)
    if len(models) == 1 and not scaling and not per_rank:
        spec = parse_spec(models[0])
        scaling = "alpha" in spec.options or spec.res is not None
    if optimizer != "sgd" and not training:
        raise UserError("--optimizer applies to the training view: add --training")
    if amp is not None and not training:
        raise UserError("--amp applies to the training view: add --training")
    for flag, v in (("--world-size", world_size), ("--shard", shard)):
        if v is not None and not training:
            raise UserError(f"{flag} applies to the per-rank training bill: add --training")
    if training:
        from archlab.analysis.training_memory import check_step_options

        check_step_options(optimizer, amp)
        if scaling:
            raise UserError("--training compares several models side by side; the one-model comparison with "
                            "--alpha/--rho has no training view")
    if scaling and fmt.value == "html":
        raise UserError("--format html draws several models side by side; the one-model comparison prints "
                        "table, json, csv or md")
    given = [flag for flag, v in (("--res", res), ("--batch", batch), ("--input-size", input_size),
                                  ("--forward-kw", forward_kw)) if v is not None]
    if scaling and given:
        raise UserError(f"{given[0]} applies to several models side by side; the one-model comparison takes the "
                        "model's options in its spec (res= is the variant's resolution, as --rho)")
    if scaling:
        if len(models) != 1:
            raise UserError("--alpha/--rho compare one model with its baseline; name exactly one model")
        c = laws.compare_scaling(models[0], alpha, rho, course_lookup=laws.course_mobilenet_row)
        if latency:  # in the data: JSON and CSV carry it as fields, table and md as a line
            from archlab.api.compare import with_latency

            c = with_latency(c, min_time=min_time)
        emit(laws_report.render_scaling(c, fmt.value), output)
        return
    if per_rank:
        from archlab.api.compare import compare_schemes
        from archlab.report.compare import render_schemes

        if latency:
            raise UserError("--latency times forwards; the per-rank training bills (--world-size/--shard) are "
                            "predictions: give one or the other")
        size, _ = parse_common(input_size, None, forward_kw)
        bills, baselines = compare_schemes(models, "all" if shard is None else shard,
                                           world_size=1 if world_size is None else world_size, optimizer=optimizer,
                                           amp=amp, res=res, batch=batch, input_size=size)
        emit(render_schemes(bills, baselines, fmt.value), output)
        return
    if len(models) < 2:
        raise UserError("compare needs two or more models, or one model with --alpha or --rho (or alpha=/res= in "
                        "its spec), or one model's training bill per scheme (--training --world-size N --shard ...)")
    from archlab.api.compare import compare_models
    from archlab.report import compare as compare_report

    size, _ = parse_common(input_size, None, forward_kw)  # applied to every model; a spec's differing value: twice
    rows = compare_models(models, latency=latency, min_time=min_time, training=training, optimizer=optimizer,
                          amp=amp, res=res, batch=batch, input_size=size)
    emit(compare_report.render_compare(rows, fmt.value, latency=latency), output)
