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

from archlab.analysis.page import leaves, stage_boundaries
from archlab.errors import UserError
from archlab.report.figures import FigureSpec, Series, matplotlib_figure, to_svg

HEATMAP_COLS = 4  # panels per row: 4 maps of about 2 inches side by side on a 9-inch figure
WINDOW_LABEL = "theoretical field (the centre unit's exact window)"
ERF95_LABEL = "ERF95 (centred square holding 95% of the gradient)"


@dataclass(frozen=True)
class HeatmapPanel:
    """One heatmap: the layer, its map as plotted (the averaged |gradient| divided by its maximum,
    so every panel spans 0 to 1), the theoretical window (y0, y1, x0, x1, inclusive input pixels,
    possibly beyond the input) and the ERF95 square (its side, centred on ``centre``)."""
    name: str
    rf: tuple[int, int] | None  # None: the field is unknown (no square drawn)
    window: tuple[int, int, int, int] | None
    centre: tuple[float, float]
    erf95: int
    image: Any  # np.ndarray (H_in, W_in), float64, max 1 (all zeros stays zeros)


def plotted_layers(result: Any) -> list[Any]:
    """The layers the figures show: those measured, less a container whose parts were measured too
    (``features`` beside ``features.0``, as the page's other figures), in forward order."""
    return [result.layers[i] for i in leaves([layer.name for layer in result.layers])]


def stage_layers(result: Any) -> list[Any]:
    """The layers whose heatmaps are drawn: the last layer of each stage (where the resolution of
    the layers' outputs changes, as the page's other figures mark stages), in forward order; every
    layer when there are no more than ``HEATMAP_COLS`` of them."""
    layers = plotted_layers(result)
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
        panels.append(HeatmapPanel(layer.name, tuple(layer.rf) if layer.rf else None,
                                   tuple(layer.window) if layer.window else None, tuple(layer.centre),
                                   int(layer.metrics.erf95), image))
    return panels


MAX_TICK_LABELS = 50  # as the page's other figures: past this many layers, no names under the axis


def depth_spec(result: Any) -> FigureSpec:
    """ERF95 and the theoretical field (pixels) against depth: one point per layer measured, in forward
    order (x = 1, 2, ...; the layers' names under the axis), with the input's size. The theoretical field
    grows as n, the ERF as about sqrt(n) (Luo et al. 2016). A layer whose field is unknown has no
    theoretical point (NaN)."""
    layers = plotted_layers(result)
    xs = tuple(float(i) for i in range(1, len(layers) + 1))
    square = all(layer.rf is None or layer.rf[0] == layer.rf[1] for layer in layers)
    series = [Series("ERF95 (pixels)", tuple(int(layer.metrics.erf95) for layer in layers), xs, "linepoints"),
              Series("theoretical field (pixels)" if square else "theoretical field, larger side (pixels)",
                     tuple(float(max(layer.rf)) if layer.rf else math.nan for layer in layers), xs, "linepoints")]
    side = max(result.input_shape[2:]) if len(result.input_shape) >= 3 else None
    if side:
        series.append(Series(f"input size ({side} pixels)", (side,), kind="hline"))
    names = tuple(layer.name for layer in layers)
    return FigureSpec(
        key="erf-depth", title=f"Effective (ERF95) and theoretical receptive field against depth: {result.label} "
        f"({result.weights} weights, {result.samples} samples)",
        xlabel="layer (forward order)", ylabels=("pixels",), series=tuple(series), size=(9.0, 4.0),
        xticklabels=names if len(names) <= MAX_TICK_LABELS else ())


def heatmap_title(result: Any) -> str:
    seeds = ", ".join(str(s) for s in result.seeds)
    shown = stage_layers(result)
    where = f"at '{shown[0].name}'" if len(shown) == 1 else "at each stage (its last layer)"
    return (f"Effective receptive field of {result.label} {where}: |d(centre unit, summed over channels) / "
            f"d(input)|, averaged over {result.samples} random inputs ({result.weights} weights, seed"
            f"{'s' if len(result.seeds) != 1 else ''} {seeds}), each map divided by its maximum; "
            "solid square: the exact theoretical field; dashed: ERF95")


