"""Figures as data, then as SVG: a ``FigureSpec`` names what is plotted (the series, the marks),
``draw`` turns it into a matplotlib figure, ``to_svg`` into deterministic SVG text.

The spec is what tests compare with the computed numbers; ``draw`` only plots the spec's
series, so what the figure shows is what the spec holds (``series_of`` reads it back from
the figure objects).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Sequence

from archlab.errors import UserError


@dataclass(frozen=True)
class Series:
    label: str
    y: tuple[float, ...]
    x: tuple[float, ...] | None = None  # None: 0, 1, 2, ...
    kind: str = "line"  # line, linepoints, bar, stack (a bar on the panel's bars before it), step, scatter, hline
    # (y holds one value)
    panel: int = 0  # which of the figure's stacked axes


@dataclass(frozen=True)
class FigureSpec:
    key: str  # the figure's id in the page
    title: str
    xlabel: str
    ylabels: tuple[str, ...]  # one per panel
    series: tuple[Series, ...]
    vlines: tuple[float, ...] = ()  # stage boundaries, on every panel
    marks: tuple[tuple[float, float, str], ...] = ()  # (x, y, text) on panel 0: the peak
    xticklabels: tuple[str, ...] = ()  # names under the bars (when few enough to read)
    notes: tuple[tuple[float, float, str], ...] = ()  # (x, y, text) on panel 0: point labels
    logx: bool = False
    logy: tuple[bool, ...] = ()
    size: tuple[float, float] = (9.0, 4.0)
    extra: dict[str, Any] = field(default_factory=dict)

    def series_by_label(self) -> dict[str, tuple[float, ...]]:
        return {s.label: s.y for s in self.series}


def matplotlib_figure() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError("plots need matplotlib, a dependency of archlab that is missing here: "
                        "pip install -r requirements.txt . (or pip install matplotlib)") from None
    return matplotlib, Figure


def draw(spec: FigureSpec) -> Any:
    """The matplotlib ``Figure`` of ``spec`` (no pyplot: nothing global is touched)."""
    _, Figure = matplotlib_figure()
    panels = max((s.panel for s in spec.series), default=0) + 1
    fig = Figure(figsize=spec.size, dpi=72)
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    tops: dict[tuple[int, float], float] = {}  # (panel, x): the top of the stacked bars there so far
    for s in spec.series:
        ax = axes[s.panel]
        x = list(s.x) if s.x is not None else list(range(len(s.y)))
        if s.kind == "bar":
            ax.bar(x, list(s.y), width=0.8, label=s.label)
        elif s.kind == "stack":
            bottom = [tops.get((s.panel, v), 0.0) for v in x]
            ax.bar(x, list(s.y), width=0.6, bottom=bottom, label=s.label)
            tops.update({(s.panel, v): b + y for v, b, y in zip(x, bottom, s.y)})
        elif s.kind == "step":
            ax.step(x, list(s.y), where="mid", label=s.label)
        elif s.kind == "scatter":
            ax.plot(x, list(s.y), "o", label=s.label, markersize=5)
        elif s.kind == "linepoints":
            ax.plot(x, list(s.y), "o-", linewidth=1, markersize=5, label=s.label)
        elif s.kind == "hline":
            ax.axhline(s.y[0], linestyle="--", linewidth=1, label=s.label, color=f"C{len(ax.lines) + 1}")
        else:
            ax.plot(x, list(s.y), linewidth=1, label=s.label)
    for i, ax in enumerate(axes):
        for b in spec.vlines:
            ax.axvline(b, color="0.6", linestyle=":", linewidth=0.8)
        if i < len(spec.ylabels):
            ax.set_ylabel(spec.ylabels[i])
        if i < len(spec.logy) and spec.logy[i]:
            ax.set_yscale("log")
        if spec.logx:
            ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
        if any(s.panel == i for s in spec.series):
            ax.legend(fontsize=8, loc="best")
    for x, y, text in spec.marks:
        axes[0].plot([x], [y], "v", color="C3", markersize=8)
        axes[0].annotate(text, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    if spec.xticklabels:
        axes[-1].set_xticks(range(len(spec.xticklabels)), list(spec.xticklabels), rotation=90, fontsize=TICK_PT)
    axes[-1].set_xlabel(spec.xlabel)
    axes[0].set_title(_title_lines(spec), fontsize=TITLE_PT)
    _margins(fig, spec, panels)
    if spec.notes:
        _annotate_points(fig, axes[0], spec.notes)
    return fig


NOTE_PT = 7  # the point labels' size
NOTE_RADII = (3, 10, 18, 28, 40, 55)  # pixels from its point a label may be moved to, nearest first
NOTE_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (0, 1), (0, -1), (1, 0), (-1, 0))


def place_labels(anchors: Sequence[tuple[float, float]], sizes: Sequence[tuple[float, float]],
                 area: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    """Where each label goes, as the offset in pixels of its lower-left corner from its anchor (a
    point on the plot): the nearest of the candidate places (``NOTE_RADII`` x ``NOTE_DIRECTIONS``)
    where its box (``sizes``: width, height) overlaps no label placed before it and no anchor, and
    stays inside ``area`` (x0, y0, x1, y1). Labels are placed left to right; one with no free
    place keeps the nearest (up and right of its point)."""
    pad = 1.0
    points = [(x - 3, y - 3, x + 3, y + 3) for x, y in anchors]  # the markers themselves
    placed: list[tuple[float, float, float, float]] = []
    out: list[tuple[float, float]] = [(NOTE_RADII[0], NOTE_RADII[0])] * len(anchors)

    def free(box: tuple[float, float, float, float]) -> bool:
        x0, y0, x1, y1 = box
        if x0 < area[0] or y0 < area[1] or x1 > area[2] or y1 > area[3]:
            return False
        return not any(x0 < b[2] + pad and b[0] - pad < x1 and y0 < b[3] + pad and b[1] - pad < y1
                       for b in (*placed, *points))

    for i in sorted(range(len(anchors)), key=lambda k: anchors[k]):
        (x, y), (w, h) = anchors[i], sizes[i]
        for r in NOTE_RADII:
            for dx, dy in NOTE_DIRECTIONS:
                # a direction's offset of the box's corner: to the right, the box starts r past the point;
                # to the left it ends r before it; above or below likewise; centred where the direction is 0
                ox = r if dx > 0 else (-r - w if dx < 0 else -w / 2)
                oy = r if dy > 0 else (-r - h if dy < 0 else -h / 2)
                box = (x + ox, y + oy, x + ox + w, y + oy + h)
                if free(box):
                    out[i] = (ox, oy)
                    placed.append(box)
                    break
            else:
                continue
            break
        else:
            ox, oy = out[i]
            placed.append((x + ox, y + oy, x + ox + w, y + oy + h))
    return out


def _annotate_points(fig: Any, ax: Any, notes: Sequence[tuple[float, float, str]]) -> None:
    """Each note's text beside its point, placed so that no two overlap (``place_labels``), with a
    thin line back to the point when it had to move away from it. Sizes are estimated (0.6 em a
    character), not measured: measuring every text costs as much as drawing it."""
    ax.autoscale_view()
    scale = fig.dpi / 72
    anchors = [tuple(ax.transData.transform((x, y))) for x, y, _ in notes]
    sizes = [(0.6 * NOTE_PT * scale * len(text), 1.2 * NOTE_PT * scale) for _, _, text in notes]
    box = ax.get_window_extent()
    offsets = place_labels(anchors, sizes, (box.x0, box.y0, box.x1, box.y1))
    for (x, y, text), (ox, oy), (w, h) in zip(notes, offsets, sizes):
        gap_x, gap_y = max(ox, 0, -(ox + w)), max(oy, 0, -(oy + h))  # from the point to the nearest edge
        far = (gap_x ** 2 + gap_y ** 2) ** 0.5 > 1.5 * NOTE_RADII[1]  # moved past the second ring: a leader
        # offsets in points (the figure's pixels are 72 / dpi points each); the text's anchor its lower left
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(ox / scale, oy / scale), fontsize=NOTE_PT,
                    ha="left", va="bottom",
                    arrowprops={"arrowstyle": "-", "color": "0.6", "linewidth": 0.5} if far else None)


# Margins in inches, from what the figure holds (a layout engine measures every text of the figure
# by drawing it, which costs as much as the drawing itself: a third of `archlab report`'s time)
TICKS_IN = 0.55  # tick labels (a log axis: 10 to a power) and the axis label beside them
LEFT_IN = 0.9  # the y tick labels, their offset (1e8) and the y label
RIGHT_IN = 0.2
TITLE_IN = 0.4
GAP_IN = 0.45  # between stacked panels: the upper one's (hidden) x tick labels
TICK_PT = 8  # the rotated layer names under the bars: legible; the page shows at most as many as fit
CHAR_IN = 0.6 * TICK_PT / 72  # one character of a rotated tick label: 0.6 em wide, 72 points an inch


TITLE_PT = 12  # matplotlib's own title size
TITLE_CHAR_IN = 0.6 * TITLE_PT / 72  # one character of the title, wide (0.6 em) to be safe


def _title_lines(spec: FigureSpec) -> str:
    """The title wrapped to the figure's width (one long line runs past both edges, centred)."""
    import textwrap

    return textwrap.fill(spec.title, max(20, int((spec.size[0] - 0.2) / TITLE_CHAR_IN)))


