"""archlab count (analysis/count.py): counted without allocating, partial counts said in every
output, shared and unregistered modules named."""

import csv
import re
import io
import textwrap

import archlab
from torch import nn
from archlab.units import human_bytes


def test_huge_inputs_are_counted_without_allocating():
    import resource

    archlab.count("vgg19@adaptive_pool=true", res=32, depth=0)  # imports (torch: ~200 MB) not measured
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = archlab.count("vgg19@adaptive_pool=true", res=4096, depth=0)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert r.macs > 6e12
    assert grown_mb < 200, "a 4096x4096 VGG-19 forward would need over 10 GB of activations"


PARTIAL_FILE = textwrap.dedent('''
    import torch
    from torch import nn

    class Cumulative(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return torch.lgamma(self.conv(x))  # an op archlab has no cost rule for

    def make():
        return Cumulative()
    make.input_size = (3, 8, 8)
''')


def test_a_partial_count_says_so_in_every_output(cli, tmp_path):
    path = tmp_path / "partial.py"
    path.write_text(PARTIAL_FILE)
    spec = f"{path}:make"
    rows = list(csv.DictReader(io.StringIO(cli("count", spec, "--format", "csv").out)))
    assert rows[0]["status"] == "partial"
    trace = cli("trace", spec)
    assert trace.out.splitlines()[1].startswith("NOT COUNTED") and "aten.lgamma.default x1" in trace.out
    d = cli("trace", spec, "--format", "json").json()
    assert d["status"] == "partial" and d["unsupported_ops"] == [{"op": "aten.lgamma.default", "count": 1}]
    lat = cli("latency", spec, "--min-time", "0.02", "--format", "json").json()
    assert lat["macs_status"] == "partial" and lat["macs"] == 4 * 6 * 6 * 27
    assert "PARTIAL" in cli("latency", spec, "--min-time", "0.02").out
    assert cli("trace", "lenet5", "--format", "json").json()["status"] == "complete"
    total = next(csv.DictReader(io.StringIO(cli("trace", spec, "--format", "csv").out)))
    assert total["type"] == "(total)" and total["status"] == "partial"


SHARED_FILE = textwrap.dedent('''
    from torch import nn

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 3, 3, padding=1)
            self.d = self.c  # an alias: the same module under two names

        def forward(self, x):
            return self.d(self.c(self.c(x)))

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 3, padding=1)]  # not a ModuleList

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    def shared():
        return Shared()

    def plain():
        return Plain()

    shared.input_size = plain.input_size = (3, 8, 8)
''')


def test_shared_and_unregistered_modules_are_named_and_never_negative(cli, tmp_path):
    path = tmp_path / "sh.py"
    path.write_text(SHARED_FILE)
    out = cli("count", f"{path}:shared", "--depth", "1").out
    rows = [line.split() for line in out.splitlines() if line.startswith(("c ", "d ", "(outside"))]
    assert [r[0] for r in rows] == ["c", "c", "c"], "three calls of one module, by its first name; nothing outside"
    out = cli("count", f"{path}:plain", "--depth", "1").out
    assert "(unregistered Conv2d #1)" in out and "(unregistered Conv2d #2)" in out
    unregistered = [line.split() for line in out.splitlines() if line.startswith("unregistered")]
    assert unregistered[0][1] == "168" and "(outside submodules)" not in out and "-" not in unregistered[0][1]


# --- modules the eval forward does not call (issue 15) ----------------------------------------


def test_googlenet_aux_heads_are_named_not_left_outside_submodules(cli):
    d = cli("count", "googlenet@aux_logits=true", "--depth", "1", "--format", "json").json()
    assert [(m["name"], m["type"], m["depth"]) for m in d["not_called"]] == [
        ("aux1", "GoogLeNetAux", 1), ("aux2", "GoogLeNetAux", 1)]
    assert sum(m["params"] for m in d["not_called"]) == 6_379_728  # the "(outside submodules)"
    assert sum(r["params"] for r in d["layers"]) + 6_379_728 == d["params"]
    text = cli("count", "googlenet@aux_logits=true", "--depth", "1").out
    assert "(outside submodules)" not in text
    assert "GoogLeNetAux (not called)" in text and re.search(r"^not called +6,379,728 ", text, re.M)
    rows = list(csv.DictReader(io.StringIO(cli("count", "googlenet@aux_logits=true", "--depth", "1",
                                               "--format", "csv").out)))
    assert [r["macs"] for r in rows if "(not called)" in r["type"]] == ["0", "0"]
    assert cli("count", "googlenet", "--format", "json").json()["not_called"] == []  # built without them
    assert cli("count", "googlenet@aux_logits=true", "--depth", "0", "--format", "json").json()["not_called"] == []