# the layout in inches (fixed, not a layout engine's: it is deterministic and costs no extra drawing)
WIDTH_IN = 9.0
CELL_IN = 1.7  # a heatmap's square
GAP_IN = 0.3  # between heatmaps, across
LEFT_IN = 0.55  # the first heatmap's y tick labels
PANEL_TITLE_IN = 0.42  # two 8-pt lines above each heatmap
TICKS_IN = 0.3  # x tick labels under each heatmap
LEGEND_IN = 0.45  # the squares' legend under the heatmaps
LINE_IN = 0.18  # one line of the 9-pt figure title
DEPTH_IN = 3.2  # the depth figure's axes
DEPTH_TITLE_IN = 0.4
NAME_CHAR_IN = 0.6 * 7 / 72  # a character of a rotated 7-pt layer name
TITLE_CHARS = 105  # the figure title's characters a line, 9 pt across 9 inches


def _title_lines(text: str) -> str:
    import textwrap

    return textwrap.fill(text, TITLE_CHARS)


def _heatmaps_height(panels: Sequence[HeatmapPanel], title: str) -> float:
    rows = math.ceil(len(panels) / HEATMAP_COLS)
    return (title.count("\n") + 1) * LINE_IN + 0.15 + rows * (PANEL_TITLE_IN + CELL_IN + TICKS_IN) + LEGEND_IN


def _depth_height(spec: FigureSpec) -> float:
    names = max(map(len, spec.xticklabels), default=0) * NAME_CHAR_IN
    return DEPTH_TITLE_IN + DEPTH_IN + 0.55 + names


def view_of(p: HeatmapPanel) -> tuple[tuple[float, float], tuple[float, float]]:
    """The heatmap's view, ((top, bottom), (left, right)) in input pixels: the input (pixel i covers
    i - 0.5 to i + 0.5) and the theoretical window together, square (the longer side's extent on both
    axes, centred), so that one input pixel is as wide as it is tall; a window past the input gets a
    margin, so that the frame does not hide its square."""
    h, w = p.image.shape
    top, bottom, left, right = -0.5, h - 0.5, -0.5, w - 0.5
    if p.window is not None:
        y0, y1, x0, x1 = p.window
        top, bottom, left, right = min(top, y0 - 0.5), max(bottom, y1 + 0.5), min(left, x0 - 0.5), max(right, x1 + 0.5)
    past = (top, bottom, left, right) != (-0.5, h - 0.5, -0.5, w - 0.5)
    side = max(bottom - top, right - left) * (1.06 if past else 1.0)
    cy, cx = (top + bottom) / 2, (left + right) / 2
    return (cy - side / 2, cy + side / 2), (cx - side / 2, cx + side / 2)


