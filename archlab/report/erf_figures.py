"""The effective receptive field as pictures (``archlab rf --effective --plot FILE`` and the report
page with ``--effective``): heatmaps of the measured gradient map at each stage with the exact
theoretical field drawn on each, and ERF95 beside the theoretical field against depth.

As for the other figures, what is plotted is data first (``HeatmapPanel``, ``depth_spec``), from an
``ERFResult``; the drawing plots only that data, and ``panels_of`` / ``figures.series_of`` read it back
from the drawn figure for the tests. Nothing here runs a model: the maps come computed.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, Sequence

from archlab.analysis.page import stage_boundaries
from archlab.errors import UserError
from archlab.report.figures import FigureSpec, Series, to_svg

HEATMAP_COLS = 4  # panels per row: 4 maps of about 2 inches side by side on a 9-inch figure
WINDOW_LABEL = "theoretical field (the centre unit's exact window)"
ERF95_LABEL = "ERF95 (centred square holding 95% of the gradient)"


@dataclass(frozen=True)
class HeatmapPanel:
    """One heatmap: the layer, its map as plotted (the averaged |gradient| divided by its maximum,
    so every panel spans 0 to 1), the theoretical window (y0, y1, x0, x1, inclusive input pixels,
    possibly beyond the input) and the ERF95 square (its side, centred on ``centre``)."""
    name: str
    rf: tuple[int, int]
    window: tuple[int, int, int, int]
    centre: tuple[float, float]
    erf95: int
    image: Any  # np.ndarray (H_in, W_in), float64, max 1 (all zeros stays zeros)


def stage_layers(result: Any) -> list[Any]:
    """The layers whose heatmaps are drawn: the last layer of each stage (where the resolution of
    the layers' outputs changes, as the page's other figures mark stages), in forward order; every
    layer when there are no more than ``HEATMAP_COLS`` of them."""
    layers = [layer for layer in result.layers if getattr(layer, "heatmap", None) is not None]
    if len(layers) <= HEATMAP_COLS:
        return layers
    starts = (0, *stage_boundaries([layer.name for layer in layers], [layer.out_shape for layer in layers]))
    ends = (*starts[1:], len(layers))
    return [layers[end - 1] for end in ends]


def heatmap_panels(result: Any) -> list[HeatmapPanel]:
    """The heatmaps as data: what ``draw`` plots, for the tests to compare with the result."""
    panels = []
    for layer in stage_layers(result):
        peak = float(layer.heatmap.max())
        image = layer.heatmap / peak if peak > 0 else layer.heatmap.copy()
        panels.append(HeatmapPanel(layer.name, tuple(layer.rf), tuple(layer.window), tuple(layer.centre),
                                   int(layer.metrics.erf95), image))
    return panels


def _side(rf: Sequence[int]) -> int:
    return max(rf)


def depth_spec(result: Any) -> FigureSpec:
    """ERF95 and the theoretical field (pixels) against depth, one point per layer measured, with
    the input's size: the theoretical field grows as n, the ERF as about sqrt(n) (Luo et al. 2016)."""
    layers = list(result.layers)
    depths = tuple(float(layer.depth) for layer in layers)
    square = all(layer.rf[0] == layer.rf[1] for layer in layers)
    series = [Series("ERF95 (pixels)", tuple(int(layer.metrics.erf95) for layer in layers), depths, "linepoints"),
              Series("theoretical field (pixels)" if square else "theoretical field, larger side (pixels)",
                     tuple(_side(layer.rf) for layer in layers), depths, "linepoints")]
    side = max(result.input_shape[2:]) if len(result.input_shape) >= 3 else None
    if side:
        series.append(Series(f"input size ({side} pixels)", (side,), kind="hline"))
    return FigureSpec(
        key="erf-depth", title=f"Effective (ERF95) and theoretical receptive field against depth: {result.label}",
        xlabel=DEPTH_LABEL, ylabels=("pixels",), series=tuple(series), size=(9.0, 4.0),
        extra={"names": tuple(layer.name for layer in layers)})


DEPTH_LABEL = "depth (weight layers from the input to the layer's output, longest path)"


def heatmap_title(result: Any) -> str:
    seeds = ", ".join(str(s) for s in result.seeds)
    return (f"Effective receptive field of {result.label} at each stage: |d(centre unit, summed over channels) / "
            f"d(input)|, averaged over {result.samples} random inputs ({result.weights} weights, seed"
            f"{'s' if len(result.seeds) != 1 else ''} {seeds}), each map divided by its maximum; "
            "solid square: the exact theoretical field; dashed: ERF95")


def _matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError("plots need matplotlib, a dependency of archlab that is missing here: "
                        "pip install -r requirements.txt . (or pip install matplotlib)") from None
    return matplotlib, Figure


