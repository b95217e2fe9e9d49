"""Robustness: any input to the CLI ends in a result or one clear line (property-based),
users' models come back exactly as they were, huge inputs are counted without memory, and a
real run that would not fit is refused."""

import csv
import io
import json
import os
import textwrap

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import archlab
from conftest import assert_one_line_error

NAMES = ["lenet", "lenet5", "mobilenet", "mobilenet_v2", "resnet18", "googlenet", "unet", "hourglass",
         "efficientnet_b0", "vgg11", "alexnet", "fcn8s", "densenet121", "nosuchnet", "resnet", "", "@", "mobilenet@",
         "lenet@res=0", "hourglass@stacks=1", "mobilenet@alpha=2", "../x.py:f", "torchvision:resnet18"]
COMMANDS = ["count", "trace", "rf", "memory"]
FORMATS = ["table", "json", "csv", "md", "xml"]


@st.composite
def command_lines(draw):
    cmd = draw(st.sampled_from(COMMANDS))
    args = [cmd, draw(st.sampled_from(NAMES))]
    if draw(st.booleans()):
        args += ["--res", str(draw(st.integers(-2, 300)))]
    elif draw(st.booleans()):
        args += ["--input-size", draw(st.sampled_from(["3,32,32", "1,16,16", "3,x,4", "0,3,3", "3,64", "2,7,7"]))]
    if draw(st.booleans()):
        args += ["--alpha", str(draw(st.sampled_from([-1, 0, 0.1, 0.25, 1.0, 1.4, 5, "nan", "abc"])))]
    if cmd != "rf" and draw(st.booleans()):
        args += ["--batch", str(draw(st.integers(-1, 3)))]
    if draw(st.booleans()):
        args += ["--set", draw(st.sampled_from(["stacks=2", "num_classes=5", "num_classes=0", "bogus", "x=1",
                                                 "aux_logits=true", "adaptive_pool=yes"]))]
    if cmd in ("count", "trace", "rf") and draw(st.booleans()):
        args += ["--depth", str(draw(st.integers(-1, 4)))]
    fmt = draw(st.sampled_from(FORMATS))
    args += ["--format", fmt]
    return args, fmt


@settings(max_examples=int(__import__("os").environ.get("ARCHLAB_FUZZ", 60)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command_lines())
def test_cli_never_crashes(cli, line):
    args, fmt = line
    r = cli(*args)
    assert r.code in (0, 2), (args, r.code, r.err)  # 1 would be an internal error: a bug
    assert "Traceback" not in r.err and "Traceback" not in r.out
    if r.code == 2:
        assert len(r.err.strip().splitlines()) == 1, (args, r.err)
    elif fmt == "json":
        json.loads(r.out)


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


def _hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(getattr(m, "_state_dict_hooks", {})) for m in model.modules())


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


def test_huge_inputs_are_counted_without_allocating():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = archlab.count("vgg19@adaptive_pool=true", res=4096, depth=0)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert r.macs > 6e12
    assert grown_mb < 200, "a 4096x4096 VGG-19 forward would need over 10 GB of activations"


def test_a_real_run_that_cannot_fit_is_refused_unless_forced(cli):
    assert_one_line_error(cli("memory", "vgg19@adaptive_pool=true", "--res", "16384", "--measure"),
                          "--force", "available")


def test_json_is_byte_identical_across_runs(cli):
    for args in (["count", "googlenet"], ["rf", "resnet50"], ["memory", "mobilenet_v2"], ["trace", "lenet5"],
                 ["dwsc"], ["compare", "alexnet", "googlenet"], ["efficientnet", "--phi", "2"]):
        a = cli(*args, "--format", "json").out
        assert a == cli(*args, "--format", "json").out, args


# --- external models --------------------------------------------------------------------------