def _margins(fig: Any, spec: FigureSpec, panels: int) -> None:
    """The figure's margins, as fractions of its size, from the inches above."""
    width, height = spec.size
    below = TICKS_IN + (max(map(len, spec.xticklabels)) * CHAR_IN if spec.xticklabels else 0.0)
    panel_in = max(height / panels - GAP_IN, GAP_IN)  # subplots_adjust's hspace is a fraction of a panel's height
    title_in = TITLE_IN + (_title_lines(spec).count("\n")) * 1.25 * TITLE_PT / 72
    fig.subplots_adjust(left=LEFT_IN / width, right=1 - RIGHT_IN / width, top=1 - title_in / height,
                        bottom=below / height, hspace=GAP_IN / panel_in)


def series_of(fig: Any) -> dict[str, list[float]]:
    """What a drawn figure plots, read back from its artists: label -> y values (bars' heights,
    lines' y data), for the tests that compare a figure with the computed numbers."""
    out: dict[str, list[float]] = {}
    for ax in fig.axes:
        for container in ax.containers:
            out[container.get_label()] = [float(p.get_height()) for p in container.patches]
        for line in ax.lines:
            label = line.get_label()
            if not label.startswith("_"):
                out[label] = [float(v) for v in line.get_ydata()]
    return out


def to_svg(fig: Any) -> str:
    """Deterministic SVG text (the same bytes for the same figure): a fixed hash salt for the
    ids matplotlib makes, no date in the metadata, text kept as text."""
    matplotlib, _ = matplotlib_figure()
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "archlab", "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def svg_of(spec: FigureSpec) -> str:
    return to_svg(draw(spec))
