"""Inputs of any rank, dtype and name (archlab/spec.py's Inputs, made into tensors by
archlab/trace/inputs.py): --input-size / input_size forms, keyword inputs, forward options, a
factory's or model's declared inputs, and every bad form as one line."""

import pytest
import torch
from torch import nn

import archlab
from archlab.errors import UserError
from archlab.spec import ForwardOption, InputShape, parse_input_size
from conftest import assert_one_line_error

LM = '''
import torch
from torch import nn


class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(1000, 32)
        self.fc = nn.Linear(32, 1000)

    def forward(self, input_ids, attention_mask=None, use_cache=True):
        assert use_cache is False or use_cache is True
        h = self.emb(input_ids)
        if attention_mask is not None:
            h = h * attention_mask.unsqueeze(-1)
        return self.fc(h)


def make():
    return LM()


def declared():
    return LM()


declared.input_size = "input_ids=int64:16"


def examples():
    return LM()


examples.example_inputs = lambda: {"input_ids": torch.zeros(2, 10, dtype=torch.long), "use_cache": False}


class Self(LM):
    input_size = "int64:7"


def on_model():
    return Self()


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x)


def mlp():
    return MLP()


class Video(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 3)

    def forward(self, x):
        return self.conv(x)


def video():
    return Video()
'''

# the LM's MACs: 32 x 1000 per token (the fc); the embedding is a lookup (data), no MACs
PER_TOKEN = 32 * 1000


@pytest.fixture
def lm(tmp_path):
    path = tmp_path / "lm.py"
    path.write_text(LM)
    return str(path)


def test_parse_forms():
    assert parse_input_size("64") == (64,)
    assert parse_input_size("3,16,112,112") == (3, 16, 112, 112)
    one = parse_input_size("int64:128")
    assert one == (128,) and one.dtype == "int64" and one.name is None
    several = parse_input_size("input_ids=int64:128;attention_mask=int64:1x128;use_cache=false")
    assert several[0] == (128,) and several[0].name == "input_ids" and several[1] == (1, 128)
    assert several[2] == ForwardOption("use_cache", False)
    assert parse_input_size("3,16,16;10") == [(3, 16, 16), (10,)]


@pytest.mark.parametrize("size, macs", [("int64:128", 128 * PER_TOKEN),
                                        ("input_ids=int64:128;attention_mask=int64:128;use_cache=false",
                                         128 * PER_TOKEN)])
def test_token_ids_count_from_the_cli(cli, lm, size, macs):
    r = cli("count", f"{lm}:make", "--input-size", size, "--format", "json")
    assert r.code == 0, r.err
    d = r.json()
    assert d["macs"] == macs and d["unsupported_ops"] == []


def test_the_header_shows_dtype_and_keywords(cli, lm):
    size = "input_ids=int64:128;attention_mask=int64:128;use_cache=false"
    r = cli("count", f"{lm}:make", "--input-size", size, "--depth", "0")
    assert r.code == 0, r.err
    head = r.out.splitlines()[0]
    assert "inputs input_ids=int64:1x128, attention_mask=int64:1x128" in head and "use_cache=false" in head
    for command in ("memory", "trace"):
        r = cli(command, f"{lm}:make", "--input-size", "input_ids=int64:128")
        assert r.code == 0, r.err
        assert "input_ids=int64:1x128" in r.out.splitlines()[0], r.out


@pytest.mark.parametrize("factory, size, macs", [("mlp", "64", 640), ("video", "3,16,112,112", None)])
def test_any_rank(cli, lm, factory, size, macs):
    r = cli("count", f"{lm}:{factory}", "--input-size", size, "--format", "json")
    assert r.code == 0, r.err
    if macs is not None:
        assert r.json()["macs"] == macs
    else:  # Conv3d 3->4, 3x3x3, valid: output 4 x 14 x 110 x 110
        assert r.json()["macs"] == 4 * 14 * 110 * 110 * 3 * 27