def _draw_heatmaps(fig: Any, panels: Sequence[HeatmapPanel], title: str, top: float, height: float) -> None:
    """The heatmaps in rows of ``HEATMAP_COLS``, from ``top`` (inches from the figure's top) down."""
    from matplotlib.patches import Rectangle

    def box(x_in: float, y_top_in: float, w_in: float, h_in: float) -> list[float]:
        return [x_in / WIDTH_IN, 1 - (y_top_in + h_in) / height, w_in / WIDTH_IN, h_in / height]

    fig.text(0.5, 1 - (top + 0.05) / height, title, ha="center", va="top", fontsize=9)
    y = top + (title.count("\n") + 1) * LINE_IN + 0.15
    mappable = None
    axes = []
    for i, p in enumerate(panels):
        row, col = divmod(i, HEATMAP_COLS)
        ax = fig.add_axes(box(LEFT_IN + col * (CELL_IN + GAP_IN),
                              y + row * (PANEL_TITLE_IN + CELL_IN + TICKS_IN) + PANEL_TITLE_IN, CELL_IN, CELL_IN))
        axes.append(ax)
        h, w = p.image.shape
        mappable = ax.imshow(p.image, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest",
                             origin="upper", extent=(-0.5, w - 0.5, h - 0.5, -0.5), aspect="auto")
        if p.window is not None:
            y0, y1, x0, x1 = p.window
            # pixel i covers [i - 0.5, i + 0.5]: the window's edges are half a pixel outside its first and last
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, edgecolor="#d62728",
                                   linewidth=1.2, linestyle="-", label=WINDOW_LABEL))
        cy, cx = p.centre
        ax.add_patch(Rectangle((cx - p.erf95 / 2, cy - p.erf95 / 2), p.erf95, p.erf95, fill=False,
                               edgecolor="#ff7f0e", linewidth=1.2, linestyle="--", label=ERF95_LABEL))
        # the view holds the input and the whole window (a deep layer's field runs past the input): grey
        # outside the input, so that the ERF is seen against the field it lies in
        (top_, bottom_), (left_, right_) = view_of(p)
        ax.set_xlim(left_, right_)
        ax.set_ylim(bottom_, top_)
        ax.set_facecolor("0.85")
        if p.rf is None or p.window is None:
            field = "field unknown"
        else:
            field = f"field {p.rf[0]} px" if p.rf[0] == p.rf[1] else f"field {p.rf[0]}x{p.rf[1]} px"
        ax.set_title(f"{p.name}\nERF95 {p.erf95} px; {field}", fontsize=8)
        ax.tick_params(labelsize=7)
    rows = math.ceil(len(panels) / HEATMAP_COLS)
    grid_top = y + PANEL_TITLE_IN
    grid_h = rows * (PANEL_TITLE_IN + CELL_IN + TICKS_IN) - PANEL_TITLE_IN - TICKS_IN
    bar_x = LEFT_IN + HEATMAP_COLS * CELL_IN + (HEATMAP_COLS - 1) * GAP_IN + 0.15
    bar = fig.colorbar(mappable, cax=fig.add_axes(box(bar_x, grid_top, 0.15, grid_h)))
    bar.set_label("|gradient| / its maximum", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    kinds = {patch.get_label(): patch for ax in axes for patch in ax.patches}
    legend_y = 1 - (y + rows * (PANEL_TITLE_IN + CELL_IN + TICKS_IN) + 0.05) / height
    fig.legend(handles=list(kinds.values()), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, legend_y),
               ncols=len(kinds), frameon=False)


def _draw_depth(fig: Any, spec: FigureSpec, top: float, height: float) -> None:
    bottom = height - top - DEPTH_TITLE_IN - DEPTH_IN  # inches from the figure's bottom to the axes'
    ax = fig.add_axes([0.9 / WIDTH_IN, bottom / height, (WIDTH_IN - 1.1) / WIDTH_IN, DEPTH_IN / height])
    for s in spec.series:
        if s.kind == "hline":
            ax.axhline(s.y[0], linestyle="--", linewidth=1, color="0.5", label=s.label)
        else:
            ax.plot(list(s.x), list(s.y), "o-", linewidth=1, markersize=4, label=s.label)
    ax.set_xlabel(spec.xlabel)
    ax.set_ylabel(spec.ylabels[0])
    if spec.xticklabels:
        ax.set_xticks(range(1, len(spec.xticklabels) + 1), list(spec.xticklabels), rotation=90, fontsize=7)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(spec.title, fontsize=10)


def draw(result: Any, parts: Sequence[str] = ("heatmaps", "depth")) -> Any:
    """The matplotlib ``Figure`` of ``parts`` of ``result``: the stage heatmaps, the depth figure, or
    both stacked (``--plot``). No pyplot: nothing global is touched."""
    _, Figure = matplotlib_figure()
    panels = heatmap_panels(result) if "heatmaps" in parts else []
    spec = depth_spec(result) if "depth" in parts and result.layers else None
    title = _title_lines(heatmap_title(result))
    upper = _heatmaps_height(panels, title) if panels else 0.0
    height = upper + (_depth_height(spec) if spec is not None else 0.0)
    fig = Figure(figsize=(WIDTH_IN, max(height, 1.0)), dpi=72)
    if panels:
        _draw_heatmaps(fig, panels, title, 0.0, height)
    if spec is not None:
        _draw_depth(fig, spec, upper, height)
    return fig


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


def check_plot_path(path: str) -> None:
    """Refuse, before anything runs, a ``--plot`` file that cannot be written: not .png or .svg, in a
    folder that does not exist, or a directory."""
    import os

    if not path.lower().endswith((".png", ".svg")):
        raise UserError(f"--plot writes a .png or .svg file, not '{path}'")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"cannot write '{path}': directory '{folder}' does not exist")
    if os.path.isdir(path):
        raise UserError(f"cannot write '{path}': it is a directory")
