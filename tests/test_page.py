"""archlab report: the page's figures hold the computed numbers (read back from the figure
objects, not from pixels); the page is deterministic, self-contained, written atomically."""

import os

import pytest

import archlab
from archlab.analysis.memory import inference_peak
from archlab.analysis.page import leaves, live_timeline, stage_boundaries
from archlab.api.page import page_data
from archlab.trace.run import trace_model
from archlab.report import page
from archlab.report.figures import draw, series_of, svg_of
from conftest import assert_one_line_error


@pytest.fixture(scope="module")
def mnv2():
    return page_data("mobilenet_v2")


def _specs(d):
    return {s.key: s for s in page.figure_specs(d.count, d.rf, d.memory, d.timeline, d.input_shape)}


def test_cost_bars_are_the_layers_macs_and_params(mnv2):
    spec = _specs(mnv2)["cost"]
    layers = [mnv2.count.layers[i] for i in leaves([layer.name for layer in mnv2.count.layers])]
    assert spec.series_by_label()["MACs"] == tuple(layer.macs for layer in layers)
    assert spec.series_by_label()["params"] == tuple(layer.params for layer in layers)
    # the bars add up to the model's totals: nothing counted twice, nothing left out
    assert sum(spec.series_by_label()["MACs"]) == mnv2.count.macs
    assert sum(spec.series_by_label()["params"]) == mnv2.count.params
    assert spec.vlines == tuple(b - 0.5 for b in mnv2.stage_boundaries)
    drawn = series_of(draw(spec))
    assert drawn["MACs"] == [float(v) for v in spec.series_by_label()["MACs"]]
    assert drawn["params"] == [float(v) for v in spec.series_by_label()["params"]]


def test_rf_figure_is_the_receptive_field_against_the_input_size(mnv2):
    spec = _specs(mnv2)["rf"]
    rows = [mnv2.rf.layers[i] for i in leaves([r["name"] for r in mnv2.rf.layers])]
    rows = [r for r in rows if r["rf"] is not None]  # past the global pooling there is no spatial field
    assert len(rows) >= 8
    by_label = spec.series_by_label()
    assert by_label["receptive field (pixels)"] == tuple(r["rf"] for r in rows)
    assert by_label["input size (224 pixels)"] == (224,)
    drawn = series_of(draw(spec))
    assert drawn["receptive field (pixels)"] == [float(r["rf"]) for r in rows]
    assert drawn["input size (224 pixels)"] == [224.0, 224.0]


def test_memory_timeline_peaks_at_the_inference_peak_and_draws_mg(mnv2):
    spec = _specs(mnv2)["memory"]
    m = mnv2.memory
    live = [p.live_bytes for p in mnv2.timeline]
    assert max(live) == m.activation_peak_bytes
    # the axis in the legend's unit: MobileNetV2's peak at 224 is some MiB, so MiB ticks (no 1e7 offset)
    assert spec.ylabels == ("MiB (fp32)",) and 2**20 <= m.activation_peak_bytes < 2**30
    (x, y, text), = spec.marks
    assert y == m.activation_peak_bytes / 2**20 and live[x] == m.activation_peak_bytes
    fig = draw(spec)
    drawn = series_of(fig)
    assert drawn["live activations (MiB, fp32)"] == [v / 2**20 for v in live]
    mg = [v for k, v in drawn.items() if k.startswith("M(G)")]
    fused = [v for k, v in drawn.items() if k.startswith("fused M(G)")]
    assert mg == [[m.mg_bytes / 2**20] * 2] and fused == [[m.mg_fused_bytes / 2**20] * 2]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()  # the offset text is set when drawn
    assert all(ax.yaxis.get_offset_text().get_text() == "" for ax in fig.axes)
    assert m.mg_fused_bytes < m.mg_bytes  # MobileNetV2's argument, visible


@pytest.mark.parametrize("model", ["googlenet", "densenet121", "unet", "resnet18"])
def test_timeline_maximum_is_the_inference_peak(model):
    trace, _ = trace_model(model)
    timeline = live_timeline(trace, 2)
    assert max(p.live_bytes for p in timeline) == inference_peak(trace, 2).bytes
    assert len(timeline) == len(trace.ops)