USER_FILE = textwrap.dedent('''
    import torch
    from torch import nn
    import torch.nn.functional as F

    class TwoInputs(nn.Module):
        def __init__(self, width=8):
            super().__init__()
            self.conv = nn.Conv2d(3, width, 3, padding=1)
            self.fc = nn.Linear(10, width)

        def forward(self, image, vector):
            x = F.relu(self.conv(image))            # functional ops are counted too
            x = F.interpolate(x, scale_factor=2.0)
            g = x.mean((2, 3))
            return {"logits": g + self.fc(vector), "gram": torch.matmul(g.t(), g)}

    def make(width: int = 8):
        return TwoInputs(width)

    def small():
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    small.input_size = (3, 16, 16)

    def not_a_model():
        return 42

    def needs(width, *, k):
        return nn.Conv2d(3, width, k)

    def quits():
        import sys
        sys.exit(3)

    def quits_in_forward():
        class Quit(nn.Module):
            def forward(self, x):
                import sys
                sys.exit(0)
        return Quit()

    instance = nn.Conv2d(3, 4, 3)  # a module instance, not a factory

    def reads_values():
        class Branchy(nn.Module):
            def forward(self, x):
                return x * 2 if x.mean().item() > 0 else x
        return Branchy()

    def explodes():
        class Boom(nn.Module):
            def forward(self, x):
                raise ValueError("forward exploded")
        return Boom()
''')


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "mynet.py"
    path.write_text(USER_FILE)
    return str(path)


def test_a_users_file_with_two_inputs_and_a_dict_output(cli, user_file):
    d = cli("count", f"{user_file}:make@width=4", "--input-size", "3,16,16;10", "--format", "json").json()
    assert d["input_shapes"] == [[1, 3, 16, 16], [1, 10]]
    conv, fc, gram = 16 * 16 * 4 * 27, 10 * 4, 4 * 4 * 1
    assert d["macs"] == conv + fc + gram
    assert d["other_ops"]["upsampling"] == 4 * 32 * 32 and d["other_ops"]["activation"] == 4 * 16 * 16
    assert len(d["output_shapes"]) == 2
    d = cli("count", f"{user_file}:small", "--format", "json").json()
    assert d["input_shape"] == [1, 3, 16, 16], "the factory's input_size attribute is the default"


def test_the_rows_add_up_to_the_totals_with_what_forward_computes_itself(cli, user_file):
    # the 16-MAC gram matmul is in TwoInputs.forward, outside conv and fc: a row of its own
    r = cli("count", f"{user_file}:make@width=4", "--input-size", "3,16,16;10", "--depth", "1")
    assert r.code == 0, r.err
    assert r.out.splitlines()[0].endswith("inputs 1x3x16x16, 1x10  (archlab engine: meta trace, nothing run)")
    outside = [line.split() for line in r.out.splitlines() if line.startswith("(outside submodules)")]
    assert outside == [["(outside", "submodules)", "forward", "0", "16", "0.1%"]]
    out = cli("count", f"{user_file}:make@width=4", "--input-size", "3,16,16;10", "--depth", "1",
              "--format", "csv").out
    total, *layers = list(csv.reader(io.StringIO(out)))[1:]
    assert layers[-1][:2] == ["(outside submodules)", "forward"]
    assert sum(int(c[4]) for c in layers) == int(total[4]) and sum(int(c[5]) for c in layers) == int(total[5])
    # a zoo model's children account for everything: no such row
    assert "(outside submodules)" not in cli("count", "resnet18", "--depth", "1").out
    trace = cli("trace", f"{user_file}:make@width=4", "--input-size", "3,16,16;10", "--depth", "1")
    assert [line.split()[-2:] for line in trace.out.splitlines() if line.startswith("(outside")] == [["0", "16"]]
    d = cli("trace", f"{user_file}:make@width=4", "--input-size", "3,16,16;10", "--format", "json").json()
    assert d["macs"] == sum(r["macs"] for r in d["layers"] if r["depth"] == 1) + 16
    assert "(outside submodules)" not in cli("trace", "resnet18", "--depth", "1").out
    out = cli("trace", f"{user_file}:make@width=4", "--input-size", "3,16,16;10", "--depth", "1", "--format", "csv").out
    total, *layers = list(csv.DictReader(io.StringIO(out)))
    assert total["type"] == "(total)" and total["status"] == "complete" and layers[-1]["name"] == "(outside submodules)"
    assert sum(int(r["macs"]) for r in layers) == int(total["macs"]), "the trace CSV adds up too"


