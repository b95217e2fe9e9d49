"""archlab.Model (archlab/api/model.py): one resolve, one build, one forward trace, every analysis;
every command and archlab.analyze() go through it."""

import json

import pytest
import torch
from torch import nn

import archlab
import archlab.trace.run as run
from archlab.api.model import Model
from archlab.models.resolve import Resolved


@pytest.fixture
def counted(monkeypatch):
    """Counts of what a command does: resolves, builds (by device), forward traces, training traces,
    saved-tensor passes."""
    counts = {"resolve": 0, "build meta": 0, "build real": 0, "forward": 0, "training": 0, "saved": 0}
    real_resolve, real_run, real_build = run.resolve, run._run, Resolved.build
    real_saved = run.saved_for_backward

    def resolve(*a, **k):
        counts["resolve"] += 1
        return real_resolve(*a, **k)

    def traced(*a, training=False, **k):
        counts["training" if training else "forward"] += 1
        return real_run(*a, training=training, **k)

    def build(self, device=None):
        counts["build meta" if device == "meta" else "build real"] += 1
        return real_build(self, device)

    def saved(*a, **k):
        counts["saved"] += 1
        return real_saved(*a, **k)

    monkeypatch.setattr(run, "resolve", resolve)
    monkeypatch.setattr(run, "_run", traced)
    monkeypatch.setattr(Resolved, "build", build)
    monkeypatch.setattr("archlab.api.model.saved_for_backward", saved)
    return counts


def test_count_traces_once(cli, counted):
    r = cli("count", "resnet18", "--res", "64", "--format", "json")
    assert r.code == 0, r.err
    assert counted == {"resolve": 1, "build meta": 1, "build real": 0, "forward": 1, "training": 0, "saved": 0}


def test_count_training_traces_the_step_once(cli, counted):
    r = cli("count", "resnet18", "--res", "64", "--batch", "2", "--training", "--format", "json")
    assert r.code == 0, r.err
    assert counted == {"resolve": 1, "build meta": 1, "build real": 0, "forward": 0, "training": 1, "saved": 0}


def test_report_traces_once(cli, counted, tmp_path):
    r = cli("report", "resnet18", "--res", "64", "-o", str(tmp_path / "r.html"))
    assert r.code == 0, r.err
    # the page's count, receptive field, memory, timeline and diagram all read the one trace; memory's
    # training activations come from one training-mode pass of the forward (saved tensors)
    assert counted == {"resolve": 1, "build meta": 1, "build real": 0, "forward": 1, "training": 0, "saved": 1}


def test_memory_measure_traces_once_and_builds_once_for_real(cli, counted):
    r = cli("memory", "lenet5", "--measure", "--format", "json")
    assert r.code == 0, r.err
    assert r.json()["measured_peak_bytes"] > 0
    # the real build is the measurement's own (the spec resolved once, built on the CPU)
    assert counted == {"resolve": 1, "build meta": 1, "build real": 1, "forward": 1, "training": 0, "saved": 1}


def test_analyze_traces_once(counted):
    report = archlab.analyze("resnet18", analyses=("count", "rf", "memory", "trace"), res=64)
    assert report.count.macs == archlab.count("resnet18", res=64).macs
    counted["forward"] -= 1  # the archlab.count of the line above
    counted["resolve"] -= 1
    counted["build meta"] -= 1
    assert counted == {"resolve": 1, "build meta": 1, "build real": 0, "forward": 1, "training": 0, "saved": 1}


def test_the_model_answers_every_analysis_from_one_trace(counted):
    m = archlab.Model("mobilenet_v2", res=96)
    assert counted["forward"] == 0  # traced on first use
    c, rf, mem, rows = m.count(), m.receptive_field(), m.memory(), m.layers()
    m.diagram(), m.timeline(), m.to_dict(), m.report()
    assert counted["forward"] == 1
    assert c.macs == archlab.count("mobilenet_v2", res=96).macs
    assert rf.to_dict() == archlab.receptive_field("mobilenet_v2", res=96).to_dict()
    assert mem.to_dict() == archlab.memory("mobilenet_v2", res=96).to_dict()
    assert rows.to_dict() == archlab.trace_layers("mobilenet_v2", res=96).to_dict()
    t1 = m.training_memory("adam")
    t2 = m.training_memory("sgd")
    assert counted["training"] == 1 and t1.training_peak_bytes > t2.training_peak_bytes
    assert m.training_memory(batch=2).input_shape[0] == 2  # another batch: traced anew at that size
    assert counted["training"] == 2
    assert "traced" in repr(m) and "mobilenet_v2@res=96" in repr(m)


def test_an_nn_module_and_every_input_form():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    forms = ["3,16,16", (3, 16, 16), [(3, 16, 16)], archlab.spec.Inputs.of("3,16,16")]
    macs = {Model(net, form).count().macs for form in forms}
    assert macs == {8 * 3 * 9 * 14 * 14}
    with pytest.raises(archlab.UserError, match="input_size .* is required"):
        Model(net)
    with pytest.raises(archlab.UserError, match="batch must be a whole number"):
        Model(net, (3, 16, 16), batch=0)


def test_an_api_function_takes_a_model_made_already(counted):
    m = Model("lenet5")
    assert archlab.count(m).macs == m.count().macs
    assert archlab.memory(m).to_dict() == m.memory().to_dict()
    assert counted["forward"] == 1
    with pytest.raises(archlab.UserError, match="res is set when an archlab.Model is made"):
        archlab.count(m, res=64)


def test_a_training_step_keeps_the_users_print_off_stdout(tmp_path, cli):
    path = tmp_path / "printing.py"
    path.write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 4, 3)\n\n"
        "    def forward(self, x):\n"
        "        print('hello from forward')\n"
        "        return self.conv(x)\n\n"
        "def make():\n"
        "    return Net()\n")
    for extra in ([], ["--training"]):
        r = cli("count", f"{path}:make", "--input-size", "3,8,8", "--format", "json", *extra)
        assert r.code == 0, r.err
        assert json.loads(r.out)["params"] == 4 * 3 * 9 + 4
        assert "hello from forward" in r.err and "hello from forward" not in r.out


def test_a_training_step_is_guarded_as_a_forward_is():
    class Scripted(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = torch.jit.script(nn.Linear(4, 4))

        def forward(self, x):
            return self.inner(x)

    for training in (False, True):
        with pytest.raises(archlab.UserError, match="torch.jit.script module"):
            archlab.count(Scripted(), input_size=(4,), training=training)


def test_report_and_compare_with_latency_hand_their_trace_to_the_timing(cli, counted, tmp_path):
    r = cli("report", "lenet5", "--latency", "--min-time", "0.05", "-o", str(tmp_path / "r.html"))
    assert r.code == 0, r.err
    # the timed forward is the real build's; its per-op times line up with the page's one trace
    assert counted == {"resolve": 1, "build meta": 1, "build real": 1, "forward": 1, "training": 0, "saved": 1}
    for key in counted:
        counted[key] = 0
    r = cli("compare", "lenet5", "alexnet_owt", "--latency", "--min-time", "0.05", "-f", "json")
    assert r.code == 0, r.err
    assert counted == {"resolve": 2, "build meta": 2, "build real": 2, "forward": 2, "training": 0, "saved": 0}
