"""The effective receptive field (Luo et al., NIPS 2016): the math on gradient maps, and the result.

A gradient map is |d(centre unit, summed over channels)/d input|, summed over the input's channels and
averaged over samples: an (H, W) array of non-negative float64 (``archlab.measure.erf`` makes them).
This module reads such maps; it runs nothing.

* ``erf_metrics``: a Gaussian fitted to the map with its centre fixed at the unit's centre (its sigma per
  axis and the relative L2 residual of the fit), ERF95 (the side of the smallest square centred on the
  unit's centre that holds 95% of the map's mass) and RepLKNet's high-contribution area ratio at
  t = 20, 30, 50, 99% (the area of the smallest centred square holding t% of the mass over the input's
  area; RepLKNet takes it on log10(1 + map) rescaled, archlab on the map itself, so that it is a
  fraction of the gradient mass like ERF95).
* A square of side s centred on c holds the pixels whose centres lie strictly inside it (|i - c| < s/2 on
  both axes): on a whole-pixel centre only odd sides add pixels, on a half-pixel centre only even ones.
* ``growth_exponent``: the least-squares slope of log sigma on log depth (Luo et al.: 1/2).
* ``erf_taps``: the layers whose field is measured (those ``archlab rf`` lists at a depth, or one by name),
  each with its centre unit's exact window from the theoretical field (``receptive_field``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from archlab.analysis.receptive_field import Field, RFAnalysis, headline, unit_window
from archlab.errors import UserError
from archlab.trace.graph import Call, Trace
from archlab.units import SCHEMA_VERSION

THRESHOLDS = (20, 30, 50, 99)  # RepLKNet's high-contribution area ratio, percent of the mass
ERF_MASS = 0.95  # ERF95
WEIGHTS = ("init", "uniform", "given")
STABLE_WITHIN = 0.05  # ERF95 from half the samples within 5% (at least one 2-pixel step) of its value from all
_EPS = 1e-12  # relative slack of a mass comparison (a box's exact 95% is not lost to rounding)


@dataclass(frozen=True)
class ERFMetrics:
    sigma: tuple[float, float]  # the Gaussian fit's sigma per axis (y, x), input pixels
    fit_residual: float  # ||map - fit|| / ||map|| (0: a perfect Gaussian)
    erf95: int  # side, input pixels, of the smallest centred square holding >= 95% of the mass
    area_ratio: dict[int, float]  # t -> (side of the smallest centred square holding t% of the mass)^2 / (H W)

    def to_dict(self) -> dict[str, Any]:
        return {"sigma": [round(s, 4) for s in self.sigma], "fit_residual": round(self.fit_residual, 4),
                "erf95": self.erf95, "area_ratio": {str(t): round(r, 6) for t, r in self.area_ratio.items()}}


def _check_map(grad_map: Any) -> np.ndarray:
    m = np.asarray(grad_map, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise UserError(f"a gradient map is a non-empty (H, W) array, got shape {tuple(m.shape)}")
    if not np.isfinite(m).all():
        raise UserError("the gradient map holds NaN or infinite values (the model's gradient overflowed)")
    if (m < 0).any():
        raise UserError("a gradient map holds |gradient| values, >= 0; this one has negative values")
    return m


def _distances(shape: tuple[int, int], centre: tuple[float, float]) -> np.ndarray:
    """Per pixel, the Chebyshev distance of its centre from ``centre``."""
    ys = np.abs(np.arange(shape[0], dtype=np.float64) - centre[0])
    xs = np.abs(np.arange(shape[1], dtype=np.float64) - centre[1])
    return np.maximum(ys[:, None], xs[None, :])


def square_sides(grad_map: np.ndarray, centre: tuple[float, float], fractions: Sequence[float]) -> list[int]:
    """Per fraction f, the side of the smallest square centred on ``centre`` whose pixels (centres strictly
    inside) hold at least f of the map's mass; 0 for a map with no mass."""
    m = _check_map(grad_map)
    total = m.sum()
    if total <= 0:
        return [0 for _ in fractions]
    d = _distances(m.shape, centre).ravel()
    order = np.argsort(d, kind="stable")
    d_sorted, cum = d[order], np.cumsum(m.ravel()[order])
    # the mass inside a square reaches a pixel only with every pixel at the same distance: the last of a tie
    last = np.r_[d_sorted[1:] != d_sorted[:-1], True]
    d_done, cum_done = d_sorted[last], cum[last]
    sides = []
    for f in fractions:
        k = int(np.searchsorted(cum_done, f * total * (1 - _EPS), side="left"))
        k = min(k, len(d_done) - 1)
        sides.append(int(math.floor(2 * d_done[k] + 1e-9)) + 1)  # the smallest s with d < s / 2
    return sides