def test_a_factorys_required_parameters_are_options(cli, user_file):
    d = cli("count", f"{user_file}:needs@width=8,k=3", "--input-size", "3,8,8", "--format", "json").json()
    assert d["params"] == 8 * 27 + 8 and d["macs"] == 6 * 6 * 8 * 27
    assert_one_line_error(cli("count", f"{user_file}:needs@width=8", "--input-size", "3,8,8"),
                          "needs option 'k': give", ":needs@k=...")


def test_a_forward_that_reads_values_says_why_it_cannot_be_counted(cli, user_file):
    assert_one_line_error(cli("count", f"{user_file}:reads_values", "--input-size", "3,8,8"),
                          "item() cannot be called on meta tensors", "hold shapes but no values")


def test_a_module_instance_in_a_file_is_the_model(cli, user_file):
    d = cli("count", f"{user_file}:instance", "--input-size", "3,8,8", "--format", "json").json()
    assert d["params"] == 4 * 27 + 4 and d["macs"] == 6 * 6 * 4 * 27
    assert_one_line_error(cli("count", f"{user_file}:instance@k=3", "--input-size", "3,8,8"), "has no option 'k'")


def test_sys_exit_in_a_users_code_is_reported_not_obeyed(cli, user_file, tmp_path):
    assert_one_line_error(cli("count", f"{user_file}:quits", "--input-size", "3,8,8"),
                          "building", "SystemExit: the code called sys.exit(3)")
    assert_one_line_error(cli("count", f"{user_file}:quits_in_forward", "--input-size", "3,8,8"),
                          "the forward pass called sys.exit(0)")
    at_import = tmp_path / "exits.py"
    at_import.write_text("import sys\nsys.exit(5)\n")
    assert_one_line_error(cli("count", f"{at_import}:make", "--input-size", "3,8,8"), "loading", "sys.exit(5)")


def test_the_forwards_own_error_is_the_message(cli, user_file):
    # a model without a default input used to get "has no default input size" instead
    assert_one_line_error(cli("count", f"{user_file}:explodes", "--input-size", "3,8,8"), "forward exploded")


@pytest.mark.parametrize("suffix, args, needle", [
    (":make", (), "no default input size"),
    (":missing", ("--input-size", "3,8,8"), "has no 'missing'"),
    (":not_a_model", ("--input-size", "3,8,8"), "not an nn.Module"),
    ("x:make", ("--input-size", "3,8,8"), "no such file"),
    (":make@depth=3", ("--input-size", "3,8,8"), "no option 'depth'"),
])
def test_users_file_errors(cli, user_file, suffix, args, needle):
    assert_one_line_error(cli("count", user_file + suffix, *args), needle)


def test_package_module_callable_and_missing_packages(cli):
    d = cli("count", "torch.nn:Identity", "--input-size", "3,4,4", "--format", "json").json()
    assert d["macs"] == 0 and d["params"] == 0
    assert_one_line_error(cli("count", "no_such_package_xyz:f", "--input-size", "3,4,4"), "cannot import")
    try:
        import torchvision  # noqa: F401
    except Exception:
        assert_one_line_error(cli("count", "torchvision:resnet18"), "torchvision")
    try:
        import timm  # noqa: F401
    except ImportError:
        assert_one_line_error(cli("count", "timm:resnet18"), "pip install timm")


def test_examples_run():
    import subprocess
    import sys

    folder = os.path.join(os.path.dirname(__file__), "..", "examples")
    scripts = sorted(f for f in os.listdir(folder) if f.endswith(".py"))
    assert len(scripts) >= 4
    for script in scripts:
        p = subprocess.run([sys.executable, os.path.join(folder, script)], capture_output=True, text=True,
                           cwd=folder, timeout=300)
        assert p.returncode == 0, (script, p.stderr[-2000:])
        assert p.stdout.strip(), f"{script} printed nothing"


def test_fvcore_engine_on_a_users_two_input_model_without_a_default_input(cli, user_file):
    d = cli("count", f"{user_file}:make@width=4", "--input-size", "3,16,16;10", "--engine", "fvcore",
            "--format", "json").json()
    assert d["fvcore"]["agrees_with_archlab_macs"] and d["fvcore"]["macs"] == d["macs"]


