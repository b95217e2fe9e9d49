"""archlab list --format html: the zoo at a glance; the plotted points are the zoo's computed
params and MACs and the cited accuracies (read back from the figures)."""

import os

from archlab.analysis.accuracy import published_top1
from archlab.analysis.zoo import zoo_rows
from archlab.report.figures import draw, series_of
from archlab.report.zoo import zoo_figures


def test_zoo_figures_plot_the_computed_costs_and_the_cited_accuracies():
    rows = zoo_rows()
    accuracies = published_top1()
    cost, acc = zoo_figures(rows, accuracies)
    drawn = series_of(draw(cost))
    for family in {r["family"] for r in rows}:
        assert drawn[family] == [float(r["params"]) for r in rows if r["family"] == family]
    xs = {s.label: s.x for s in cost.series}
    assert sorted(x for v in xs.values() for x in v) == sorted(r["macs"] for r in rows)
    by_name = {r["name"]: r for r in rows}
    eff = [a for a in accuracies if a.model.startswith("efficientnet_b")]
    assert [a.model for a in eff] == [f"efficientnet_b{i}" for i in range(8)]
    drawn = series_of(draw(acc))
    assert drawn["EfficientNet B0-B7"] == [a.top1 for a in eff]
    assert {s.label: s.x for s in acc.series}["EfficientNet B0-B7"] == tuple(by_name[a.model]["macs"] for a in eff)
    assert drawn["other models"] == [a.top1 for a in accuracies if not a.model.startswith("efficientnet")]


def test_accuracies_are_cited():
    for a in published_top1():
        assert a.source and a.where.startswith("Table"), a
        assert 50 < a.top1 < 100


def test_zoo_html_is_up_to_date(cli):
    """reports/zoo.html is `archlab list --format html`; regenerate it with that command when this fails."""
    path = os.path.join(os.path.dirname(__file__), "..", "reports", "zoo.html")
    r = cli("list", "--format", "html")
    with open(path, encoding="utf-8") as f:
        committed = f.read()
    assert committed == r.out, "reports/zoo.html is out of date: run `archlab list --format html -o reports/zoo.html`"
    assert "<script" not in r.out and r.out.count("<figure id='fig-zoo-") == 2


def test_compare_html_draws_the_models_side_by_side(cli, tmp_path):
    from archlab.api.compare import compare_models
    from archlab.report.compare import compare_figure

    rows = compare_models(["lenet5", "resnet18"])
    fig = draw(compare_figure(rows))
    drawn = series_of(fig)
    assert drawn["params"] == [float(r.params) for r in rows]
    assert drawn["MACs"] == [float(r.macs) for r in rows]
    # resnet18's peak at 224 (fp32) is some MiB: the panel in MiB, as its label says
    assert drawn["activation peak (MiB)"] == [r.activation_peak_bytes / 2**20 for r in rows]
    # bars start at a true baseline: linear axes from 0, not a log axis's arbitrary floor
    assert [ax.get_yscale() for ax in fig.axes] == ["linear"] * 3
    assert all(ax.get_ylim()[0] == 0 for ax in fig.axes)
    r = cli("compare", "lenet5", "resnet18", "-f", "html", "-o", str(tmp_path / "c.html"))
    assert r.code == 0
    text = (tmp_path / "c.html").read_text()
    assert "<figure id='fig-compare'><svg" in text and f"{rows[1].macs:,}" in text


def test_the_accuracy_figures_labels_name_their_points_and_never_overlap():
    # issue 24 (low): the model names beside the points overlapped; measured here by matplotlib's own
    # renderer (the text boxes as drawn), not by the estimate the placement uses
    import itertools

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    rows = zoo_rows()
    by_name = {r["name"]: r for r in rows}
    _, acc = zoo_figures(rows, published_top1())
    fig = draw(acc)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # an annotation's text is placed when drawn
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    texts = list(ax.texts)
    # every label is a model's name, anchored at that model's computed MACs and cited top-1
    assert sorted(t.get_text() for t in texts) == sorted(name for _, _, name in acc.notes)
    for t in texts:
        assert t.xy == (by_name[t.get_text()]["macs"], next(a.top1 for a in published_top1()
                                                            if a.model == t.get_text()))
    boxes = [(t.get_text(), Text.get_window_extent(t, renderer)) for t in texts]
    assert [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)] == []
    frame = ax.get_window_extent(renderer)
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for _, b in boxes)


def test_place_labels_keeps_crowded_labels_apart():
    from archlab.report.figures import place_labels

    anchors = [(100.0 + 4 * i, 100.0 + 2 * i) for i in range(6)]  # six points a few pixels apart
    sizes = [(60.0, 9.0)] * 6
    offsets = place_labels(anchors, sizes, (0, 0, 400, 300))
    boxes = [(x + ox, y + oy, x + ox + w, y + oy + h) for (x, y), (ox, oy), (w, h) in zip(anchors, offsets, sizes)]
    for a, b in [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:]]:
        assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    assert all(0 <= b[0] and b[2] <= 400 and 0 <= b[1] and b[3] <= 300 for b in boxes)