def _gaussian(shape, centre, a, sy, sx) -> np.ndarray:
    ys = np.arange(shape[0], dtype=np.float64) - centre[0]
    xs = np.arange(shape[1], dtype=np.float64) - centre[1]
    return a * np.exp(-ys[:, None] ** 2 / (2 * sy * sy)) * np.exp(-xs[None, :] ** 2 / (2 * sx * sx))


def fit_gaussian(grad_map: np.ndarray, centre: tuple[float, float]) -> tuple[tuple[float, float], float]:
    """(sigma (y, x), relative L2 residual) of the Gaussian a exp(-dy^2/2sy^2 - dx^2/2sx^2) centred on
    ``centre`` that fits the map best in least squares: started from the map's second moments about the
    centre, refined by Levenberg-Marquardt on (a, log sy, log sx)."""
    m = _check_map(grad_map)
    norm = float(np.sqrt((m * m).sum()))
    if norm == 0:
        return (0.0, 0.0), 0.0
    total = m.sum()
    ys = np.arange(m.shape[0], dtype=np.float64) - centre[0]
    xs = np.arange(m.shape[1], dtype=np.float64) - centre[1]
    var_y = float((m.sum(1) * ys * ys).sum() / total)
    var_x = float((m.sum(0) * xs * xs).sum() / total)
    p = np.array([float(m.max()), 0.5 * math.log(max(var_y, 0.05)), 0.5 * math.log(max(var_x, 0.05))])

    def residual(q):
        return (_gaussian(m.shape, centre, q[0], math.exp(q[1]), math.exp(q[2])) - m).ravel()

    r = residual(p)
    cost, lam = float(r @ r), 1e-3
    for _ in range(200):
        sy, sx = math.exp(p[1]), math.exp(p[2])
        gy = np.exp(-ys ** 2 / (2 * sy * sy))
        gx = np.exp(-xs ** 2 / (2 * sx * sx))
        g = gy[:, None] * gx[None, :]
        jac = np.stack([g.ravel(), (p[0] * g * (ys ** 2 / (sy * sy))[:, None]).ravel(),
                        (p[0] * g * (xs ** 2 / (sx * sx))[None, :]).ravel()], axis=1)
        jtj, jtr = jac.T @ jac, jac.T @ r
        improved = False
        for _ in range(30):
            step = np.linalg.solve(jtj + lam * np.diag(np.diag(jtj) + 1e-300), -jtr)
            q = p + step
            q[1:] = np.clip(q[1:], -10, 10)
            rq = residual(q)
            cq = float(rq @ rq)
            if cq < cost:
                p, r, improved = q, rq, cost - cq > 1e-15 * max(cost, 1e-300)
                cost, lam = cq, max(lam / 10, 1e-12)
                break
            lam *= 10
        if not improved:
            break
    return (math.exp(p[1]), math.exp(p[2])), math.sqrt(cost) / norm


def erf_metrics(grad_map: np.ndarray, centre: tuple[float, float]) -> ERFMetrics:
    """The Gaussian fit, ERF95 and RepLKNet's area ratios of one gradient map (module docstring)."""
    m = _check_map(grad_map)
    sigma, residual = fit_gaussian(m, centre)
    sides = square_sides(m, centre, [ERF_MASS, *(t / 100 for t in THRESHOLDS)])
    area = m.shape[0] * m.shape[1]
    return ERFMetrics(sigma, residual, sides[0], {t: s * s / area for t, s in zip(THRESHOLDS, sides[1:])})


