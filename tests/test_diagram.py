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


TWO_INPUTS = '''
import torch
from torch import nn


class Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(16, 8)

    def forward(self, x, y):
        return self.conv(x).mean((2, 3)) + self.fc(y)


def two():
    return Two()


class Bad(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 8, 3)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.conv2(self.relu(self.conv1(x))).mean((2, 3)))


def bad():
    return Bad()
'''


def test_leaf_modules_above_the_depth_stay_module_boxes():
    from archlab.api.count import count

    d = diagram("resnet18", depth=2)
    boxes = _by_name(d)
    rows = {layer.name: layer for layer in count("resnet18", depth=1).layers}
    for name in ("conv1", "bn1", "relu", "maxpool", "avgpool", "fc"):
        assert boxes[name].type == rows[name].type and boxes[name].macs == rows[name].macs
        assert boxes[name].params == rows[name].params
    assert [b.name for b in d.boxes if b.type == "op"] == []  # no raw ATen ops, no floating "empty 0"
    linked = {a for a, _ in d.edges} | {b for _, b in d.edges}
    assert all(b.id in linked for b in d.boxes)
    assert "empty" not in diagram_report.to_mermaid(d)


def test_blocks_are_labelled_with_their_stage():
    d = diagram("resnet18", depth=2, expand=True)
    lines = [diagram_report.box_lines(b)[0] for b in d.boxes if b.type == "BasicBlock"]
    assert lines == [f"layer{s}.{k}: BasicBlock" for s in range(1, 5) for k in range(2)]
    inner = diagram("resnet18", block="layer1.0")  # inside a block: names relative to it
    assert diagram_report.box_lines(_by_name(inner)["layer1.0.conv1"])[0] == "conv1: Conv2d"


def test_googlenet_lrn_and_padding_are_module_boxes_not_op_nodes():
    d = diagram("googlenet", depth=2)
    assert {b.name for b in d.boxes if b.type == "op"} == {"cat"}  # the nine Inception merges, nothing else
    assert len([b for b in d.boxes if b.type == "op"]) == 9
    assert _by_name(d)["norm1"].type == "LocalResponseNorm" and _by_name(d)["norm2"].type == "LocalResponseNorm"


def test_every_input_is_its_own_box_with_its_edges(tmp_path):
    p = tmp_path / "two.py"
    p.write_text(TWO_INPUTS)
    d = diagram(f"{p}:two", input_size="3,8,8;16")
    boxes = _by_name(d)
    ins = [b for b in d.boxes if b.type == "input"]
    assert [(b.id, b.output_shape) for b in ins] == [("input", (1, 3, 8, 8)), ("input2", (1, 16))]
    assert ("input", boxes["conv"].id) in d.edges and ("input2", boxes["fc"].id) in d.edges
    assert ("input", boxes["fc"].id) not in d.edges and ("input2", boxes["conv"].id) not in d.edges
    assert diagram_report.box_lines(ins[1])[0] == "input 2"


def test_token_ids_are_drawn_as_such_and_feed_the_embedding(tmp_path):
    pytest.importorskip("transformers")
    p = tmp_path / "lm.py"
    p.write_text(LM)
    d = diagram(f"{p}:gpt2", input_size="input_ids=int64:16", depth=2)
    ids = d.boxes[0]
    assert ids.type == "input" and diagram_report.box_lines(ids) == ["input_ids: token ids", "1x16 int64"]
    assert ("input", _by_name(d)["transformer.wte"].id) in d.edges


LM = '''
import torch
from transformers import GPT2Config, GPT2LMHeadModel


def gpt2():
    config = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=1000, n_positions=64, bos_token_id=0,
                        eos_token_id=0)
    with torch.device("meta"):
        return GPT2LMHeadModel(config)
'''


def test_repeats_collapse_and_their_sums_equal_the_stage_totals():
    from archlab.api.count import count

    d = diagram("resnet152", depth=2)
    groups = [b for b in d.boxes if b.repeat > 1]
    assert [(b.label, b.repeat) for b in groups] == [("layer1.1-2", 2), ("layer2.1-7", 7), ("layer3.1-35", 35),
                                                     ("layer4.1-2", 2)]
    assert len([b for b in d.boxes if b.type not in ("input", "output")]) == 14  # not 58
    rows = {layer.name: layer for layer in count("resnet152", depth=1).layers}
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        drawn = [b for b in d.boxes if b.name.startswith(stage + ".")]
        assert len(drawn) == 2  # the first block (with its downsample) and the repeats
        assert sum(b.macs for b in drawn) == rows[stage].macs and sum(b.params for b in drawn) == rows[stage].params
    assert diagram_report.box_lines(groups[2])[0] == "layer3.1-35: Bottleneck × 35"
    assert groups[2].members == tuple(f"layer3.{k}" for k in range(1, 36))


def test_expand_draws_every_block(cli):
    r = cli("diagram", "resnet152", "--depth", "2", "--expand")
    assert r.code == 0 and r.out.count(": Bottleneck<br/>") == 3 + 8 + 36 + 3 and "×" not in r.out
    collapsed = cli("diagram", "resnet152", "--depth", "2", "--format", "dot")
    assert collapsed.code == 0 and collapsed.out.count("Bottleneck") == 8 and "Bottleneck × 35" in collapsed.out


def test_a_stage_first_block_that_widens_inside_is_drawn_apart():
    d = diagram("mobilenet_v2", depth=3)
    stage = [b for b in d.boxes if b.name.startswith("features.bottleneck4.")]
    assert [(b.label, b.repeat) for b in stage] == [("features.bottleneck4.0", 1), ("features.bottleneck4.1-3", 3)]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_resnet152_collapsed_in_svg(cli):
    r = cli("diagram", "resnet152", "--depth", "2", "--format", "svg")
    assert r.code == 0 and r.out.count("class=\"node\"") == 16 and "Bottleneck × 35" in r.out


def test_a_failing_model_is_drawn_up_to_the_failing_op(cli, tmp_path):
    p = tmp_path / "bad.py"
    p.write_text(TWO_INPUTS)
    out = tmp_path / "bad.dot"
    r = cli("diagram", f"{p}:bad", "--input-size", "3,8,8", "--format", "dot", "-o", str(out))
    assert_one_line_error(r, "at layer 'conv2'", "expected input[1, 8, 6, 6] to have 16 channels",
                          f"the diagram up to the failing op, marked FAILED, is in {out}")
    dot = out.read_text()
    assert "conv1: Conv2d" in dot and "relu: ReLU" in dot and "fc: Linear" not in dot
    failed = [line for line in dot.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and failed[0].lstrip().startswith("m3 [label=\"conv2: Conv2d") and "#cc0000" in failed[0]
    assert "FAILED: convolution: Given groups=1" in failed[0]
    assert "m2 -> m3;" in dot and "output" not in dot
    r = cli("diagram", f"{p}:bad", "--input-size", "3,8,8")  # no -o: the diagram on stdout, the line on stderr
    assert_one_line_error(r, "is on stdout")
    assert r.out.startswith("flowchart TB") and "style m3 stroke:#c00" in r.out