PARTIAL_FILE = textwrap.dedent('''
    import torch
    from torch import nn

    class Cumulative(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return torch.cumsum(self.conv(x), 1)  # an op archlab has no cost rule for

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
    assert trace.out.splitlines()[1].startswith("NOT COUNTED") and "aten.cumsum.default x1" in trace.out
    d = cli("trace", spec, "--format", "json").json()
    assert d["status"] == "partial" and d["unsupported_ops"] == [{"op": "aten.cumsum.default", "count": 1}]
    lat = cli("latency", spec, "--min-time", "0.02", "--format", "json").json()
    assert lat["macs_status"] == "partial" and lat["macs"] == 4 * 6 * 6 * 27
    assert "PARTIAL" in cli("latency", spec, "--min-time", "0.02").out
    assert cli("trace", "lenet5", "--format", "json").json()["status"] == "complete"
    total = next(csv.DictReader(io.StringIO(cli("trace", spec, "--format", "csv").out)))
    assert total["type"] == "(total)" and total["status"] == "partial"


def test_a_lazy_module_is_a_clear_error_until_it_has_run_once():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    with pytest.raises(archlab.UserError, match="'2' is a lazy module whose shapes are not known yet"):
        archlab.count(model, input_size=(3, 8, 8))
    assert isinstance(model[2].weight, nn.parameter.UninitializedParameter), "left lazy"
    model(torch.zeros(1, 3, 8, 8))
    assert archlab.count(model, input_size=(3, 8, 8), depth=0).params == 4 * 27 + 4 + 2 * 144 + 2


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
    assert archlab.memory(model, input_size=(3, 8, 8)).params_bytes == r.params * 4  # --dtype fp32 default
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


@pytest.mark.parametrize("call, needle", [
    (lambda m: archlab.count(None), "a model is a registered name or spec (a string) or an nn.Module, not NoneType"),
    (lambda m: archlab.count(nn.Conv2d), "not type"),
    (lambda m: archlab.count(m, input_size=8), "input_size must be positive whole numbers"),
    (lambda m: archlab.count(m, input_size=(3, -8, 8)), "input_size must be positive whole numbers"),
    (lambda m: archlab.count(m, input_size=[(3, 16, 16), 10]), "input_size must be"),
    (lambda m: archlab.count(m, input_size=(3, 8, 8), batch=0), "batch must be a whole number of at least 1"),
    (lambda m: archlab.count(m, input_size=(3, 8, 8), batch="2"), "batch must be"),
    (lambda m: archlab.count("lenet5", res=32.5), "res must be a whole number of pixels"),
    (lambda m: archlab.count(m, input_size=(3, 8, 8), depth=None), "depth must be a whole number"),
    (lambda m: archlab.trace_layers(m, input_size=(3, 8, 8), depth="1"), "depth must be a whole number"),
    (lambda m: archlab.receptive_field(m, input_size=(3, 8, 8), depth=-1), "depth must be a whole number"),
    (lambda m: archlab.count(m, input_size=(3, 8, 8), res=8), "res applies to registered models"),
    (lambda m: archlab.count(m, input_size=(3, 8, 8), alpha=0.5), "alpha applies to registered models"),
    (lambda m: archlab.analyze("lenet5", analyses=()), "analyses must name one or more"),
    (lambda m: archlab.analyze("lenet5", bogus=1), "analyze() takes no option 'bogus'"),
])
def test_odd_api_arguments_are_user_errors(call, needle):
    with pytest.raises(archlab.UserError) as e:
        call(nn.Conv2d(3, 4, 3))
    assert needle in str(e.value)


def test_api_input_size_as_text_and_analyze_routing():
    assert archlab.count(nn.Conv2d(3, 4, 3), input_size="3,8,8", depth=0).macs == 6 * 6 * 4 * 27
    report = archlab.analyze("lenet5", analyses="count", engine="fvcore", force=True)
    assert set(report.to_dict()) == {"model", "input_shape", "count"}
    assert report.count.fvcore["agrees_with_archlab_macs"]


def test_first_line_of_an_error_message():
    from archlab.errors import first_line

    assert first_line(RuntimeError("shapes differ\n  detail")) == "shapes differ"
    assert first_line(KeyError()) == "KeyError" and first_line(ValueError("  "), "") == ""