def growth_exponent(depths: Sequence[float], sigmas: Sequence[Any]) -> float:
    """The least-squares slope of log sigma on log depth; a sigma given per axis counts as the mean of its axes."""
    d = np.asarray(depths, dtype=np.float64)
    s = np.asarray([float(np.mean(x)) for x in sigmas], dtype=np.float64)
    if d.shape != s.shape or len(d) < 2:
        raise UserError("growth_exponent needs two or more (depth, sigma) pairs, as many of each")
    if (d <= 0).any() or (s <= 0).any():
        raise UserError("growth_exponent needs positive depths and sigmas (it fits log sigma on log depth)")
    if len(set(d.tolist())) < 2:
        raise UserError("growth_exponent needs two different depths")
    return float(np.polyfit(np.log(d), np.log(s), 1)[0])


# --- the layers measured, and the result --------------------------------------------------------------


@dataclass
class ERFTap:
    """A layer to measure: its call, its output's shape, its centre unit and that unit's exact field."""

    name: str
    type: str
    depth: int
    out_shape: tuple[int, ...]
    unit: tuple[int, int]  # the centre unit's (y, x) on the layer's output grid: (H // 2, W // 2)
    rf: tuple[int, int] | None  # the centre unit's field (height, width), input pixels; None: not followed
    window: tuple[int, int, int, int] | None  # y0, y1, x0, x1 inclusive, may exceed the input
    centre: tuple[float, float]  # the centre unit's centre, input pixels
    value: int = -1  # the trace's value the layer returns (a container and its last child return the same)