def test_not_called_modules_outermost_only_containers_and_shared_weights():
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Conv2d(3, 3, 3), nn.Conv2d(3, 3, 3)])  # a container is never called
            self.unused = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Linear(2, 2))  # 32 + 6 params
            self.tied = nn.Conv2d(3, 3, 3)
            self.tied.weight = self.blocks[0].weight  # not called, but its weight is: only its bias counts
            self.idle = nn.ReLU()  # no parameters, not called

        def forward(self, x):
            return self.blocks[1](self.blocks[0](x))

    r = archlab.count(Net(), input_size=(3, 16, 16), depth=2)
    got = {m.name: (m.type, m.depth, m.params) for m in r.not_called}
    assert got == {"unused": ("Sequential", 1, 38), "tied": ("Conv2d", 1, 3), "idle": ("ReLU", 1, 0)}
    assert r.outside_submodules() == (0, 0)  # everything has a row
    assert "blocks" not in got and not any(name.startswith("unused.") for name in got)
    assert torch.is_grad_enabled()


def test_the_table_ends_with_the_totals_where_a_terminal_shows_them(cli, models):
    # resnet152 at the default depth is about 80 lines: the totals come again after the table (issue 15)
    r = cli("count", "resnet152")
    assert r.code == 0, r.err
    d = cli("count", "resnet152", "--format", "json").json()
    lines = r.out.splitlines()
    assert len(lines) > 60
    rule, total, flops = lines[-3:]
    assert rule == lines[lines.index(next(l for l in lines if l.startswith("name "))) + 1], "the header's rule again"
    traffic = human_bytes(d["traffic_bytes"]).split()
    assert total.split() == ["total", f"{d['params']:,}", f"{d['macs']:,}", "100.0%", *traffic,
                             f"{d['arithmetic_intensity']:.1f}"]
    assert flops == f"FLOPs {d['flops']:,} (22.56 GFLOPs = 2 x MACs); count complete"
    # the total row is in the table's columns: params and MACs right-aligned under their headers
    header = next(l for l in lines if l.startswith("name "))
    assert total.index(f"{d['macs']:,}") + len(f"{d['macs']:,}") == header.index("MACs") + len("MACs")
    # a partial count says so at the end too
    r = cli("count", models("cumsum"), "--depth", "1")
    assert r.out.splitlines()[-1].startswith("FLOPs ") and "count PARTIAL: 1 op call not counted (NOT COUNTED above)" in r.out
    # without a per-layer table the summary is the end already; md, csv and json are unchanged
    assert "total " not in cli("count", "resnet18", "--depth", "0").out
    for fmt in ("md", "csv"):
        assert "count complete" not in cli("count", "resnet18", "--format", fmt).out


def densenet_macs(cli):
    return cli("count", "densenet121", "--depth", "0", "--res", "32", "-f", "json").json()["macs"]


def test_count_says_when_the_models_paper_calls_multiply_adds_flops(cli):
    from archlab.models.paper_flops import paper_flops

    text = cli("count", "resnet50", "--depth", "0").out
    line = next(l for l in text.splitlines() if l.startswith("paper's \"FLOPs\""))
    d = cli("count", "resnet50", "--depth", "0", "--format", "json").json()
    assert f"{d['macs']:,}" in line and "He et al. 2016" in line  # the MACs, not the FLOPs
    assert d["paper_flops"]["paper"].startswith("He et al. 2016")
    assert cli("count", "efficientnet_b3", "-f", "json").json()["paper_flops"]["paper"].startswith("Tan & Le")
    assert cli("count", "resnet50_v1_5@num_classes=10", "-f", "json").json()["paper_flops"] is not None
    densenet = cli("count", "densenet121", "--depth", "0", "--res", "32")  # the same line at any resolution
    line = next(l for l in densenet.out.splitlines() if l.startswith("paper's \"FLOPs\""))
    assert "Huang et al. 2017" in line and f"{densenet_macs(cli):,}" in line
    for spec in ("vgg16", "mobilenet_v2", "googlenet"):  # their papers do not print multiply-adds as FLOPs
        assert cli("count", spec, "-f", "json").json()["paper_flops"] is None
        assert "paper's" not in cli("count", spec, "--depth", "0").out
    # nothing is looked up for what is not a registered model, and a bad spec is no crash here
    assert paper_flops("no_such_model") is None and paper_flops("resnet50@") is None
    assert paper_flops("torchvision:resnet50") is None and paper_flops(object()) is None


