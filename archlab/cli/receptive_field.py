"""``archlab rf``: receptive field, jump and first-unit centre per layer; with ``--effective``, the effective
receptive field (Luo et al. 2016) of each layer beside its exact one."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archlab.cli.options import (Alpha, Depth, Fmt, Force, Format, ForwardKw, InputSize, ModelArg, Output, Res, Sets,
                                 UserError, emit, parse_common, settle)

Effective = Annotated[bool, typer.Option(
    "--effective", help="Also run the model for real: the effective receptive field of each layer (Luo et al., NIPS "
    "2016), |d(centre unit, summed over channels)/d input| averaged over random inputs, beside the exact field: "
    "ERF95, a Gaussian fit's sigma, RepLKNet's area ratios.")]
Samples = Annotated[Optional[int], typer.Option(
    "--samples", help="With --effective: how many random inputs the gradient maps average (default 32; the header "
    "says whether ERF95 is the same from half of them).")]
Weights = Annotated[Optional[str], typer.Option(
    "--weights", help="With --effective: init (the model's own initialization, averaged over 4 seeded builds; the "
    "default), uniform (every conv/linear weight equal, biases zero), given (the weights the factory returns).")]
Layer = Annotated[Optional[str], typer.Option(
    "--layer", help="With --effective: only this module (its name as archlab rf lists it), at any depth.")]
ErfSeed = Annotated[Optional[int], typer.Option(
    "--seed", help="With --effective: the seed of the random inputs and of the (first) build's weights (default 0).")]
ErfDevice = Annotated[Optional[str], typer.Option(
    "--device", help="With --effective: cpu, cuda or cuda:N, where the forwards and backwards run (default cpu).")]

ErfPlot = Annotated[Optional[str], typer.Option(
    "--plot", help="With --effective: draw the heatmaps at each stage (the exact field's square on each) and ERF95 "
    "against depth to this .png or .svg file.")]


def _without_effective(**given) -> None:
    """--samples, --weights, --layer, --seed and --device say how the effective field is measured: refused
    without --effective (nothing they would change runs)."""
    for flag, value in given.items():
        if value is not None:
            raise UserError(f"--{flag} says how rf --effective measures the effective field: add --effective")


def rf_cmd(
    model: ModelArg,
    res: Res = None,
    input_size: InputSize = None,
    forward_kw: ForwardKw = None,
    alpha: Alpha = None,
    sets: Sets = None,
    depth: Depth = 2,
    effective: Effective = False,
    samples: Samples = None,
    weights: Weights = None,
    layer: Layer = None,
    seed: ErfSeed = None,
    device: ErfDevice = None,
    force: Force = False,
    plot: ErfPlot = None,
    fmt: Fmt = Format.table,
    output: Output = None,
) -> None:
    """Receptive field, effective stride (jump) and first-unit centre per layer, on the data-flow graph;
    --effective: the effective receptive field beside it, measured by gradients on random inputs."""
    settle()
    if not effective:
        _without_effective(samples=samples, weights=weights, layer=layer, seed=seed, device=device,
                           force=force or None)
        if plot is not None:
            raise UserError("--plot draws the effective receptive field: add --effective")
    if plot is not None:  # before anything runs: a bad path fails at once
        from archlab.report.erf_figures import check_plot_path

        check_plot_path(plot)
    size, options = parse_common(input_size, sets, forward_kw)
    if effective:
        from archlab.api.layers import effective_receptive_field
        from archlab.cli.progress import progress
        from archlab.report import erf as erf_report

        with progress("effective receptive field") as step:
            result = effective_receptive_field(model, res=res, input_size=size, alpha=alpha, options=options,
                                               depth=depth, layer=layer, samples=samples, weights=weights or "init",
                                               seed=0 if seed is None else seed, device=device, force=force,
                                               progress=step)
        if plot is not None:
            from archlab.cli.options import stderr
            from archlab.report.erf_figures import image
            from archlab.report.files import write_atomic

            write_atomic(plot, image(result, plot))
            print(f"archlab: wrote {plot}", file=stderr())  # on stderr: stdout carries the table
        emit(erf_report.render_erf(result, fmt.value), output)
        return
    from archlab.api.layers import receptive_field
    from archlab.report import receptive_field as rf_report

    result = receptive_field(model, res=res, input_size=size, alpha=alpha, options=options, depth=depth)
    emit(rf_report.render_rf(result, fmt.value), output)