def test_stage_boundaries():
    names = ["conv1", "bn1", "maxpool", "layer1.0", "layer1.1", "layer2.0", "avgpool", "fc"]
    assert stage_boundaries(names) == (3, 5, 6)
    # with the output shapes, a stage starts where the resolution changes (fc's 2-d output has none)
    shapes = [(1, 64, 112, 112), (1, 64, 112, 112), (1, 64, 56, 56), (1, 64, 56, 56), (1, 64, 56, 56),
              (1, 128, 28, 28), (1, 512, 1, 1), (1, 1000)]
    assert stage_boundaries(names, shapes) == (2, 5, 6)


def test_unet_stages_are_its_resolutions_not_its_modules():
    import archlab

    r = archlab.count("unet")  # its paper's 572x572 (a meta trace: nothing runs)
    names = [layer.name for layer in r.layers]
    keep = leaves(names)
    shapes = [r.layers[i].output_shape for i in keep]
    bounds = stage_boundaries([names[i] for i in keep], shapes)
    hw = [tuple(s[2:]) for s in shapes]
    assert all(max(hw[i][0], hw[i - 1][0]) >= 1.5 * min(hw[i][0], hw[i - 1][0]) for i in bounds)
    # U-Net: 4 poolings down, 4 upsamplings back: 8 changes of resolution, far fewer than its modules
    assert len(bounds) == 8 < len(stage_boundaries([names[i] for i in keep]))
    assert leaves(["features", "features.0", "features.1", "classifier"]) == [1, 2, 3]


def test_page_is_deterministic_self_contained_and_small():
    d = page_data("resnet152")
    one = page.render_html(d.model, d.input_shape, d.count, d.rf, d.memory, d.timeline)
    two = page.render_html(d.model, d.input_shape, d.count, d.rf, d.memory, d.timeline)
    assert one == two
    assert len(one.encode()) < 2 * 1024 * 1024
    for key in ("cost", "rf", "memory"):
        assert f"<figure id='fig-{key}'><svg" in one
    assert "<script" not in one
    # no network: the only URLs are the SVG namespaces
    for url in ("http://", "https://"):
        for i in range(len(one)):
            i = one.find(url, i)
            if i < 0:
                break
            assert one[i:].startswith(("http://www.w3.org/", "http://purl.org/", "http://creativecommons.org/")), \
                one[i:i + 80]
            i += 1
    for needle in (f"{d.count.params:,}", f"{d.count.macs:,}", f"{d.count.flops:,}", "count complete"):
        assert needle in one


def test_svg_is_the_same_bytes_twice(mnv2):
    spec = _specs(mnv2)["cost"]
    assert svg_of(spec) == svg_of(spec)