def test_trace_names_the_modules_the_forward_did_not_call_as_count_does(cli):
    d = cli("trace", "googlenet@aux_logits=true", "--depth", "1", "--format", "json").json()
    assert [(m["name"], m["params"]) for m in d["not_called"]] == [("aux1", 3_188_840), ("aux2", 3_190_888)]
    text = cli("trace", "googlenet@aux_logits=true", "--depth", "1").out
    assert "GoogLeNetAux (not called)" in text and "(outside submodules)" not in text
    rows = list(csv.DictReader(io.StringIO(cli("trace", "googlenet@aux_logits=true", "--depth", "1",
                                               "--format", "csv").out)))
    assert sum(int(r["params"]) for r in rows if r["depth"] == "1") == d["params"]
    assert cli("trace", "googlenet", "--format", "json").json()["not_called"] == []


def test_a_tied_weight_is_owned_once_by_the_module_that_registers_it_first():
    # GPT-2's head shares its embedding's weight: the head's row must not count it again (it used to,
    # and the difference showed as a false 'unregistered' line)
    from torch import nn

    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(100, 16)
            self.body = nn.Linear(16, 16)
            self.head = nn.Linear(16, 100, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, ids):
            return self.head(self.body(self.emb(ids)))

    r = archlab.count(Tied(), input_size="int64:8", depth=1)
    rows = {layer.name: layer.params for layer in r.layers}
    assert r.params == 100 * 16 + 16 * 16 + 16  # the tied weight once
    assert rows == {"emb": 100 * 16, "body": 16 * 16 + 16, "head": 0}
    assert r.outside_submodules() == (0, 0)  # the rows add up to the totals: no negative 'unregistered' remainder


class _Stack(nn.Module):
    def __init__(self, embed):
        super().__init__()
        self.embed_tokens = embed
        self.fc = nn.Linear(4, 4)

    def forward(self, ids):
        return self.fc(self.embed_tokens(ids))


class _SharedEmbedding(nn.Module):
    """T5's pattern: one embedding registered as 'shared', 'encoder.embed_tokens' and 'decoder.embed_tokens'."""

    def __init__(self):
        super().__init__()
        self.shared = nn.Embedding(10, 4)
        self.encoder = _Stack(self.shared)
        self.decoder = _Stack(self.shared)

    def forward(self, ids):
        return self.encoder(ids) + self.decoder(ids)


class _CalledTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(self.fc(x))


def test_a_shared_module_is_named_as_called_and_its_parameters_are_shown_once():
    r = archlab.count(_SharedEmbedding(), input_size="int64:3", depth=2)
    rows = [(layer.name, layer.params) for layer in r.layers]
    assert rows == [("encoder", 40 + 20), ("encoder.embed_tokens", 40), ("encoder.fc", 20),
                    ("decoder", 20), ("decoder.embed_tokens", 0), ("decoder.fc", 20)]
    assert r.params == 80 and not r.not_called  # 'shared' ran, as encoder.embed_tokens
    for depth in (1, 2):
        assert sum(params for name, params in rows if name.count(".") == depth - 1) == r.params
    assert r.outside_submodules() == (0, 0)


def test_a_module_called_twice_shows_its_parameters_at_its_first_call(cli):
    r = archlab.count(_CalledTwice(), input_size=(4,))
    assert [(layer.name, layer.params, layer.macs) for layer in r.layers] == [("fc", 20, 16), ("fc", 0, 16)]
    assert r.outside_submodules() == (0, 0)