@pytest.mark.parametrize("factory, head, tokens", [
    ("declared", "input input_ids=int64:1x16", 16),
    ("examples", "input input_ids=int64:1x10", 10),  # the examples' batch (2) is --batch's: 1
    ("on_model", "input int64:1x7", 7),
])
def test_a_factory_or_model_declares_its_inputs(cli, lm, factory, head, tokens):
    r = cli("count", f"{lm}:{factory}", "--depth", "0")
    assert r.code == 0, r.err
    assert head in r.out.splitlines()[0]
    assert f"{tokens * PER_TOKEN:,}" in r.out


def test_api_takes_the_same_forms(lm):
    from archlab.models.external import external_info

    model = external_info(f"{lm}:make").builder()
    r = archlab.count(model, input_size="input_ids=int64:12;use_cache=false", depth=0)
    assert r.macs == 12 * PER_TOKEN and r.status == "complete"
    assert r.input_shapes[0].dtype == "int64" and r.input_shapes[0].name == "input_ids"
    r = archlab.count(model, input_size=[InputShape((5,), "int64")], depth=0)
    assert r.macs == 5 * PER_TOKEN


@pytest.mark.parametrize("size, needle", [
    ("int65:10", "unknown dtype 'int65'"),
    ("0", "at least 1, got 0"),
    ("-3", "at least 1, got -3"),
    ("input_ids=", "the input 'input_ids=' has no shape"),
    ("foo=int64:12", "takes no keyword 'foo'"),
    ("128", "give each input's dtype"),  # a float input to an embedding: the dtype the model refuses
    ("float16:128", "give each input's dtype"),
    ("input_ids=int64:4;input_ids=int64:4", "gives the keyword 'input_ids' twice"),
    ("use_cache=false", "no tensor input"),
    ("int64:", "--input-size takes each input's shape"),
])
def test_every_bad_form_is_one_line(cli, lm, size, needle):
    assert_one_line_error(cli("count", f"{lm}:make", "--input-size", size), needle)


class _CastsKeys(nn.Module):
    """Token ids in, an attention whose keys its forward casts to fp16: the op refuses the model's own
    dtypes, not the input's."""

    def __init__(self):
        super().__init__()
        self.e = nn.Embedding(10, 8)

    def forward(self, ids):
        q = self.e(ids)[None]
        return torch.nn.functional.scaled_dot_product_attention(q, q.half(), q)


def test_a_dtype_refusal_with_integer_inputs_blames_the_model_not_the_inputs():
    # issue 25: the hint named the input's dtype, already int64 (Mixtral's experts, before they counted)
    with pytest.raises(UserError) as e:
        archlab.count(_CastsKeys(), input_size="int64:4")
    msg = str(e.value)
    assert "the inputs are int64 as given" in msg and "parameters are fp32" in msg
    assert "give each input's dtype" not in msg


def test_a_zoo_model_still_wants_its_rank(cli):
    assert_one_line_error(cli("count", "resnet50", "--input-size", "3,224"), "--input-size must be C,H,W")


def test_bad_api_forms():
    with pytest.raises(UserError, match="unknown dtype"):
        parse_input_size("int65:10")
    with pytest.raises(UserError, match="not a keyword argument name"):
        parse_input_size("1x=int64:3")


# --forward-kw: non-tensor keyword options of the forward, beside --input-size's inputs
OPTIONS = '''
from torch import nn


class Options(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 16)
        self.b = nn.Linear(16, 4)

    def forward(self, x, twice=False, scale=1.0, extra="unset"):
        # the values arrive typed: a bool, a number, None
        assert isinstance(twice, bool) and isinstance(scale, (int, float)) and extra in ("unset", None), \\
            (twice, scale, extra)
        y = self.a(x) * scale
        if twice:
            y = self.a(y)
        return self.b(y)


def make():
    return Options()


make.input_size = (16,)
'''
ONCE, TWICE = 16 * 16 + 16 * 4, 2 * 16 * 16 + 16 * 4


