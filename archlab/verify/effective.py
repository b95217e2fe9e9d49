"""Luo et al.'s claims on the effective receptive field (NIPS 2016, "Understanding the Effective Receptive
Field in Deep Convolutional Neural Networks"), measured on small networks built here.

Each experiment is a stack of 3x3 convolutions (stride 1, 'same' zero padding, no bias) on one channel, run
for real in float64 on the CPU: the gradient maps of ``archlab.measure.erf.gradient_maps`` (|d centre unit /
d input|) averaged over seeded builds and random inputs, read by ``archlab.analysis.erf.erf_metrics``. The
theoretical field of each layer is archlab's exact one (``archlab rf``'s analysis of the stack's meta trace),
never a formula typed here. The input is as large as the deepest layer's field, so that no gradient is lost
to the padding.

* ``uniform``: every weight 1/9 (``set_uniform``: 1/fan_in), no non-linearity: the gradient map is the
  n-fold convolution of a 3x3 box, one build, one input (it does not depend on the input).
* ``init``: PyTorch's own initialization of each convolution (uniform in +-1/3 for one channel), ``BUILDS``
  seeded builds (seed 0, 1, ...), one standard-normal input each; with ``relu`` a ReLU after every
  convolution (then the gradient depends on the input: ``SAMPLES_RELU`` inputs each).

The products of n random weights are heavy-tailed, so the 'init' maps need many builds: 64 keep the fitted
exponent within +-0.02 of the one from 128 (seeds 0.. and 1000.. tried). The convolutions run on one thread
(one-channel maps: more threads only add overhead, a lot of it on a busy machine).

Results are cached on the verify run's ``Context``: each experiment runs once per run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from archlab.errors import UserError
from archlab.verify.quantities import Context, quantity

DEPTHS = tuple(sorted({round(4 * 2 ** (k / 4)) for k in range(17)}))  # 4 .. 64, four per octave ('uniform')
DEPTHS_INIT = (4, 8, 16, 32, 64)  # one per octave ('init': each depth averages BUILDS random builds)
BUILDS = 64  # seeded builds averaged under 'init' weights (one channel: each build is one random kernel chain)
SAMPLES_RELU = 4  # random inputs per build with ReLU (without, the gradient does not depend on the input: one)
BASELINE = 15  # layers of Luo et al.'s Figure 3 baseline
CHANGED = (4, 8, 12)  # the three of its 15 layers that sub-sample or dilate (1-based)
DILATIONS = (2, 4, 8)
_WEIGHTS = ("uniform", "init")
_ACTIVATIONS = ("none", "relu")
_CHANGES = ("relu", "stride2", "avgpool", "dilation")


@dataclass(frozen=True)
class Measured:
    """One experiment: per tapped layer (its depth, 1-based), the ERF metrics and the exact field."""

    depths: tuple[int, ...]
    metrics: dict[int, Any]  # depth -> ERFMetrics
    rf: dict[int, int]  # depth -> the centre unit's theoretical field (its larger side), input pixels


def _layers(n: int, relu: bool, change: str | None) -> tuple[list, list[int]]:
    """The stack's modules and, per convolution (1-based depth), the index of the module whose output is tapped."""
    from torch import nn

    modules, taps = [], []
    for i in range(1, n + 1):
        kw: dict[str, Any] = {"padding": 1}
        pool = False
        if i in CHANGED and change == "stride2":
            kw["stride"] = 2
        elif i in CHANGED and change == "dilation":
            d = DILATIONS[CHANGED.index(i)]
            kw = {"padding": d, "dilation": d}
        elif i in CHANGED and change == "avgpool":
            pool = True
        modules.append(nn.Conv2d(1, 1, 3, bias=False, **kw))
        if relu:
            modules.append(nn.ReLU())
        if pool:
            modules.append(nn.AvgPool2d(2, 2))
        taps.append(len(modules) - 1)
    return modules, taps


def _input_side(n: int, change: str | None) -> int:
    """The smallest odd input side that holds the field of the deepest layer's centre unit (traced)."""
    import torch
    from torch import nn

    from archlab.analysis.receptive_field import receptive_fields
    from archlab.trace.run import trace

    modules, taps = _layers(n, False, change)
    side = 2 * n + 1
    for _ in range(8):
        model = nn.Sequential(*modules)
        t = trace(model, torch.empty((1, 1, side, side), device="meta"))
        f = receptive_fields(t).of(_output_value(t, str(taps[-1])))
        if f is not None and max(f.rf) <= side:
            return side
        side = 2 * max(f.rf if f is not None else (side,)) + 1
    raise UserError(f"the field of a stack of {n} layers ({change or 'plain'}) was not followed")


def _output_value(t: Any, name: str) -> int:
    call = next(c for c in t.calls if c.name == name)
    return call.outputs[0]


def measure(ctx: Context, weights: str, relu: bool = False, change: str | None = None,
            n: int | None = None) -> Measured:
    """The experiment, run once per verify run (cached on ``ctx``)."""
    if weights not in _WEIGHTS:
        raise UserError(f"weights must be one of {', '.join(_WEIGHTS)}, got '{weights}'")
    key = ("erf", weights, relu, change, n)
    cached = ctx.memo.get(key)
    if cached is None:
        cached = ctx.memo[key] = _measure(weights, relu, change, n)
    return cached