def centre_unit(f: Field | None, out_hw: tuple[int, int], input_hw: tuple[int, int]) -> tuple[
        tuple[int, int], tuple[int, int] | None, tuple[int, int, int, int] | None, tuple[float, float]]:
    """(unit, field (h, w), window, centre) of the unit at (H // 2, W // 2) of an ``out_hw`` output (the
    unit RepLKNet's script takes): its exact window where the field's phases were followed, else the affine
    one; its centre, the window's middle (the input's middle when the field is unknown)."""
    unit = (out_hw[0] // 2, out_hw[1] // 2)
    if f is None:
        return unit, None, None, ((input_hw[0] - 1) / 2, (input_hw[1] - 1) / 2)
    window = []
    for a in range(2):
        w = unit_window(f.phase[a], unit[a]) if f.phase is not None else None
        if w is None:
            c = f.start[a] + unit[a] * f.jump[a]
            half = (f.rf[a] - 1) / 2
            w = (int(math.floor(c - half + 1e-9)), int(math.ceil(c + half - 1e-9)))
        window.extend(w)
    y0, y1, x0, x1 = window
    return unit, (y1 - y0 + 1, x1 - x0 + 1), (y0, y1, x0, x1), ((y0 + y1) / 2, (x0 + x1) / 2)


def _image_hw(trace: Trace) -> tuple[int, int]:
    shape = tuple(trace.input_shape)
    if len(shape) != 4:
        raise UserError(f"the effective receptive field needs an image input (N, C, H, W); this model's input is "
                        f"{'x'.join(map(str, shape)) or 'not a tensor'}")
    return shape[-2], shape[-1]


def _spatial_call(trace: Trace, call: Call, rf: RFAnalysis) -> bool:
    """An (N, C, H, W) floating output that still has spatial extent (not a globally pooled 1 x 1 map)."""
    if not call.outputs:
        return False
    vid = call.outputs[0]
    value = trace.values[vid]
    return (len(value.shape) == 4 and value.dtype.is_floating_point
            and (rf.of(vid) is not None or vid in rf.unknown or tuple(value.shape[-2:]) != (1, 1)))


def erf_taps(trace: Trace, rf: RFAnalysis, depth: int = 2, layer: str | None = None) -> list[ERFTap]:
    """The layers whose effective field is measured: each module call at depth 1..``depth`` with an
    (N, C, H, W) floating output (first call of a module called several times), or the module ``layer``;
    depth 0: the layer ``archlab rf`` names the model's field at (its headline)."""
    input_hw = _image_hw(trace)
    if layer is not None:
        calls = [c for c in trace.calls if c.name == layer and c.depth > 0]
        if not calls:
            raise UserError(f"--layer '{layer}' names no module of this model (archlab rf lists them, with --depth)")
        if not _spatial_call(trace, calls[0], rf):
            shape = trace.values[calls[0].outputs[0]].shape if calls[0].outputs else ()
            raise UserError(f"--layer '{layer}' has no spatial output (its output is "
                            f"{'x'.join(map(str, shape)) or 'not a tensor'}, not N x C x H x W)")
    elif depth == 0:  # the summary: the model's field, at the last layer with spatial extent
        top = headline(trace, rf)
        calls = [top.call] if top is not None and top.call.depth > 0 and _spatial_call(trace, top.call, rf) else []
    else:
        calls = [c for c in trace.calls if 0 < c.depth <= depth and _spatial_call(trace, c, rf)]
    taps, seen = [], set()
    for c in calls:
        if c.name in seen:
            continue
        seen.add(c.name)
        shape = tuple(trace.values[c.outputs[0]].shape)
        unit, field_hw, window, centre = centre_unit(rf.of(c.outputs[0]), shape[-2:], input_hw)
        taps.append(ERFTap(c.name, c.type, c.depth, shape, unit, field_hw, window, centre, c.outputs[0]))
    if not taps:
        raise UserError(f"no layer down to depth {depth} has a spatial output (N, C, H, W); try --depth or --layer")
    return taps


@dataclass
class ERFLayer:
    name: str
    type: str
    depth: int
    out_shape: tuple[int, ...]
    rf: tuple[int, int] | None  # the centre unit's exact theoretical field (height, width), input pixels
    window: tuple[int, int, int, int] | None  # its input window y0, y1, x0, x1 inclusive (may exceed the input)
    centre: tuple[float, float]  # the centre unit's centre, input pixels (y, x)
    metrics: ERFMetrics
    heatmap: np.ndarray  # (H_in, W_in) float64: the averaged |gradient| map
    unit: tuple[int, int] = (0, 0)  # the centre unit's position on the layer's output grid
    erf95_half: int | None = None  # ERF95 from the first half of the samples (the stability check)

    @property
    def settled(self) -> bool:
        """Whether ERF95 from half the samples is within ``STABLE_WITHIN`` of its value from all of them (at
        least one step: ERF95 moves by 2 pixels, the parity of a square centred on the unit)."""
        if self.erf95_half is None:
            return True
        return abs(self.erf95_half - self.metrics.erf95) <= max(2.0, STABLE_WITHIN * self.metrics.erf95)

    @property
    def erf95_ratio(self) -> float | None:
        """ERF95 over the theoretical field (its larger side)."""
        return None if not self.rf else self.metrics.erf95 / max(self.rf)

    def to_dict(self, heatmap: bool = False) -> dict[str, Any]:
        d = {"name": self.name, "type": self.type, "depth": self.depth, "output_shape": list(self.out_shape),
             "unit": list(self.unit), "rf": list(self.rf) if self.rf else None,
             "window": list(self.window) if self.window else None, "centre": list(self.centre),
             **self.metrics.to_dict(),
             "erf95_ratio": None if self.erf95_ratio is None else round(self.erf95_ratio, 4),
             "erf95_half_samples": self.erf95_half}
        if heatmap:
            d["heatmap"] = self.heatmap.tolist()
        return d


@dataclass
class ERFResult:
    label: str
    input_shape: tuple[int, ...]
    samples: int
    weights: str  # 'init' | 'uniform' | 'given'
    seeds: tuple[int, ...]  # the seeds of the builds (init: one build each, the samples split among them)
    device: str
    layers: list[ERFLayer]
    notes: list[str] = field(default_factory=list)
    seconds: float | None = None  # the real run's wall time (not in to_dict: the outputs are the same run to run)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase: trace, build, forward, backward TAP

    @property
    def stable(self) -> bool:
        """Whether every layer's ERF95 from half the samples is within ``STABLE_WITHIN`` of it from all of them."""
        return all(lay.settled for lay in self.layers)

    def to_dict(self, heatmaps: bool = False) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "model": self.label,
            "input_shape": list(self.input_shape),
            "units": ("rf, window, centre, sigma and erf95 in input pixels; erf95: side of the smallest square "
                      "centred on the unit holding 95% of |d unit / d input|; area_ratio: fraction of the input's "
                      "area"),
            "samples": self.samples,
            "weights": self.weights,
            "seeds": list(self.seeds),
            "device": self.device,
            "stable": self.stable,
            "notes": list(self.notes),
            "layers": [lay.to_dict(heatmaps) for lay in self.layers],
        }
