"""``archlab report``: one model's page (summary, per-layer table, figures), self-contained."""

from __future__ import annotations


from typing import Annotated, Optional

import typer

from archlab.cli.options import (Alpha, Batch, ForwardKw, InputSize, Latency, MinTime, ModelArg, Optimizer, Res, Sets,
                                 Training, anchor_output, min_time_of, output_path, parse_common, settle)
from archlab.errors import UserError

# the page's own --depth and -o: a report is per layer (no depth 0) and is always a file
ReportDepth = Annotated[int, typer.Option(
    "--depth", help="Depth of the per-layer table and figures: 1 = the model's children, 2 = the blocks inside them "
    "(a ResNet's bottlenecks); at least 1.")]
ReportOutput = Annotated[Optional[str], typer.Option(
    "-o", "--output", callback=anchor_output, help="The page's file: FILE.html, or FILE.md for markdown "
    "(default: reports/MODEL.html).")]
Effective = Annotated[bool, typer.Option(
    "--effective", help="Also measure the effective receptive field (real forwards and backwards on random inputs, "
    "as archlab rf --effective): heatmaps at each stage with the exact field drawn on them, ERF95 against depth.")]
EffectiveSamples = Annotated[Optional[int], typer.Option(
    "--samples", help="With --effective: the random inputs the gradient maps are averaged over (default as rf "
    "--effective).")]


def report_cmd(
    model: ModelArg,
    res: Res = None,
    input_size: InputSize = None,
    forward_kw: ForwardKw = None,
    batch: Batch = None,
    alpha: Alpha = None,
    sets: Sets = None,
    depth: ReportDepth = 2,
    latency: Latency = False,
    min_time: MinTime = None,
    effective: Effective = False,
    samples: EffectiveSamples = None,
    training: Training = False,
    world_size: Annotated[Optional[int], typer.Option("--world-size", help="With --training: the section's bars "
                                              "are one of N data-parallel ranks; --batch is then the global batch "
                                              "(default 1).")] = None,
    shard: Annotated[Optional[str], typer.Option("--shard", help="With --training: the scheme marked as chosen "
                                    "among the five drawn side by side (none, zero1, zero2, zero3, fsdp; default "
                                    "none).")] = None,
    optimizer: Optimizer = "sgd",
    output: ReportOutput = None,
) -> None:
    """One self-contained page for a model: summary, figures (inline SVG), per-layer table.
    -o FILE.html (or FILE.md for markdown); without -o, reports/MODEL.html."""
    import os
    from contextlib import nullcontext

    from archlab.api.page import page_data
    from archlab.cli.progress import progress
    from archlab.report import page
    from archlab.report.files import check_report_path, write_atomic

    settle()
    if depth < 1:
        raise UserError("--depth must be 1 or more for a report (its figures are per layer)")
    size, options = parse_common(input_size, sets, forward_kw)
    kind = "md" if output is not None and output.lower().endswith((".md", ".markdown")) else "html"
    had_folder = output is not None or os.path.isdir("reports")
    try:
        path = output_path(output) if output is not None else None
        if path is not None:
            check_report_path("json", path)  # a folder that exists, not a directory: before the counting
        elif os.path.exists("reports") and not os.path.isdir("reports"):
            raise UserError("cannot write the report into reports/: 'reports' is a file, not a folder "
                            "(move it, or give -o PATH)")
        min_time = min_time_of(min_time, latency)
        with progress("effective receptive field (forwards and backwards)") if effective else nullcontext() as step:
            data = page_data(model, depth=depth, res=res, input_size=size, batch=batch, alpha=alpha, options=options,
                             latency=latency, min_time=min_time, effective=effective, samples=samples, progress=step,
                             training=training, world_size=world_size, shard=shard, optimizer=optimizer)
        if path is None:
            safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in data.model)
            try:
                os.makedirs("reports", exist_ok=True)
            except OSError as e:
                raise UserError(f"cannot create the folder reports/ for the report: {e.strerror} "
                                f"(give -o PATH)") from None
            path = os.path.join("reports", f"{safe}.html")
        if kind == "md":
            text = page.render_md(data.model, data.input_shape, data.count, data.rf, data.memory, data.timeline,
                                  data.latency, data.erf, data.training, data.shard)
        else:
            text = page.render_html(data.model, data.input_shape, data.count, data.rf, data.memory, data.timeline,
                                    data.diagram, data.latency, data.erf, data.training, data.shard)
        write_atomic(path, text)
    except BaseException:
        if not had_folder:
            try:
                os.rmdir("reports")  # only when empty
            except OSError:
                pass
        raise
    print(f"wrote {path}")
