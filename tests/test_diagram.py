"""archlab diagram: boxes and data-flow edges from the trace; branches and merges as in the papers."""

import shutil

import pytest

from archlab.api.layers import diagram
from archlab.report import diagram as diagram_report
from conftest import assert_one_line_error


def _by_name(d):
    return {b.name: b for b in d.boxes}


def test_residual_block_merges_the_shortcut_with_an_add():
    d = diagram("resnet18", block="layer1.0")
    boxes = _by_name(d)
    add = boxes["add"]
    assert add.type == "op"
    assert d.merges() == {add.id: 2}  # the branch and the identity shortcut
    assert ("input", add.id) in d.edges and (boxes["layer1.0.bn2"].id, add.id) in d.edges
    assert d.branches() == {"input": 2}
    conv = boxes["layer1.0.conv1"]
    assert conv.type == "Conv2d" and conv.params == 64 * 64 * 9 and conv.macs == 64 * 64 * 9 * 56 * 56
    assert conv.output_shape == (1, 64, 56, 56)


def test_inception_block_branches_four_ways_and_concatenates():
    d = diagram("googlenet", block="inception3a")
    cat = _by_name(d)["cat"]
    assert d.branches() == {"input": 4} and d.merges() == {cat.id: 4}
    assert cat.output_shape == (1, 256, 28, 28)
    branches = [b for b in d.boxes if b.name.startswith("inception3a.branch")]
    assert sum(b.output_shape[1] for b in branches) == 256


def test_densenet_and_unet_concatenations():
    d = diagram("densenet121", block="features.denseblock1", depth=1)
    cats = [b for b in d.boxes if b.name == "cat"]
    assert [b.output_shape[1] for b in cats] == [64, 96, 128, 160, 192, 224, 256]  # growth rate 32
    u = diagram("unet", depth=1)
    ups = [b for b in u.boxes if b.type == "UpBlock"]
    assert len(ups) == 4 and all(u.merges().get(b.id) == 2 for b in ups)  # the four skips arrive
    names = {b.id: b.name for b in u.boxes}
    skips = sorted(names[a] for a, b in u.edges if names[b].startswith("up") and names[a].startswith("down"))
    assert skips == ["down1", "down2", "down3", "down4"]


def test_model_boxes_add_up():
    from archlab.api.count import count

    d = diagram("resnet50", depth=1)
    c = count("resnet50", depth=0)
    assert sum(b.macs for b in d.boxes) == c.macs
    assert sum(b.params for b in d.boxes) == c.params


def test_mermaid_and_dot():
    d = diagram("resnet18", block="layer1.0")
    mermaid = diagram_report.to_mermaid(d)
    assert mermaid.startswith("flowchart TB\n") and mermaid.count("-->") == len(d.edges)
    dot = diagram_report.to_dot(d)
    assert dot.startswith("digraph") and dot.count("->") == len(d.edges)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_svg_through_graphviz(cli):
    r = cli("diagram", "resnet18", "--block", "layer1.0", "--format", "svg")
    assert r.code == 0 and r.out.startswith("<svg")


def test_svg_without_graphviz_says_how_to_install(cli, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    assert_one_line_error(cli("diagram", "resnet18", "--format", "svg"), "apt-get install graphviz")


def test_errors(cli):
    assert_one_line_error(cli("diagram", "resnet18", "--block", "nosuch"), "no module 'nosuch'")
    assert_one_line_error(cli("diagram", "resnet18", "--depth", "0"), "--depth")
    assert_one_line_error(cli("diagram", "resnet18", "--format", "png"), "--format")
