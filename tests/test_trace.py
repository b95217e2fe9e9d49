"""The one trace: data flow, module attribution, and leaving the user's model as it was."""

import subprocess
import sys

import pytest
import torch
from torch import nn

import archlab
from archlab.analysis.trace import INPUT, PARAM, trace


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.relu(self.conv2(self.relu(self.conv1(x))) + x)


def _ops(tr, name):
    return [op for op in tr.ops if op.name == name]


def test_data_flow_follows_the_residual_branch():
    tr = trace(Residual(), torch.empty(1, 4, 8, 8, device="meta"))
    conv1, conv2 = _ops(tr, "convolution")
    (add,) = _ops(tr, "add")
    producers = [tr.values[v].producer for v in add.inputs]
    assert producers == [conv2.index, INPUT], "the add merges conv2's output and the block input"
    assert tr.values[conv1.inputs[1]].producer == PARAM and tr.values[conv1.inputs[1]].name == "conv1.weight"


def test_ops_are_attributed_to_the_module_call_they_ran_in():
    tr = trace(Residual(), torch.empty(1, 4, 8, 8, device="meta"))
    names = [tr.calls[op.call].name for op in _ops(tr, "convolution")]
    assert names == ["conv1", "conv2"]
    (add,) = _ops(tr, "add")
    assert tr.calls[add.call].name == "", "an op in the model's own forward belongs to the root call"
    relu_calls = [c for c in tr.calls if c.name == "relu"]
    assert len(relu_calls) == 2, "a module called twice gives two calls"


def test_views_and_inplace_results_alias_their_input():
    class M(nn.Module):
        def forward(self, x):
            return torch.relu_(x.view(1, -1))

    tr = trace(M(), torch.empty(1, 2, 3, 3, device="meta"))
    view, relu = tr.ops
    assert tr.values[view.outputs[0]].alias_of == view.inputs[0]
    assert tr.values[relu.outputs[0]].alias_of == relu.inputs[0]


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_counting_leaves_the_model_as_it_was():
    model = archlab.build("resnet18")
    model.train()
    model.layer1.eval()  # a mixed-mode model must come back mixed
    before = _snapshot(model)
    archlab.count(model, input_size=(3, 64, 64))
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training and not model.layer1.training and model.layer2.training
    assert _hooks(model) == 0
    assert next(model.parameters()).device.type == "cpu"


class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(10, 2)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


def test_a_failing_forward_names_the_layer_and_leaves_no_hook():
    model = Broken().train()
    with pytest.raises(archlab.UserError, match=r"failed at layer 'fc' \(Linear\).*cannot be multiplied"):
        archlab.count(model, input_size=(3, 8, 8))
    assert model.training and _hooks(model) == 0
    from torch.nn.modules import module as module_mod

    assert not module_mod._global_forward_hooks and not module_mod._global_forward_pre_hooks


def test_a_vanishing_feature_map_names_the_layer():
    # 16 -> 8 -> 4 -> 2 -> 1 after four pools: the fifth 2x2 pool has nothing to pool
    with pytest.raises(archlab.UserError, match=r"vanishes at layer 'features.block5.pool' \(MaxPool2d\)"):
        archlab.count("vgg16", res=16)
    with pytest.raises(archlab.UserError, match=r"vanishes at layer 'features.conv1' \(Conv2d\).*8x8 map under a 11x11"):
        archlab.count("alexnet", res=8)

def test_meta_trace_does_not_import_dynamo_or_sympy():
    # The speed of `archlab count` rests on this: those imports cost ~2 s.
    code = (
        "import sys, archlab\nfor n in archlab.list_models(): archlab.count(n, depth=0)\n"
        "print('torch._dynamo' in sys.modules, 'sympy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_cli_help_does_not_import_torch():
    code = "import sys; from archlab.cli import main; main(['--help']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_trace_geometry_has_one_value_per_spatial_dimension():
    import archlab
    from torch import nn

    rows = archlab.trace_layers(nn.Sequential(nn.Conv1d(2, 4, 3), nn.MaxPool1d(2)), input_size=(2, 16)).layers
    assert [(r["kernel"], r["stride"]) for r in rows] == [([3], [1]), ([2], [2])]
    rows = archlab.trace_layers(nn.Sequential(nn.Conv3d(2, 4, 3), nn.MaxPool3d(2)), input_size=(2, 8, 8, 8)).layers
    assert [r["kernel"] for r in rows] == [[3, 3, 3], [2, 2, 2]]
