"""The generated pages in a real browser (headless Chromium, Debian's ``chromium`` package; .ci/run
installs it): no console error, no failed or outside request, no broken image, every figure
drawn with a non-zero size, a screenshot that is not blank -- with the page's scripts off, since
the pages must read without JavaScript (but for the interactive diagram, which its one inline
script draws). The interactive diagram is then worked through its own controls with scripts on."""

import io
import pathlib
import shutil

import pytest

from cdp import Browser, find_chromium, open_page

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (apt-get install -y chromium; .ci/run installs it): the pages "
           "could not be opened in a browser")


@pytest.fixture(scope="module")
def browser():
    b = Browser(CHROMIUM)
    yield b
    b.close()


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    from archlab.cli import main

    out = tmp_path_factory.mktemp("pages")
    made = {}
    for name, args in {"report": ["report", "mobilenet_v2"],
                       "efficientnet": ["efficientnet", "--phi", "1", "--report", "html"],
                       "compare": ["compare", "lenet5", "resnet18", "mobilenet_v2", "--format", "html"]}.items():
        path = out / f"{name}.html"
        assert main([*args, "-o", str(path)]) == 0
        made[name] = path
    return made


def _not_blank(png: bytes) -> float:
    """The spread of the screenshot's pixel values (0 for a blank page)."""
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
    return float(pixels[..., :3].std())


def _check(browser, path: pathlib.Path, figures: int) -> dict:
    seen = open_page(browser, path.as_uri())
    assert seen["errors"] == [], seen["errors"]
    assert seen["broken_images"] == []
    assert len(seen["figures"]) >= figures, seen["figures"]
    for fig in seen["figures"]:
        assert fig["width"] > 0 and fig["height"] > 0, fig
    assert seen["screenshot"].startswith(b"\x89PNG")
    assert _not_blank(seen["screenshot"]) > 0.01
    assert seen["text_length"] > 200
    return seen


def test_report_page_in_chromium(browser, pages):
    seen = _check(browser, pages["report"], 3)
    assert {f["id"] for f in seen["figures"]} >= {"fig-cost", "fig-rf", "fig-memory"}
    if shutil.which("dot"):
        assert "fig-diagram" in {f["id"] for f in seen["figures"]}
    assert all(f["tag"].lower() == "svg" for f in seen["figures"])


def test_report_page_with_the_effective_receptive_field_in_chromium(browser, tmp_path):
    """MobileNetV2's page with --effective (the issue's must-show): its ERF heatmaps and its figure against
    depth drawn beside the other figures (few samples: the drawing is what is checked here)."""
    from archlab.cli import main

    path = tmp_path / "mobilenet_v2-erf.html"
    assert main(["report", "mobilenet_v2", "--effective", "--samples", "4", "-o", str(path)]) == 0
    seen = _check(browser, path, 5)
    ids = [f["id"] for f in seen["figures"]]
    assert {"fig-cost", "fig-rf", "fig-memory", "fig-erf", "fig-erf-depth"} <= set(ids)
    heatmaps = next(f for f in seen["figures"] if f["id"] == "fig-erf")
    assert heatmaps["tag"].lower() == "svg" and heatmaps["height"] > 300  # rows of heatmaps, not a sliver


def test_efficientnet_page_in_chromium(browser, pages):
    seen = _check(browser, pages["efficientnet"], 1)
    assert [f["tag"].lower() for f in seen["figures"]] == ["img"]


def test_compare_page_in_chromium(browser, pages):
    seen = _check(browser, pages["compare"], 1)
    assert [f["id"] for f in seen["figures"]] == ["fig-compare"]


def test_zoo_page_in_chromium(browser):
    path = pathlib.Path(__file__).resolve().parents[1] / "reports" / "zoo.html"
    seen = _check(browser, path, 2)
    assert {f["id"] for f in seen["figures"]} == {"fig-zoo-cost", "fig-zoo-accuracy"}


def test_a_broken_page_is_caught(browser, tmp_path):
    """The check itself: a missing image and an outside request are reported."""
    page = tmp_path / "bad.html"
    page.write_text("<!doctype html><html><body><p>x</p><img alt='gone' src='missing.png'>"
                    "<img alt='far' src='http://example.invalid/x.png'></body></html>")
    seen = open_page(browser, page.as_uri())
    assert seen["broken_images"], seen
    assert any("request" in e or "log" in e for e in seen["errors"]), seen["errors"]