@pytest.fixture
def options_file(tmp_path):
    path = tmp_path / "options.py"
    path.write_text(OPTIONS)
    return str(path)


def test_parse_forward_kw():
    from archlab.spec import parse_forward_kw, with_forward_kw

    assert parse_forward_kw(["use_cache=true", "n=3;scale=0.5", "mask=none", "flag=False"]) == [
        ForwardOption("use_cache", True), ForwardOption("n", 3), ForwardOption("scale", 0.5),
        ForwardOption("mask", None), ForwardOption("flag", False)]
    assert type(parse_forward_kw("n=3")[0].value) is int
    assert with_forward_kw((3, 8, 8), "a=1") == [(3, 8, 8), ForwardOption("a", 1)]
    assert with_forward_kw(None, {"a": True}) == [ForwardOption("a", True)]
    assert with_forward_kw("int64:4;a=true", ["a=true"]) == [(4,), ForwardOption("a", True)]
    assert with_forward_kw((3, 8, 8), None) == (3, 8, 8)


@pytest.mark.parametrize("flags, macs, shown", [
    ([], ONCE, None),
    (["--forward-kw", "twice=true"], TWICE, "input=16;twice=true"),
    (["--forward-kw", "twice=true;scale=2.5", "--forward-kw", "extra=none"], TWICE,
     "input=16;twice=true;scale=2.5;extra=none"),
    (["--input-size", "16", "--forward-kw", "twice=false"], ONCE, "input=16;twice=false"),
    (["--input-size", "16;twice=true", "--forward-kw", "twice=true"], TWICE, "input=16;twice=true"),
    (["--input-size", "16;twice=true"], TWICE, "input=16;twice=true"),  # the form inside --input-size
])
def test_forward_kw_reaches_the_forward(cli, options_file, flags, macs, shown):
    r = cli("count", f"{options_file}:make", *flags, "--depth", "0")
    assert r.code == 0, r.err
    assert f"MACs {macs:,}".split()[1] in r.out
    head = r.out.splitlines()[0]
    if shown:
        assert f"make@{shown}  input 1x16" in head, head
    else:
        assert "make  input 1x16" in head


@pytest.mark.parametrize("command", ["count", "memory", "trace", "rf", "diagram", "count --training",
                                     "count --engine real", "latency --min-time 0.01"])
def test_every_command_shows_the_forward_options(cli, options_file, command):
    r = cli(*command.split(), f"{options_file}:make", "--forward-kw", "twice=true;scale=2")
    assert r.code == 0, r.err
    assert "make@input=16;twice=true;scale=2" in r.out.splitlines()[0] + r.out.splitlines()[1], r.out


def test_the_report_page_and_a_zoo_model(cli, options_file, tmp_path):
    out = tmp_path / "page.html"
    r = cli("report", f"{options_file}:make", "--forward-kw", "twice=true", "-o", str(out))
    assert r.code == 0, r.err
    assert "make@input=16;twice=true" in out.read_text()
    # a zoo model's default input, named in full with the option (the forward refuses it)
    assert_one_line_error(cli("count", "lenet5", "--forward-kw", "twice=true"), "takes no keyword 'twice'")


@pytest.mark.parametrize("value, needle", [
    ("twice=maybe", "a forward option's value is true, false, none, a whole number or a number"),
    ("twice=nan", "a forward option's value"),
    ("twice", "expects name=value"),
    ("=1", "expects name=value"),
    ("twice=", "expects name=value"),
    ("1x=1", "not a keyword argument name"),
    ("twice=true;twice=false", "gives 'twice' twice with different values"),
    ("nope=1", "takes no keyword 'nope'"),
])
def test_bad_forward_kw_is_one_line(cli, options_file, value, needle):
    assert_one_line_error(cli("count", f"{options_file}:make", "--forward-kw", value), needle)


