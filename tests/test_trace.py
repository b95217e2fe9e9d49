"""The one trace: data flow, module attribution, and leaving the user's model as it was."""

import subprocess
import sys

import pytest
import torch
from torch import nn

import archlab
from archlab.trace.graph import INPUT, PARAM
from archlab.trace.run import trace


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
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(getattr(m, "_state_dict_hooks", {})) for m in model.modules())


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


# --- the user's model is left as it was -----------------------------------------------------


class UserNet(nn.Module):
    def __init__(self, fail=False):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 4)
        self.fail = fail

        self.register_buffer("calls", torch.zeros(1))
        self.cache = None

    def forward(self, x):
        self.calls = self.calls + 1  # a buffer replaced by the forward's result
        y = torch.relu(self.bn(self.conv(x)))
        self.cache = y  # a tensor kept on the module
        if self.fail:
            raise ValueError("the user's forward raised")
        return self.head(y.mean((2, 3)))


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("analysis", ["count", "rf", "memory", "trace", "analyze"])
@pytest.mark.parametrize("fail", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_analysing_a_users_model_leaves_it_exactly_as_it_was(analysis, fail, training):
    torch.manual_seed(0)
    model = UserNet(fail=fail).train(training)
    before = _state(model)
    run = {
        "count": lambda: archlab.count(model, input_size=(3, 8, 8)),
        "rf": lambda: archlab.receptive_field(model, input_size=(3, 8, 8)),
        "memory": lambda: archlab.memory(model, input_size=(3, 8, 8)),
        "trace": lambda: archlab.trace_layers(model, input_size=(3, 8, 8)),
        "analyze": lambda: archlab.analyze(model, input_size=(3, 8, 8), analyses=("count", "rf", "memory")),
    }[analysis]
    if fail:
        with pytest.raises(archlab.UserError, match="the user's forward raised"):
            run()
    else:
        run()
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert model.calls.device.type == "cpu" and model.calls.item() == 0 and model.cache is None
    assert all(torch.equal(before[k], after[k]) for k in before), "weights and BN statistics unchanged"
    assert all(m.training == training for m in model.modules())
    assert _hooks(model) == 0
    assert next(model.parameters()).device.type == "cpu"
    from torch.nn.modules import module as module_mod

    assert not module_mod._global_forward_hooks and not module_mod._global_forward_pre_hooks


def test_a_lazy_module_counts_after_its_first_meta_forward_and_is_left_lazy():
    model = nn.Sequential(nn.LazyConv2d(4, 3), nn.LazyBatchNorm2d(), nn.Flatten(), nn.LazyLinear(2))
    r = archlab.count(model, input_size=(3, 8, 8))  # shapes from a meta forward of a copy: nothing real runs
    assert r.params == 4 * 27 + 4 + 2 * 4 + 2 * 144 + 2
    assert r.macs == 4 * 27 * 6 * 6 + 2 * 144
    assert archlab.count(model, input_size=(3, 8, 8), batch=2, training=True).macs == 2 * r.macs
    assert all(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()), "left lazy"
    assert type(model[3]) is nn.LazyLinear
    with pytest.raises(archlab.UserError, match="lazy"):  # the input does not fit: one line
        archlab.count(nn.Sequential(nn.LazyConv2d(4, 3)), input_size=(5,))
    model(torch.zeros(1, 3, 8, 8))  # run for real by the user: counted as it is now
    assert archlab.count(model, input_size=(3, 8, 8), depth=0).params == r.params


def test_attention_and_lstm_are_counted_completely():
    class Attention(nn.Module):
        def forward(self, q):
            return torch.nn.functional.scaled_dot_product_attention(q, q, q)  # aten._safe_softmax inside

    r = archlab.count(Attention(), input_size=(2, 5, 8), depth=0)
    assert r.status == "complete" and r.macs == 2 * (2 * 5 * 5 * 8) and r.other_ops["softmax"] == 2 * 5 * 5

    with torch.device("meta"):
        lstm = nn.LSTM(8, 16, batch_first=True)  # aten.unsafe_split of the gates inside

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = lstm

        def forward(self, x):
            return self.lstm(x)[0]

    r = archlab.count(Recurrent(), input_size=(5, 8), depth=0)
    assert r.status == "complete" and r.macs == 5 * (8 + 16) * 4 * 16
    # with real weights nn.LSTM checks their device before the ops archlab sees: a hint, not a puzzle
    lstm = nn.LSTM(8, 16, batch_first=True)
    with pytest.raises(archlab.UserError, match=r"build the model under 'with torch.device\(\"meta\"\):'"):
        archlab.count(Recurrent(), input_size=(5, 8), depth=0)


@pytest.mark.parametrize("error, shown", [
    (AssertionError("input must be 224"), "AssertionError: input must be 224"),
    (KeyError("stage5"), "KeyError: 'stage5'"),
    (ZeroDivisionError(), "ZeroDivisionError"),
    (AttributeError("no head"), "AttributeError: no head"),
])
def test_any_exception_of_a_users_forward_is_a_one_line_user_error(error, shown):
    class Raises(nn.Module):
        def forward(self, x):
            raise error

    for analysis in (archlab.count, archlab.receptive_field, archlab.trace_layers):
        with pytest.raises(archlab.UserError, match=f"the forward pass failed for input 3x8x8: {shown}"):
            analysis(Raises(), input_size=(3, 8, 8))


def test_valid_and_same_padding_strings_and_3d_convolutions():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding="valid"), nn.Conv2d(4, 4, 3, padding="same"))
    assert archlab.count(model, input_size=(3, 8, 8), depth=0).macs == 6 * 6 * 4 * 27 + 6 * 6 * 4 * 36
    volume = nn.Conv3d(2, 4, 3, padding="valid")
    assert archlab.count(volume, input_size=(2, 5, 6, 7), depth=0).macs == 3 * 4 * 5 * 4 * 54


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_are_traced_in_their_dtype(dtype):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).to(dtype)
    r = archlab.count(model, input_size=(3, 8, 8), depth=0)
    assert r.macs == 6 * 6 * 4 * 27 and r.params == 4 * 27 + 4 + 8
    own = archlab.memory(model, input_size=(3, 8, 8))  # billed at the model's own dtype unless --dtype says
    name = {torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
    assert (own.params_bytes, own.dtype, own.act_dtype) == (r.params * 2, name, name)
    assert archlab.memory(model, input_size=(3, 8, 8), dtype="fp32").params_bytes == r.params * 4
    assert next(model.parameters()).dtype == dtype


def test_a_forward_that_freezes_a_layer_leaves_requires_grad_as_found():
    class Freezes(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            self.conv.requires_grad_(False)
            return self.conv(x)

    model = Freezes()
    archlab.count(model, input_size=(3, 8, 8))
    archlab.memory(model, input_size=(3, 8, 8))
    assert all(p.requires_grad for p in model.parameters())


class _Nonzero(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        return y[y.nonzero(as_tuple=True)]


def test_a_value_dependent_op_is_explained_without_pytorchs_private_flag():
    from archlab.errors import UserError

    with pytest.raises(UserError) as e:
        archlab.count(_Nonzero(), input_size=(3, 8, 8))
    msg = str(e.value)
    assert "torch.nonzero()" in msg and "archlab counts on meta tensors" in msg
    assert "_config" not in msg and "meta_nonzero_assume_all_nonzero" not in msg and "fake value" not in msg
    assert len(msg.splitlines()) == 1


def test_the_forwards_prints_and_warnings_are_kept_off_stdout(capsys):
    import warnings

    class Chatty(nn.Module):
        def forward(self, x):
            print("from the forward")
            warnings.warn("two\nlines")
            return x * 2

    archlab.count(Chatty(), input_size=(3, 4, 4))
    out, err = capsys.readouterr()
    assert out == "" and "from the forward" in err
    assert "archlab: warning: UserWarning: two (test_trace.py:" in err and "lines" not in err


def test_a_torch_exported_module_counts():
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    exported = torch.export.export(model, (torch.zeros(2, 4),)).module()
    r = archlab.count(exported, input_size=(4,), batch=2)
    assert (r.macs, r.params) == (2 * (4 * 5 + 5 * 3), 4 * 5 + 5 + 5 * 3 + 3)


def test_a_compiled_model_counts_its_module_without_pytorchs_warning_about_archlabs_hooks():
    import warnings

    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU())
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        r = archlab.count(torch.compile(model), input_size=(4,))
    assert r.macs == 4 * 5 and [layer.name for layer in r.layers] == ["0", "1"]
    assert not [w for w in seen if "hooks" in str(w.message)], [str(w.message) for w in seen]


class _LayerDrop(nn.Module):
    """Hugging Face's layer drop: in training, a draw made on the CPU (torch.rand([])) is compared
    with the rate (0: the layer always runs), so the forward reads a value."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        if self.training and torch.rand([]) < 0.0:
            return x
        return self.fc(x)


def test_a_layer_drop_draw_is_answered_on_meta_and_leaves_the_callers_random_state_as_found():
    # issue 25 (BART's training step): the draw is made on the CPU (seeded) beside the meta trace
    model = _LayerDrop()
    torch.manual_seed(7)
    state = torch.get_rng_state()
    t = archlab.count(model, input_size="8", depth=0, training=True).to_dict()
    assert torch.equal(torch.get_rng_state(), state)
    # the layer ran: its forward and its weight gradient (the model's input needs no gradient)
    assert t["macs"] == 64 and t["training_macs"] == 2 * 64 and t["unsupported_ops"] == []