def test_cli_report_writes_the_page(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("report", "lenet5")
    assert r.code == 0 and r.out == "wrote reports/lenet5.html\n"
    text = (tmp_path / "reports" / "lenet5.html").read_text()
    assert text.startswith("<!doctype html>") and text.count("<figure id='fig-") >= 3
    assert "<h2>Architecture</h2>" in text  # the diagram: drawn by Graphviz, or its Mermaid source
    r = cli("report", "lenet5", "-o", "p.md")
    assert r.code == 0 and (tmp_path / "p.md").read_text().startswith("# lenet5")
    assert [f for f in os.listdir(tmp_path / "reports") if f.startswith(".")] == []  # no temporary file left


def test_cli_report_errors_leave_no_folder(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(cli("report", "nosuchnet"), "unknown model 'nosuchnet'")
    assert not (tmp_path / "reports").exists()
    assert_one_line_error(cli("report", "lenet5", "-o", "missing/p.html"), "does not exist")
    assert_one_line_error(cli("report", "lenet5", "--depth", "0"), "--depth")


def test_analyze_to_html_and_notebook_repr():
    r = archlab.analyze("lenet5")
    text = r.to_html()
    assert text.startswith("<!doctype html>") and text.count("<figure id='fig-") == 3
    assert "<svg" in r._repr_html_()


def test_page_without_graphviz_shows_the_mermaid_source(monkeypatch):
    import shutil

    d = page_data("lenet5")
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    static = archlab.Model("lenet5").diagram(1)  # one depth, given as a Diagram: Graphviz's SVG, or Mermaid
    text = page.render_html(d.model, d.input_shape, d.count, d.rf, d.memory, d.timeline, static)
    assert "flowchart TB" in text and "apt-get install graphviz" in text and "fig-diagram" not in text
    text = page.render_html(d.model, d.input_shape, d.count, d.rf, d.memory, d.timeline, d.diagram)
    assert "fig-diagram" in text and "apt-get install graphviz" not in text  # the interactive one needs nothing


def test_report_page_architecture_opens_at_the_papers_blocks():
    from archlab.report import diagram as diagram_report

    assert diagram_report.blocks_depth(archlab.Model("resnet152").diagram_tree()) == 2  # the Bottlenecks
    assert diagram_report.blocks_depth(archlab.Model("mobilenet_v2").diagram_tree()) == 3  # inverted residuals
    assert diagram_report.blocks_depth(archlab.Model("googlenet").diagram_tree()) == 1  # the Inception modules
    text = archlab.Model("resnet152").report()
    assert "fig-diagram" in text and "at depth 2 (repeated blocks collapsed)" in text
    assert len(text.encode("utf-8")) < 1_000_000


def test_latency_figure_is_each_kinds_share_of_time_beside_its_share_of_macs():
    from archlab.measure.profile import by_kind

    d = page_data("lenet5", latency=True, min_time=0.05)
    spec = {s.key: s for s in page.figure_specs(d.count, d.rf, d.memory, d.timeline, d.input_shape,
                                                d.latency)}["latency"]
    kinds = by_kind(d.latency.layers)
    assert spec.xticklabels == tuple(k["kind"] for k in kinds)
    assert spec.series_by_label()["share of measured time"] == tuple(100 * k["time_share"] for k in kinds)
    assert spec.series_by_label()["share of MACs"] == tuple(100 * k["mac_share"] for k in kinds)
    # the MACs shares are the count's, per layer kind: they add up to the whole forward
    assert sum(spec.series_by_label()["share of MACs"]) == pytest.approx(100.0)
    assert series_of(draw(spec))["share of MACs"] == [float(v) for v in spec.series_by_label()["share of MACs"]]
    # without --latency there is no such figure
    assert "latency" not in _specs(d)


def test_cli_report_latency_and_its_bad_inputs(cli, tmp_path):
    out = tmp_path / "l.html"
    r = cli("report", "lenet5", "--latency", "--min-time", "0.05", "-o", str(out))
    assert r.code == 0, r.err
    assert "id='fig-latency'" in out.read_text()
    assert_one_line_error(cli("report", "lenet5", "--min-time", "0.05", "-o", str(tmp_path / "x.html")),
                          "--min-time", "--latency")
    assert not (tmp_path / "x.html").exists()
    from torch import nn

    with pytest.raises(archlab.UserError, match="registered model"):
        page_data(nn.Sequential(nn.Conv2d(3, 4, 3)), input_size=(3, 8, 8), latency=True)


def test_cli_report_where_reports_cannot_be_created_is_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").write_text("a file, not a folder")
    assert_one_line_error(cli("report", "lenet5"), "'reports' is a file", "-o PATH")
    assert (tmp_path / "reports").read_text() == "a file, not a folder"
    (tmp_path / "reports").unlink()

    def read_only(path, exist_ok=False):  # what a read-only working folder gives (root would write anyway)
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(os, "makedirs", read_only)
    assert_one_line_error(cli("report", "lenet5"), "cannot create the folder reports/", "Permission denied")


def test_report_help_says_what_depth_and_output_do(cli):
    text = " ".join(cli("report", "--help").out.split())
    assert "0 = the summary only" not in text  # refused by report
    assert "at least 1" in text
    assert "instead of stdout" not in text  # a report is always a file
    assert "default: reports/MODEL.html" in text
    assert cli("report", "lenet5", "--depth", "0").code == 2


def test_a_long_figure_title_stays_inside_the_figure():
    from archlab.report.figures import FigureSpec, Series

    title = ("Measured time per layer kind beside its share of MACs (cpu, fp32, batch 1; median forward "
             "12.3 ms; per module, from per-op timing)")  # the latency figure's, as long
    fig = draw(FigureSpec(key="t", title=title, xlabel="layer kind", ylabels=("share of time (%)",),
                          series=(Series("time", (1.0, 2.0), kind="bar"),)))
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    box = fig.bbox
    text = fig.axes[0].title
    extent = text.get_window_extent(renderer)
    assert " ".join(text.get_text().split()) == title
    assert box.x0 <= extent.x0 and extent.x1 <= box.x1 and extent.y1 <= box.y1, (extent, box)


def test_layer_names_under_the_bars_are_legible_and_do_not_overlap():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from archlab.report.figures import FigureSpec, Series
    from archlab.report.page import MAX_TICK_LABELS

    names = tuple(f"layer{i // 4}.{i % 4}.conv" for i in range(MAX_TICK_LABELS))
    fig = draw(FigureSpec(key="t", title="t", xlabel="layer", ylabels=("MACs",), size=(9.0, 5.5),
                          series=(Series("MACs", tuple(range(len(names))), kind="bar"),), xticklabels=names))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    labels = [t for t in fig.axes[-1].get_xticklabels() if t.get_text()]
    assert len(labels) == MAX_TICK_LABELS and all(t.get_fontsize() >= 8 for t in labels)
    boxes = [t.get_window_extent(canvas.get_renderer()) for t in labels]
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), "neighbouring names overlap"
    assert all(fig.bbox.y0 <= b.y0 for b in boxes), "a name runs off the bottom"


# --- the effective receptive field's figures (report --effective, rf --effective --plot) ---------------------


@pytest.fixture(scope="module")
def mnv2_erf():
    # real forwards and backwards: a small resolution, the weights as built (one build), few samples
    return archlab.effective_receptive_field("mobilenet_v2@res=64", samples=4, weights="given")


def test_erf_heatmaps_are_the_measured_maps_at_each_stage_with_the_exact_window_on_each(mnv2_erf):
    import numpy as np

    from archlab.report import erf_figures

    layers = erf_figures.plotted_layers(mnv2_erf)
    assert "features" not in [layer.name for layer in layers]  # the container beside its parts is left out
    # a stage is a run of layers at one output resolution: its last layer is drawn
    hw = [layer.out_shape[-2:] for layer in layers]
    expected = [layer.name for i, layer in enumerate(layers) if i == len(layers) - 1 or hw[i + 1] != hw[i]]
    assert [layer.name for layer in erf_figures.stage_layers(mnv2_erf)] == expected and len(expected) >= 4
    drawn = erf_figures.panels_of(erf_figures.draw(mnv2_erf, ("heatmaps",)))
    by_name = {layer.name: layer for layer in layers}
    assert [p["title"].split("\n")[0] for p in drawn] == expected
    for p in drawn:
        layer = by_name[p["title"].split("\n")[0]]
        heat = layer.heatmap
        assert np.array_equal(p["image"], heat / heat.max())  # the map itself, divided by its maximum
        (window_label, wx, wy, ww, wh), (erf_label, ex, ey, es, es_h) = p["squares"]
        y0, y1, x0, x1 = layer.window
        assert window_label.startswith("theoretical field") and erf_label.startswith("ERF95")
        assert (wx, wy, ww, wh) == (x0 - 0.5, y0 - 0.5, x1 - x0 + 1, y1 - y0 + 1)
        assert f"ERF95 {layer.metrics.erf95} px; field {layer.rf[0]} px" in p["title"]
        # the drawn squares checked against the map, independently of the metrics: every pixel with a
        # gradient lies inside the solid square (the exact field bounds the gradient's support) ...
        ys, xs = np.nonzero(heat)
        assert ((xs > wx) & (xs < wx + ww) & (ys > wy) & (ys < wy + wh)).all()
        # ... and the dashed square holds 95% of the mass (pixels whose centres lie inside it), one pixel less does not
        assert es == es_h == layer.metrics.erf95

        def mass_inside(side):
            cy, cx = layer.centre
            rows, cols = np.indices(heat.shape)
            return heat[(np.abs(rows - cy) < side / 2) & (np.abs(cols - cx) < side / 2)].sum() / heat.sum()

        assert (ex, ey) == (layer.centre[1] - es / 2, layer.centre[0] - es / 2)
        assert mass_inside(es) >= 0.95 > mass_inside(es - 1)


def test_erf_depth_figure_is_erf95_beside_the_exact_field_per_layer(mnv2_erf):
    from archlab.report import erf_figures
    from archlab.report.figures import series_of

    layers = erf_figures.plotted_layers(mnv2_erf)
    spec = erf_figures.depth_spec(mnv2_erf)
    exact = {r["name"]: r["rf"] for r in archlab.receptive_field("mobilenet_v2@res=64").layers}
    by_label = spec.series_by_label()
    assert by_label["ERF95 (pixels)"] == tuple(layer.metrics.erf95 for layer in layers)
    # the theoretical field is archlab rf's (the same uniform field for every unit of these layers)
    assert by_label["theoretical field (pixels)"] == tuple(float(exact[layer.name]) for layer in layers)
    assert by_label["input size (64 pixels)"] == (64,)
    assert spec.xticklabels == tuple(layer.name for layer in layers)
    drawn = series_of(erf_figures.draw(mnv2_erf, ("depth",)))
    assert drawn["ERF95 (pixels)"] == [float(layer.metrics.erf95) for layer in layers]
    assert drawn["theoretical field (pixels)"] == [float(exact[layer.name]) for layer in layers]
    # Luo et al.'s point, visible: deep in the network the ERF is well inside the theoretical field
    assert layers[-1].metrics.erf95 < exact[layers[-1].name] / 2


def test_erf_heatmap_view_holds_the_input_and_the_whole_window():
    import numpy as np

    from archlab.report.erf_figures import HeatmapPanel, view_of

    inside = HeatmapPanel("a", (3, 3), (3, 5, 3, 5), (4.0, 4.0), 3, np.zeros((10, 10)))
    assert view_of(inside) == ((-0.5, 9.5), (-0.5, 9.5))  # the input alone, no margin
    past = HeatmapPanel("b", (21, 21), (-5, 15, -5, 15), (5.0, 5.0), 9, np.zeros((10, 10)))
    (top, bottom), (left, right) = view_of(past)
    assert top < -5.5 and bottom > 15.5 and left < -5.5 and right > 15.5  # a margin past the window's edges
    assert bottom - top == right - left  # square: a pixel as wide as it is tall


def test_report_effective_adds_the_erf_figures_and_says_what_ran(cli, tmp_path, monkeypatch):
    import archlab.measure.erf as measure_erf

    out = tmp_path / "p.html"
    r = cli("report", "lenet5", "--effective", "--samples", "2", "-o", str(out))
    assert r.code == 0, r.err
    text = out.read_text()
    assert "<figure id='fig-erf'><svg" in text and "<figure id='fig-erf-depth'><svg" in text
    assert "from real forwards and backwards of the model on 2 random inputs (init weights, cpu)" in text
    md = tmp_path / "p.md"
    assert cli("report", "lenet5", "--effective", "--samples", "2", "-o", str(md)).code == 0
    assert md.read_text().count("data:image/svg+xml;base64,") == 5  # cost, rf, memory, heatmaps, depth
    # in Python, the same page (the default samples: the sentence names them)
    from archlab.measure.erf import DEFAULT_SAMPLES

    page_md = archlab.Model("lenet5").report(format="md", effective=True)
    assert page_md.count("data:image/svg+xml;base64,") == 5
    assert f"on {DEFAULT_SAMPLES} random inputs (init weights, cpu)" in page_md
    # the per-layer table gets ERF95 beside the exact field, for each layer measured ('-' for the others)
    header = next(line for line in page_md.splitlines() if line.startswith("| layer |"))
    assert header.endswith("| receptive field | ERF95 (pixels) |")
    erf = archlab.effective_receptive_field("lenet5")
    rows = {line.split(" | ")[0].lstrip("| "): line.rstrip(" |").rsplit(" | ", 1)[-1]
            for line in page_md.splitlines() if line.startswith("| ") and not line.startswith("| layer |")}
    measured = {layer.name: str(layer.metrics.erf95) for layer in erf.layers}
    assert measured and all(rows[name] == value for name, value in measured.items())
    assert all(value == "-" for name, value in rows.items() if name not in measured and name in
               {layer.name for layer in archlab.count("lenet5").layers})
    # without --effective the page runs nothing: no gradient map is made, no ERF figure, no such sentence

    def refuse(*args, **kwargs):
        raise AssertionError("the report ran the model without --effective")

    monkeypatch.setattr(measure_erf, "gradient_maps", refuse)
    plain = tmp_path / "plain.html"
    assert cli("report", "lenet5", "-o", str(plain)).code == 0
    assert "fig-erf" not in plain.read_text() and "real forwards" not in plain.read_text()


@pytest.mark.parametrize("args,needles", [
    (("--samples", "4"), ("--samples", "add --effective")),
    (("--effective", "--samples", "0"), ("--samples must be a whole number", "1 or more")),
])
def test_report_effective_bad_inputs_are_one_line(cli, tmp_path, args, needles):
    assert_one_line_error(cli("report", "lenet5", *args, "-o", str(tmp_path / "x.html")), *needles)


def test_rf_effective_plot_draws_the_computed_result_to_svg_or_png(cli, tmp_path):
    from archlab.report import erf_figures

    args = ("rf", "lenet5", "--effective", "--samples", "2")
    svg = tmp_path / "erf.svg"
    r = cli(*args, "--plot", str(svg))
    assert r.code == 0, r.err
    assert r.err.strip().splitlines()[-1] == f"archlab: wrote {svg}" and "wrote" not in r.out
    # the file is the figure of the result the table shows: the same seeds give the same result, the same bytes
    result = archlab.effective_receptive_field("lenet5", samples=2)
    assert svg.read_text() == erf_figures.image(result, "x.svg")
    assert svg.read_text().startswith("<svg") and "ERF95" in svg.read_text()
    png = tmp_path / "erf.PNG"
    assert cli(*args, "--plot", str(png)).code == 0
    assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("args,needles", [
    (("--plot", "x.svg"), ("--plot draws the effective receptive field", "add --effective")),
    (("--effective", "--plot", "x.pdf"), ("--plot writes a .png or .svg file", "x.pdf")),
    (("--effective", "--plot", "/nonexistent-dir/x.png"), ("directory '/nonexistent-dir' does not exist",)),
])
def test_rf_plot_bad_inputs_are_one_line_before_anything_runs(cli, monkeypatch, args, needles):
    import archlab.measure.erf as measure_erf

    def refuse(*a, **k):
        raise AssertionError("ran the model before checking --plot")

    monkeypatch.setattr(measure_erf, "gradient_maps", refuse)
    assert_one_line_error(cli("rf", "lenet5", *args), *needles)


def test_rf_plot_into_a_directory_is_one_line(cli, tmp_path):
    folder = tmp_path / "d.svg"
    folder.mkdir()
    assert_one_line_error(cli("rf", "lenet5", "--effective", "--plot", str(folder)), "it is a directory")


# --- --training: one rank's training memory under every scheme, a stacked bar each ------------------


@pytest.fixture(scope="module")
def r18_training():
    return page_data("resnet18", res=64, batch=8, training=True, world_size=4, shard="zero2", optimizer="adam")


def test_training_figure_stacks_each_schemes_bill_up_to_its_peak(r18_training):
    from archlab.api.memory import training_memory
    from archlab.report.training_memory import RANK_STACK, STEP_EXCESS, rank_stack, training_section

    bills = r18_training.training
    assert [b.shard for b in bills] == ["none", "zero1", "zero2", "zero3", "fsdp"] and r18_training.shard == "zero2"
    for b in bills:  # each bar is the bill `archlab memory --training --world-size 4 --shard S` gives
        assert b == training_memory("resnet18", res=64, batch=8, world_size=4, shard=b.shard, optimizer="adam")
    spec, headers, rows, _ = training_section(list(bills), "zero2")
    factor = spec.extra["factor"]
    drawn = series_of(draw(spec))
    for label, key in RANK_STACK:
        if label in spec.series_by_label():
            assert spec.series_by_label()[label] == tuple(getattr(b, key) / factor for b in bills)
            assert drawn[label] == [float(getattr(b, key) / factor) for b in bills]
        else:  # left out of the legend only where it is 0 in every bar
            assert all(getattr(b, key) == 0 for b in bills)
    for b in bills:
        parts = dict(rank_stack(b))
        assert sum(parts.values()) == b.training_peak_bytes
        # the step's excess, from the bill's two branches: (activations + gathered + unit gradients, + the
        # buffers where they are transient: DDP's buckets stay for the whole run) against the optimizer step
        during = b.activation_peak_bytes + b.gathered_params_bytes + b.unit_gradients_bytes
        if b.shard not in ("none", "zero1"):
            during += b.comm_buffers_bytes
        assert parts[STEP_EXCESS] == max(0, b.optimizer_step_bytes - during)
    assert parts[STEP_EXCESS] == 0 and dict(rank_stack(bills[0]))[STEP_EXCESS] > 0  # adam's step: the larger
    assert [m[1] for m in spec.marks] == [b.training_peak_bytes / factor for b in bills]
    assert spec.xticklabels[2] == "zero2 (chosen)" and headers[3] == "zero2 (chosen)"


def test_cli_report_training_section_in_html_and_md(cli, tmp_path):
    from archlab.units import human_bytes

    args = ("report", "resnet18", "--res", "64", "--batch", "8", "--training", "--world-size", "4", "--shard",
            "zero3")
    r = cli(*args, "-o", str(tmp_path / "p.html"))
    assert r.code == 0, r.err
    text = (tmp_path / "p.html").read_text()
    from archlab.api.memory import training_memory

    peaks = [human_bytes(training_memory("resnet18", res=64, batch=8, world_size=4, shard=s).training_peak_bytes)
             for s in ("none", "zero1", "zero2", "zero3", "fsdp")]
    section = text[text.index("<h2>Training memory per rank</h2>"):]
    assert "<figure id='fig-training'><svg" in section and "<th>zero3 (chosen)</th>" in section
    assert "<td>training peak per rank</td>" + "".join(f"<td>{p}</td>" for p in peaks) in section
    import html.parser

    class Tags(html.parser.HTMLParser):  # the page's html stays balanced: every opened element closed
        def __init__(self):
            super().__init__()
            self.open = []

        def handle_starttag(self, tag, attrs):
            if tag not in ("meta", "br", "img", "path", "use", "stop", "rect", "circle", "line"):
                self.open.append(tag)

        def handle_endtag(self, tag):
            if self.open and self.open[-1] == tag:
                self.open.pop()

        def handle_startendtag(self, tag, attrs):
            pass

    tags = Tags()
    tags.feed(section[:section.index("<h2>", 5)])
    assert tags.open == []
    r = cli(*args, "-o", str(tmp_path / "p.md"))
    md = (tmp_path / "p.md").read_text()
    assert "## Training memory per rank" in md and "| per rank | none | zero1 | zero2 | zero3 (chosen) | fsdp |" in md
    assert "| training peak per rank | " + " | ".join(peaks) + " |" in md
    assert "bytes on the rank's device at fp32" in md
    plain = cli("report", "lenet5", "-o", str(tmp_path / "q.html"))
    assert plain.code == 0 and "Training memory" not in (tmp_path / "q.html").read_text()


@pytest.mark.parametrize("args, needles", [
    (("--shard", "zero2"), ("--shard", "add --training")),
    (("--world-size", "2"), ("--world-size", "add --training")),
    (("--optimizer", "adam"), ("--optimizer", "add --training")),
    (("--training", "--world-size", "3", "--batch", "4"), ("--world-size 3 does not divide", "--batch 3 or 6")),
    (("--training", "--world-size", "0"), ("--world-size must be a whole number",)),
    (("--training", "--shard", "zero9"), ("unknown --shard 'zero9'",)),
    (("--training", "--optimizer", "lion"), ("lion",)),
])
def test_cli_report_training_bad_inputs_are_one_line(cli, tmp_path, monkeypatch, args, needles):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(cli("report", "resnet18", "--res", "64", *args), *needles)
    assert not (tmp_path / "reports").exists()