def _draw_heatmaps(fig: Any, panels: Sequence[HeatmapPanel], grid: Any, first_row: int) -> None:
    from matplotlib.patches import Rectangle

    mappable = None
    axes = []
    for i, p in enumerate(panels):
        ax = fig.add_subplot(grid[first_row + i // HEATMAP_COLS, i % HEATMAP_COLS])
        axes.append(ax)
        h, w = p.image.shape
        mappable = ax.imshow(p.image, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest",
                             origin="upper", extent=(-0.5, w - 0.5, h - 0.5, -0.5))
        y0, y1, x0, x1 = p.window
        # pixel i covers [i - 0.5, i + 0.5]: the window's edges are half a pixel outside its first and last
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, edgecolor="#d62728",
                               linewidth=1.2, linestyle="-", label=WINDOW_LABEL))
        cy, cx = p.centre
        ax.add_patch(Rectangle((cx - p.erf95 / 2, cy - p.erf95 / 2), p.erf95, p.erf95, fill=False,
                               edgecolor="#ff7f0e", linewidth=1.2, linestyle="--", label=ERF95_LABEL))
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        field = f"{p.rf[0]}" if p.rf[0] == p.rf[1] else f"{p.rf[0]}x{p.rf[1]}"
        beyond = y0 < 0 or x0 < 0 or y1 >= h or x1 >= w
        ax.set_title(f"{p.name}\nERF95 {p.erf95} px; field {field} px{' (past the input)' if beyond else ''}",
                     fontsize=8)
        ax.tick_params(labelsize=7)
    if mappable is not None:
        bar = fig.colorbar(mappable, ax=axes, shrink=0.8, pad=0.02)
        bar.set_label("|gradient| / its maximum", fontsize=8)
        axes[0].legend(handles=axes[0].patches[:2], fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.12),
                       frameon=False)


def _draw_depth(fig: Any, spec: FigureSpec, ax: Any) -> None:
    for s in spec.series:
        if s.kind == "hline":
            ax.axhline(s.y[0], linestyle="--", linewidth=1, color="0.5", label=s.label)
        else:
            ax.plot(list(s.x), list(s.y), "o-", linewidth=1, markersize=4, label=s.label)
    ax.set_xlabel(spec.xlabel)
    ax.set_ylabel(spec.ylabels[0])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(spec.title, fontsize=10)


def draw(result: Any, parts: Sequence[str] = ("heatmaps", "depth")) -> Any:
    """The matplotlib ``Figure`` of ``parts`` of ``result``: the stage heatmaps, the depth figure, or
    both stacked (``--plot``). No pyplot: nothing global is touched."""
    _, Figure = _matplotlib()
    panels = heatmap_panels(result) if "heatmaps" in parts else []
    rows = math.ceil(len(panels) / HEATMAP_COLS) if panels else 0
    cols = min(HEATMAP_COLS, len(panels)) or 1
    depth = "depth" in parts and bool(result.layers)
    height = 2.9 * rows + (0.9 if rows else 0) + (4.0 if depth else 0)
    fig = Figure(figsize=(9.0, max(height, 2.0)), dpi=72, layout="constrained")
    grid = fig.add_gridspec(rows + (1 if depth else 0), cols,
                            height_ratios=[2.9] * rows + ([4.0 * (1.2 if rows else 1)] if depth else []))
    if panels:
        fig.suptitle(_title_lines_for(heatmap_title(result)), fontsize=9)
        _draw_heatmaps(fig, panels, grid, 0)
    if depth:
        _draw_depth(fig, depth_spec(result), fig.add_subplot(grid[rows, :]))
    return fig


def _title_lines_for(text: str) -> str:
    import textwrap

    return textwrap.fill(text, 110)


def panels_of(fig: Any) -> list[dict[str, Any]]:
    """What a drawn figure's heatmaps show, read back from its artists (for the tests): per heatmap
    axis, its title, the plotted array and each square as (label, x, y, width, height)."""
    out = []
    for ax in fig.axes:
        if not ax.images or ax.get_label() == "<colorbar>":
            continue
        squares = [(r.get_label(), r.get_x(), r.get_y(), r.get_width(), r.get_height()) for r in ax.patches]
        out.append({"title": ax.get_title(), "image": ax.images[0].get_array().data, "squares": squares})
    return out


def svg(result: Any, parts: Sequence[str]) -> str:
    return to_svg(draw(result, parts))


def image(result: Any, path: str) -> bytes | str:
    """Both figures in one file, SVG text or PNG bytes by ``path``'s extension (``--plot``)."""
    ext = path.lower().rsplit(".", 1)[-1] if "." in path else ""
    if ext not in ("png", "svg"):
        raise UserError(f"--plot writes a .png or .svg file, not '{path}'")
    if not result.layers:
        raise UserError("--plot has nothing to draw: no layer with a spatial output was measured")
    fig = draw(result)
    if ext == "svg":
        return to_svg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