# --- the interactive diagram (archlab diagram --format html), its own controls worked in the browser ---------------

SHOWN = """[...document.querySelectorAll('g.box')].map(g => ({id: +g.dataset.id, kind: g.dataset.kind,
    name: g.dataset.name, macs: +g.dataset.macs, params: +g.dataset.params,
    text: [...g.querySelectorAll(':scope > text')].map(t => t.textContent)}))"""


def _click(tab, name, control):
    """Click a shown box's own + (expand) or − (collapse into its parent) control."""
    found = tab.evaluate(f"""(() => {{
        const g = [...document.querySelectorAll('g.box')].find(g => g.dataset.name === {name!r});
        const c = g && g.querySelector('.ctl.{control}');
        if (!c) return false;
        c.dispatchEvent(new MouseEvent('click', {{bubbles: true}}));
        return true; }})()""")
    assert found, (name, control)
    return tab.evaluate(SHOWN)


def _rows(model):
    return {layer.name: layer for layer in archlab_count(model).layers}


def archlab_count(model):
    from archlab.api.count import count

    return count(model, depth=10)


def _check_numbers(shown, rows):
    """Every module box's MACs and params equal archlab count's row of that module; a collapsed run's,
    the sums of its blocks' rows."""
    from archlab.units import human

    checked = 0
    for box in shown:
        if box["kind"] == "module":
            members = [box["name"]]
        elif box["kind"] == "repeat":
            head, _, last = box["name"].rpartition("-")
            stage, _, first = head.rpartition(".")
            members = [f"{stage}.{k}" for k in range(int(first), int(last) + 1)]
        else:
            continue
        macs, params = sum(rows[m].macs for m in members), sum(rows[m].params for m in members)
        assert (box["macs"], box["params"]) == (macs, params), box
        assert box["text"][2] == f"params {human(params)} · {human(macs, 'MACs')}", box
        checked += 1
    return checked


def _shot(tab, name, focus):
    """Screenshots for the docs, where ARCHLAB_SCREENSHOTS names a folder (docs/ when they are remade),
    the box named ``focus`` scrolled into view."""
    import os

    tab.evaluate(f"[...document.querySelectorAll('g.box')].find(g => g.dataset.name === {focus!r})"
                 ".scrollIntoView({block: 'center', inline: 'center'})")

    png = tab.screenshot()
    assert png.startswith(b"\x89PNG") and _not_blank(png) > 0.01
    folder = os.environ.get("ARCHLAB_SCREENSHOTS")
    if folder:
        pathlib.Path(folder, name).write_bytes(png)


@pytest.fixture(scope="module")
def diagrams(tmp_path_factory):
    from archlab.cli import main

    out = tmp_path_factory.mktemp("diagrams")
    made = {}
    for model, depth in (("resnet50", 2), ("googlenet", 1), ("unet", 1)):
        made[model] = out / f"{model}.html"
        assert main(["diagram", model, "--depth", str(depth), "--format", "html", "-o", str(made[model])]) == 0
    return made


def test_resnet50_diagram_expands_a_collapsed_block_down_to_ops_and_back(browser, diagrams):
    from cdp import Tab

    rows = _rows("resnet50")
    tab = Tab(browser, diagrams["resnet50"].as_uri())
    try:
        first = tab.evaluate(SHOWN)
        names = [b["name"] for b in first]
        assert "layer3.1-5" in names and "layer3.0" in names and len(first) == 16  # 14 boxes, input, output
        assert _check_numbers(first, rows) == 14
        shown = _click(tab, "layer3.1-5", "expand")  # the collapsed run: its five blocks
        assert [b["name"] for b in shown if b["name"].startswith("layer3.")] == [f"layer3.{k}" for k in range(6)]
        assert _check_numbers(shown, rows) == 18
        shown = _click(tab, "layer3.2", "expand")  # a block: its modules and its own add
        inside = [b for b in shown if b["name"].startswith("layer3.2.")]
        assert [b["name"] for b in inside] == [name for name in rows if name.startswith("layer3.2.")]  # 9, in order
        assert [b["name"] for b in shown if b["kind"] == "op"] == ["add"]  # the residual merge
        _check_numbers(shown, rows)
        shown = _click(tab, "layer3.2.conv2", "expand")  # a module down to its single op
        conv = [b for b in shown if b["kind"] == "op" and b["name"] == "convolution"]
        assert len(conv) == 1 and conv[0]["macs"] == rows["layer3.2.conv2"].macs
        _shot(tab, "diagram-resnet50.png", "layer3.2.bn2")
        shown = _click(tab, "convolution", "collapse")  # and back: the op into its conv, the conv into its block
        assert "layer3.2.conv2" in [b["name"] for b in shown]
        shown = _click(tab, "layer3.2.conv2", "collapse")
        assert "layer3.2" in [b["name"] for b in shown]
        shown = _click(tab, "layer3.2", "collapse")  # the block into its stage's run collapses the run too
        assert shown == first
        assert tab.errors() == []
    finally:
        tab.close()