def test_forward_kw_conflicts_are_one_line(cli, options_file, lm):
    assert_one_line_error(cli("count", f"{options_file}:make", "--input-size", "16;twice=false",
                              "--forward-kw", "twice=true"), "given twice with different values")
    assert_one_line_error(cli("count", f"{lm}:make", "--input-size", "input_ids=int64:8",
                              "--forward-kw", "input_ids=1"), "is a tensor input of --input-size already")


def test_forward_kw_overrides_what_the_factory_declares(cli, tmp_path):
    path = tmp_path / "declared.py"
    path.write_text(OPTIONS.replace("make.input_size = (16,)", 'make.input_size = "16;twice=true"'))
    assert f"{TWICE:,}" in cli("count", f"{path}:make", "--depth", "0").out
    r = cli("count", f"{path}:make", "--forward-kw", "twice=false", "--depth", "0")
    assert r.code == 0, r.err
    assert f"{ONCE:,}" in r.out and "make@input=16;twice=false" in r.out.splitlines()[0]


def test_api_forward_kw(options_file):
    from archlab.models.external import external_info

    spec = f"{options_file}:make"
    assert archlab.count(spec, forward_kw={"twice": True}, depth=0).macs == TWICE
    assert archlab.count(spec, forward_kw="twice=true;scale=3", depth=0).macs == TWICE
    model = external_info(spec).builder()
    assert archlab.count(model, input_size=(16,), forward_kw={"twice": True, "extra": None}, depth=0).macs == TWICE
    assert archlab.count(model, input_size=(16,), depth=0).macs == ONCE
    report = archlab.analyze(spec, analyses=("count", "trace"), forward_kw={"twice": True})
    assert report.to_dict()["count"]["macs"] == TWICE
    assert archlab.trace_layers(spec, forward_kw={"twice": True}).model.endswith("twice=true")
    with pytest.raises(UserError, match="input_size .* is required"):
        archlab.count(model, forward_kw={"twice": True})
    with pytest.raises(UserError, match="forward options alone do not say its inputs"):
        archlab.count(model, input_size=[ForwardOption("twice", True)])
    import torch

    with pytest.raises(UserError, match="is a tensor"):
        archlab.count(spec, forward_kw={"twice": torch.zeros(1)})


class _Reads(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, **kwargs):
        return self.fc(x) * kwargs.get("temperature", 1.0)


class _Ignores(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, **kwargs):
        return self.fc(x)