def _measure(weights: str, relu: bool, change: str | None, n: int | None) -> Measured:
    import torch
    from torch import nn

    from archlab.analysis.erf import erf_metrics, erf_taps
    from archlab.analysis.receptive_field import receptive_fields
    from archlab.trace.run import trace

    depths = (DEPTHS if weights == "uniform" else DEPTHS_INIT) if n is None else (n,)
    deepest = max(depths)
    side = _input_side(deepest, change)
    modules, taps = _layers(deepest, relu, change)
    model = nn.Sequential(*modules)
    # the exact field and the centre of each tapped layer's centre unit, from the meta trace
    t = trace(model, torch.empty((1, 1, side, side), device="meta"))
    exact = {tap.name: tap for tap in erf_taps(t, receptive_fields(t), depth=1)}
    names = {d: str(taps[d - 1]) for d in depths}
    builds, samples = (1, 1) if weights == "uniform" else (BUILDS, SAMPLES_RELU if relu else 1)
    total = {d: np.zeros((side, side)) for d in depths}
    generator = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _run_builds(builds, samples, deepest, relu, change, weights, side, generator, taps, names, depths, total)
    finally:
        torch.set_num_threads(threads)
    metrics, rf = {}, {}
    for d in depths:
        tap = exact[names[d]]
        metrics[d] = erf_metrics(total[d] / builds, tap.centre)
        rf[d] = max(tap.rf)
    return Measured(depths, metrics, rf)


def _run_builds(builds, samples, deepest, relu, change, weights, side, generator, taps, names, depths, total):
    import torch
    from torch import nn

    from archlab.measure.erf import gradient_maps, set_uniform
    from archlab.trace.inputs import seeded

    for seed in range(builds):
        with seeded(seed, "cpu"):
            model = nn.Sequential(*_layers(deepest, relu, change)[0]).double()
        if weights == "uniform":
            set_uniform(model)
        x = torch.randn((samples, 1, side, side), generator=generator, dtype=torch.float64)
        maps = gradient_maps(model, x, {names[d]: model[taps[d - 1]] for d in depths})
        for d in depths:
            total[d] += maps[names[d]]


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"{name} must be one of {', '.join(allowed)}, got '{value}'")


@quantity()
def erf_exponent(ctx: Context, *, weights: str, of: str, activation: str = "none") -> float:
    """Luo et al.'s growth law measured: n stacked 3x3 convolutions on one channel (stride 1, no bias; input
    as large as the deepest field), the gradient of the n-th layer's centre unit with respect to the input (|.|, float64); the least-squares slope of log(``of``) on log n, where ``of`` is
    'sigma' (the Gaussian fit's sigma, mean of the two axes) or 'erf95_ratio' (ERF95, the side of the smallest
    centred square holding 95% of the gradient mass, over archlab's exact theoretical field). ``weights``:
    'uniform' (every weight 1/9, one build; n = 4 .. 64, four depths per octave) or 'init' (PyTorch's
    initialization, 64 seeded builds, one normal input each; n = 4, 8, 16, 32, 64); ``activation``: 'none' or
    'relu' (after every convolution)."""
    from archlab.analysis.erf import growth_exponent

    _check("of", of, ("sigma", "erf95_ratio"))
    _check("activation", activation, _ACTIVATIONS)
    m = measure(ctx, weights, activation == "relu")
    if of == "sigma":
        values = [m.metrics[d].sigma for d in m.depths]
    else:
        values = [m.metrics[d].erf95 / m.rf[d] for d in m.depths]
    return growth_exponent(m.depths, values)


@quantity()
def erf_metric(ctx: Context, *, weights: str, depth: float, metric: str, activation: str = "none",
               change: str = "none") -> float:
    """One number of one layer's effective receptive field (the ``erf_exponent`` stacks, or Luo et al.'s
    Figure 3 variants named by ``change``): 'sigma' (input pixels, the Gaussian fit's mean sigma), 'erf95'
    (input pixels), 'rf' (archlab's exact theoretical field, input pixels), 'erf95_ratio' (ERF95 / rf) or
    'fit_residual' (||map - fitted Gaussian|| / ||map||, 0 for a perfect Gaussian)."""
    _check("metric", metric, ("sigma", "erf95", "rf", "erf95_ratio", "fit_residual"))
    _check("activation", activation, _ACTIVATIONS)
    _check("change", change, ("none", *_CHANGES[1:]))
    n = int(depth)
    if n != depth or n < 1:
        raise UserError(f"depth must be a whole number of layers, 1 or more, got {depth}")
    m = measure(ctx, weights, activation == "relu", None if change == "none" else change, n)
    e = m.metrics[n]
    return {"sigma": float(np.mean(e.sigma)), "erf95": e.erf95, "rf": m.rf[n], "erf95_ratio": e.erf95 / m.rf[n],
            "fit_residual": e.fit_residual}[metric]


@quantity()
def erf_change(ctx: Context, *, change: str, metric: str, weights: str = "uniform") -> float:
    """How one change alters the effective receptive field, as (the changed network's ``metric``) / (the
    baseline's): Luo et al.'s Figure 3 baseline is 15 stacked 3x3 convolutions on one channel; 'stride2' makes
    layers 4, 8 and 12 stride-2 convolutions (sub-sampling), 'avgpool' follows them by 2x2 average pooling of
    stride 2, 'dilation' dilates them by 2, 4 and 8; 'relu' puts a ReLU after every convolution ('init' weights).
    ``metric``: 'erf95' (input pixels) or 'fit_residual' (of the Gaussian fit)."""
    _check("change", change, _CHANGES)
    _check("metric", metric, ("erf95", "fit_residual"))
    relu = change == "relu"
    changed = measure(ctx, weights, relu, None if relu else change, BASELINE)
    base = measure(ctx, weights, False, None, BASELINE)
    a, b = changed.metrics[BASELINE], base.metrics[BASELINE]
    num, den = (a.erf95, b.erf95) if metric == "erf95" else (a.fit_residual, b.fit_residual)
    if not den:
        raise UserError(f"erf_change: the baseline's {metric} is zero")
    return num / den