def test_googlenet_diagram_opens_an_inception_module_down_to_ops(browser, diagrams):
    from cdp import Tab

    rows = _rows("googlenet")
    tab = Tab(browser, diagrams["googlenet"].as_uri())
    try:
        first = tab.evaluate(SHOWN)
        assert "inception4a" in [b["name"] for b in first] and _check_numbers(first, rows) == len(first) - 2
        shown = _click(tab, "inception4a", "expand")  # four branches and their concatenation
        assert [b["name"] for b in shown if b["name"].startswith("inception4a.")] == \
            [f"inception4a.branch{k}" for k in range(1, 5)]
        assert [b["name"] for b in shown].count("cat") == 1
        shown = _click(tab, "inception4a.branch2", "expand")
        shown = _click(tab, "inception4a.branch2.1", "expand")  # the 3x3 ConvBNAct: its conv, down to its op
        assert "inception4a.branch2.1.conv" in [b["name"] for b in shown]
        shown = _click(tab, "inception4a.branch2.1.conv", "expand")
        conv = [b for b in shown if b["kind"] == "op" and b["name"] == "convolution"]
        assert len(conv) == 1 and conv[0]["macs"] == rows["inception4a.branch2.1.conv"].macs == 14 * 14 * 208 * 96 * 9
        _check_numbers(shown, rows)
        _shot(tab, "diagram-googlenet.png", "inception4a.branch2.1.act")
        tab.evaluate("document.querySelector('.archlab-reset').click()")  # the page's collapse-all button
        assert tab.evaluate(SHOWN) == first
        assert tab.errors() == []
    finally:
        tab.close()


def test_unet_diagram_shows_the_skips_and_opens_a_decoder_block(browser, diagrams):
    from cdp import Tab

    rows = _rows("unet")
    tab = Tab(browser, diagrams["unet"].as_uri())
    try:
        first = tab.evaluate(SHOWN)
        assert _check_numbers(first, rows) == len(first) - 2
        edges = tab.evaluate("[...document.querySelectorAll('g.edge')].map(e => [+e.dataset.from, +e.dataset.to])")
        name = {b["id"]: b["name"] for b in first}
        skips = sorted(name[a] for a, b in edges if name[a].startswith("down") and name[b].startswith("up"))
        assert skips == ["down1", "down2", "down3", "down4"]  # the four skips, drawn as edges
        shown = _click(tab, "up1", "expand")
        assert {"up1.upconv", "up1.conv"} <= {b["name"] for b in shown} and "cat" in {b["name"] for b in shown}
        shown = _click(tab, "up1.conv", "expand")
        _check_numbers(shown, rows)
        _shot(tab, "diagram-unet.png", "up1.conv.conv1")
        shown = _click(tab, "up1.upconv", "collapse")
        assert shown == first
        hover = tab.evaluate("""(() => { const g = [...document.querySelectorAll('g.box')]
            .find(g => g.dataset.name === 'down1');
            g.dispatchEvent(new MouseEvent('mouseenter')); return document.querySelector('.archlab-info').innerText; })()""")
        assert "receptive field" in hover and f"{rows['down1'].macs:,}" in hover
        assert tab.errors() == []
    finally:
        tab.close()


def test_report_page_draws_its_interactive_architecture(browser, pages):
    from cdp import Tab

    rows = _rows("mobilenet_v2")
    tab = Tab(browser, pages["report"].as_uri())
    try:
        shown = tab.evaluate(SHOWN)
        runs = [b["name"] for b in shown if b["kind"] == "repeat"]
        assert "features.bottleneck4.1-3" in runs  # open at the inverted residuals, repeats collapsed
        assert _check_numbers(shown, rows) == len([b for b in shown if b["kind"] in ("module", "repeat")]) > 10
        assert tab.errors() == []
    finally:
        tab.close()