class _PassesDown(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = _Reads()

    def forward(self, x, **kwargs):
        return self.inner(x, **kwargs)


def test_a_forward_option_the_forward_never_reads_is_refused():
    # read by name (kwargs.get), or handed on whole to a submodule that reads it: counted
    assert archlab.count(_Reads(), input_size=(4,), forward_kw={"temperature": 0.7}).macs == 16
    assert archlab.count(_PassesDown(), input_size=(4,), forward_kw={"temperature": 0.7}).macs == 16
    # a misspelt option **kwargs swallows and nothing reads: one line, naming it
    for model, name in ((_Reads(), "bogus_option"), (_Ignores(), "temperature")):
        with pytest.raises(UserError, match=f"never reads '{name}'"):
            archlab.count(model, input_size=(4,), forward_kw={name: 1})


class _ReadsByAttribute(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.option = "scale"

    def forward(self, x, **kwargs):
        return self.fc(x) * kwargs.get(self.option, 1.0)


class _ReadsWithAHelper(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, **kwargs):
        return self.fc(x) * _option(kwargs, "unused") * kwargs["scale"]


def _option(options, name):
    return options.get(name, 1.0) * options.get("temperature", 1.0)


class _ReadsInOrder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, **kwargs):
        return self.fc(x) * (kwargs["scale"] if "scale" in kwargs else 1.0)


def test_a_key_the_code_does_not_spell_out_trusts_every_option():
    # kwargs.get(self.option) or kwargs handed to a helper could read any key: nothing is refused
    # (a refusal there would stop a model that works); a key spelt out is still checked
    assert archlab.count(_ReadsByAttribute(), input_size=(4,), forward_kw={"scale": 2.0}).macs == 16
    assert archlab.count(_ReadsWithAHelper(), input_size=(4,), forward_kw={"scale": 2.0, "temperature": 1}).macs == 16
    assert archlab.count(_ReadsInOrder(), input_size=(4,), forward_kw={"scale": 2.0}).macs == 16
    with pytest.raises(UserError, match="never reads 'scael'"):
        archlab.count(_ReadsInOrder(), input_size=(4,), forward_kw={"scael": 2.0})


def test_cli_refuses_a_forward_option_never_read_in_one_line(cli, tmp_path):
    path = tmp_path / "kw.py"
    path.write_text("from torch import nn\n\n\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                    "        self.fc = nn.Linear(4, 4)\n\n    def forward(self, x, **kwargs):\n"
                    "        return self.fc(x) * kwargs.get('temperature', 1.0)\n\n\ndef make():\n    return M()\n")
    assert_one_line_error(cli("count", f"{path}:make", "--input-size", "4", "--forward-kw", "foo=true"),
                          "never reads 'foo'")
    r = cli("count", f"{path}:make", "--input-size", "4", "--forward-kw", "temperature=0.7", "-f", "json")
    assert r.code == 0 and r.json()["macs"] == 16, r.err


def test_the_header_shows_a_floating_input_dtype_other_than_fp32(cli, tmp_path):
    # float16:4 is shown as such (like int64:1x128), an fp32 input as its bare shape
    path = tmp_path / "half.py"
    path.write_text("from torch import nn\n\ndef half():\n    return nn.Linear(4, 2).half()\n\n"
                    "def full():\n    return nn.Linear(4, 2)\n")
    r = cli("count", f"{path}:half", "--input-size", "float16:4")
    assert r.code == 0, r.err
    assert "  input float16:1x4  " in r.out.splitlines()[0]
    r = cli("count", f"{path}:full", "--input-size", "4")
    assert "  input 1x4  " in r.out.splitlines()[0]


@pytest.mark.parametrize("size", ["uint8:4", "bool:4", "complex64:4", "float16:4"])
def test_the_meta_trace_refuses_an_input_the_real_run_would_refuse(cli, tmp_path, size):
    # the meta kernels do not check dtypes; a real fp32 nn.Linear refuses each of these inputs,
    # and so does the count, in one line naming both dtypes
    path = tmp_path / "full.py"
    path.write_text("from torch import nn\n\ndef full():\n    return nn.Linear(4, 2)\n")
    dtype = size.split(":")[0]
    assert_one_line_error(cli("count", f"{path}:full", "--input-size", size), dtype, "float32")
    assert cli("count", f"{path}:full", "--input-size", "4").code == 0


def test_the_meta_trace_still_counts_a_half_model_on_half_inputs(cli, tmp_path):
    path = tmp_path / "half.py"
    path.write_text("import torch\nfrom torch import nn\n\ndef half():\n    return nn.Linear(4, 2).half()\n\n"
                    "def bf16():\n    return nn.Conv2d(3, 4, 3).to(torch.bfloat16)\n")
    assert cli("count", f"{path}:half", "--input-size", "float16:4").code == 0
    assert cli("count", f"{path}:bf16", "--input-size", "bfloat16:3x8x8").code == 0


def test_a_factory_returning_a_half_model_counts_on_inputs_of_its_dtype(cli, tmp_path):
    # float inputs take the model's own dtype from the CLI, as they do from the API
    path = tmp_path / "half.py"
    path.write_text("import torch\nfrom torch import nn\n\ndef half():\n    return nn.Linear(4, 2).half()\n\n"
                    "def bf16():\n    return nn.Conv2d(3, 4, 3).to(torch.bfloat16)\n")
    r = cli("count", f"{path}:half", "--input-size", "4")
    assert r.code == 0, r.err
    assert "  input float16:1x4  " in r.out.splitlines()[0]
    r = cli("count", f"{path}:bf16", "--input-size", "3x8x8", "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["macs"] == 4 * 6 * 6 * 3 * 3 * 3
