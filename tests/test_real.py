"""--engine real (archlab/measure/real.py): builders and forwards that read tensor values are built
and run on the CPU under the same dispatch-level trace; recurrent layers with real weights; scripted
modules and uninitialized parameters refused in one line."""

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archlab
from archlab.errors import UserError
from conftest import assert_one_line_error

FILE = '''
import torch
from torch import nn


def regnet_like(width: int = 8):
    # the widths come from tensor values, as torchvision's RegNet computes them
    widths = (torch.arange(3) * width + width).round().int().tolist()
    layers, c = [], 3
    for w in widths:
        layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU()]
        c = w
    return nn.Sequential(*layers)


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 16)
        self.b = nn.Linear(16, 16)

    def forward(self, x):
        return self.a(x) if x.sum().item() > -1e9 else self.b(x)


def gate():
    return Gate()


def scripted():
    return torch.jit.script(nn.Sequential(nn.Linear(4, 4), nn.ReLU()))


class Uninit(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.parameter.UninitializedParameter()

    def forward(self, x):
        return x @ self.w


def uninit():
    return Uninit()


class Kw(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, **kwargs):
        return self.fc(x)


def kw():
    return Kw()


class Proposals(nn.Module):
    # a detector's proposals in small: the rows its first Linear scores above 0 go through the second,
    # so the MACs depend on the weights and the input
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 1)
        self.head = nn.Linear(16, 16)

    def forward(self, x):
        kept = torch.nonzero(self.fc(x)[0, :, 0] > 0).squeeze(1)
        return self.head(x[0, kept])


def proposals():
    return Proposals()


class Masked(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 8)

    def forward(self, input_ids, attention_mask):
        return self.emb(input_ids) * attention_mask.unsqueeze(-1)


def masked():
    return Masked()
'''

# 3 -> 8 -> 16 -> 24 channels, 3x3 convolutions on 8x8: 64 positions x Cout x Cin x 9
REGNET_MACS = 64 * 9 * (8 * 3 + 16 * 8 + 24 * 16)


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "real.py"
    p.write_text(FILE)
    return str(p)


def test_a_builder_that_reads_values_is_built_on_the_cpu_and_traced_on_meta(cli, path):
    # issue 25 item 5: the builder reads values (RegNet's widths), the forward does not: built on the
    # CPU, moved to meta, traced there; no forward runs, and the header says how it was built
    r = cli("count", f"{path}:regnet_like", "--input-size", "3,8,8", "--depth", "1")
    assert r.code == 0, r.err
    assert r.out.splitlines()[0].endswith("(archlab engine: built on the CPU (its builder reads tensor values), "
                                          "then a meta trace; no forward run)")
    assert f"{REGNET_MACS:,}" in r.out and "count complete" in r.out
    d = cli("count", f"{path}:regnet_like", "--input-size", "3,8,8", "-f", "json").json()
    assert (d["macs"], d["engine"], d["built_on"]) == (REGNET_MACS, "archlab", "cpu")
    # the same count as a real run
    r = cli("count", f"{path}:regnet_like", "--input-size", "3,8,8", "--engine", "real", "--depth", "1")
    assert r.code == 0, r.err
    assert "(real engine: real run, seed 0, the counts are for this input)" in r.out.splitlines()[0]
    assert f"{REGNET_MACS:,}" in r.out and "count complete" in r.out
    # every other command builds it the same way
    assert archlab.memory(f"{path}:regnet_like", input_size=(3, 8, 8)).params == d["params"]
    assert "built_on" not in cli("count", "lenet5", "-f", "json").json()  # a meta build says nothing


def test_a_cpu_build_that_cannot_fit_is_refused_in_one_line(cli, path, monkeypatch):
    from archlab.measure import guard

    monkeypatch.setattr(guard, "available_bytes", lambda device: 1000)  # 1 kB free: 4,872 fp32 weights do not fit
    assert_one_line_error(cli("count", f"{path}:regnet_like", "--input-size", "3,8,8"),
                          "on the CPU (its builder reads tensor values) takes 19.03 KiB of weights, over 90% of the "
                          "1,000 B free", "--engine real --force")


def test_a_forward_that_reads_values(cli, path):
    assert_one_line_error(cli("count", f"{path}:gate", "--input-size", "16"), "--engine real")
    r = cli("count", f"{path}:gate", "--input-size", "16", "--engine", "real", "--format", "json")
    assert r.code == 0, r.err
    d = r.json()
    assert d["macs"] == 256 and d["unsupported_ops"] == [] and d["engine"] == "real"


@pytest.mark.parametrize("cls, gates", [(nn.LSTM, 4), (nn.GRU, 3), (nn.RNN, 1)])
def test_recurrent_layers_with_real_weights(cls, gates):
    class Out(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = cls(8, 16, num_layers=2, bidirectional=True, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0]

    # per token and direction: layer 1 gates x 16 x (8 + 16), layer 2 gates x 16 x (32 + 16)
    expected = 5 * 2 * gates * 16 * ((8 + 16) + (32 + 16))
    real = archlab.count(Out(), input_size=(5, 8), engine="real", depth=0)
    assert real.macs == expected and real.status == "complete"
    with torch.device("meta"):
        meta_model = Out()
    assert archlab.count(meta_model, input_size=(5, 8), depth=0).macs == expected


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
def test_recurrent_gates_are_counted_on_the_real_path_as_on_meta(cls):
    """On the CPU PyTorch runs an LSTM with real weights as one oneDNN op per layer (mkldnn_rnn_layer),
    which hides the gates' work and which FlopCounterMode counts as nothing: --engine real runs recurrent
    layers without oneDNN, so every gate's sigmoid, tanh, mul and add is counted, the same as on meta,
    and the MACs equal FlopCounterMode's on that same decomposition."""
    class Out(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = cls(8, 16, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0]

    model = Out()
    real = archlab.count(model, input_size=(5, 8), engine="real", depth=0)
    with torch.device("meta"):
        meta = archlab.count(Out(), input_size=(5, 8), depth=0)
    assert real.other_ops == meta.other_ops and real.macs == meta.macs and real.status == "complete"
    # per step: sigmoid of 3 gates (LSTM: input, forget, output; GRU: 2) and tanh (LSTM: 2, of the cell
    # and the new content; GRU, RNN: 1), 16 units each
    activations = {nn.LSTM: 5, nn.GRU: 3, nn.RNN: 1}[cls] * 16 * 5
    assert real.other_ops["activation"] == activations
    if cls is nn.LSTM:
        assert real.other_ops["elementwise"] > 0
    assert torch._C._get_mkldnn_enabled(), "oneDNN is put back"
    torch._C._set_mkldnn_enabled(False)
    try:
        with FlopCounterMode(display=False) as counter:
            model(torch.randn(1, 5, 8))
    finally:
        torch._C._set_mkldnn_enabled(True)
    assert real.macs == counter.get_total_flops() // 2 == 5 * {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}[cls] * 16 * 24


def test_real_weights_on_the_meta_engine_name_engine_real():
    lstm = nn.LSTM(8, 16, batch_first=True)

    class Out(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = lstm

        def forward(self, x):
            return self.lstm(x)[0]

    with pytest.raises(UserError, match="--engine real"):
        archlab.count(Out(), input_size=(5, 8))


@pytest.mark.parametrize("factory, needle", [("scripted", "is a torch.jit.script module"),
                                             ("uninit", "'w' is an uninitialized parameter")])
@pytest.mark.parametrize("engine", ["archlab", "real"])
def test_scripted_and_uninitialized_are_refused_in_one_line(cli, path, factory, needle, engine):
    if factory == "scripted" and engine == "real":
        pytest.skip("counted for real: test_a_scripted_module_counts_under_engine_real")
    if factory == "uninit" and engine == "real":  # the real forward runs, and PyTorch's own error is the line
        needle = "the forward pass failed for input 4: ValueError: Attempted to use an uninitialized parameter"
    assert_one_line_error(cli("count", f"{path}:{factory}", "--input-size", "4", "--engine", engine), needle)


class _MakesItsParameter(nn.Module):
    """torchinfo's UninitializedParameterModel: the forward creates the parameter it uses."""

    def __init__(self):
        super().__init__()
        self.w = nn.parameter.UninitializedParameter()

    def forward(self, x):
        if isinstance(self.w, nn.parameter.UninitializedParameter):
            self.w = nn.Parameter(torch.ones(x.shape[-1], 3))
        return x @ self.w


def test_a_parameter_the_forward_creates_is_counted_under_engine_real_and_the_model_left_as_found():
    # issue 25 item 6: refused on meta (its shape is not known before the forward), counted for real
    model = _MakesItsParameter()
    with pytest.raises(UserError, match="a forward that creates it is counted with --engine real"):
        archlab.count(model, input_size=(4,))
    r = archlab.count(model, input_size=(4,), engine="real", depth=0)
    assert (r.params, r.macs) == (4 * 3, 4 * 3)
    assert isinstance(model.w, nn.parameter.UninitializedParameter)  # the user's model as it was


def test_a_scripted_module_counts_under_engine_real(cli, path):
    # TorchScript's interpreter runs the ops through the dispatcher, where a real run records them
    assert_one_line_error(cli("count", f"{path}:scripted", "--input-size", "4"), "--engine real")
    r = cli("count", f"{path}:scripted", "--input-size", "4", "--engine", "real", "-f", "json")
    assert r.code == 0, r.err
    assert (r.json()["macs"], r.json()["params"]) == (4 * 4, 4 * 4 + 4)
    assert "not called" not in cli("count", f"{path}:scripted", "--input-size", "4", "--engine", "real").out


def test_a_keyword_only_kwargs_took_must_be_used(cli, path):
    assert_one_line_error(cli("count", f"{path}:kw", "--input-size", "4;mask=int64:4"),
                          "did not use the input 'mask'")


def test_training_is_the_meta_engines(cli, path):
    assert_one_line_error(cli("count", f"{path}:gate", "--input-size", "16", "--engine", "real", "--training"),
                          "--training is counted by archlab's own engine")


@pytest.mark.parametrize("engine", ["archlab", "real"])
def test_transformer_encoder_with_a_padding_mask(engine):
    class Enc(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2)

        def forward(self, x, mask):
            return self.enc(x, src_key_padding_mask=mask.bool())

    # per layer, 10 tokens of width 32, 4 heads of 8: in_proj 32x96, out_proj 32x32, q @ k^T and
    # scores @ v 4 x 10 x 10 x 8 each, feed-forward 32x64 and 64x32 (no nested-tensor fast path)
    per_layer = 10 * 32 * 96 + 10 * 32 * 32 + 2 * 4 * 10 * 10 * 8 + 2 * 10 * 32 * 64
    r = archlab.count(Enc(), input_size="10,32;mask=int64:10", engine=engine, depth=0)
    assert r.macs == 2 * per_layer and r.status == "complete"
    assert torch.backends.mha.get_fastpath_enabled(), "the fast path is put back"


# --- issue 24: memory --engine real ------------------------------------------------------------


def test_memory_of_a_forward_that_reads_values_names_engine_real_and_bills_with_it(cli, path):
    assert_one_line_error(cli("memory", f"{path}:gate", "--input-size", "16"), "--engine real")
    r = cli("memory", f"{path}:gate", "--input-size", "16", "--batch", "4", "--engine", "real", "--measure",
            "-f", "json")
    assert r.code == 0, r.err
    d = r.json()
    # the real trace: the batch (4x16), the .sum() scalar and the chosen Linear's output (4x16), fp32
    assert d["params_bytes"] == 2 * (16 * 16 + 16) * 4
    assert d["activation_peak_held_bytes"] == d["predicted_for_measure_bytes"]
    assert d["measured_peak_bytes"] > 0 and d["measured_dtype"] == "fp32"
    # the training-mode pass runs for real too: the batch (saved by the chosen Linear), 4x16 fp32
    assert d["training_activation_bytes"] == 4 * 16 * 4 and "training_note" not in d


def test_memory_engine_real_equals_the_meta_engine_where_both_trace():
    meta = archlab.memory("resnet18", res=64, batch=2)
    real = archlab.memory("resnet18", res=64, batch=2, engine="real")
    assert real.to_dict() == meta.to_dict()


def test_memory_engine_real_of_a_builder_that_reads_values(path):
    r = archlab.memory(f"{path}:regnet_like", input_size=(3, 8, 8), engine="real")
    assert r.params == (3 * 9 + 1) * 8 + (8 * 9 + 1) * 16 + (16 * 9 + 1) * 24
    import runpy

    built_here = runpy.run_path(path)["regnet_like"]()  # built on the CPU, then billed on the meta engine
    meta_of_the_same = archlab.memory(built_here, input_size=(3, 8, 8))
    assert r.to_dict()["params_bytes"] == meta_of_the_same.params_bytes
    assert r.training_activation_bytes == meta_of_the_same.training_activation_bytes > 0


def test_memory_engine_is_checked(cli):
    assert_one_line_error(cli("memory", "lenet5", "--engine", "fvcore"), "unknown engine 'fvcore'")
    assert_one_line_error(cli("memory", "lenet5", "--engine", "real", "--training"), "--engine real")


# issue 25 item A: --engine real seeds the weights as well as the inputs; --seed N; the caller's RNG kept

PROPOSALS_ROWS = 32  # --input-size 32,16: one batch of 32 rows of 16 features


def _proposals_macs(cli, path, *args):
    r = cli("count", f"{path}:proposals", "--input-size", f"{PROPOSALS_ROWS},16", "--engine", "real",
            "--format", "json", *args)
    assert r.code == 0, r.err
    return r.json()


def test_engine_real_counts_a_weight_dependent_forward_the_same_run_to_run(cli, path):
    # the global RNG in two different states, as in two processes: the count must not depend on it
    torch.manual_seed(1)
    first = _proposals_macs(cli, path)
    torch.manual_seed(2)
    second = _proposals_macs(cli, path)
    assert first["macs"] == second["macs"] and first["seed"] == second["seed"] == 0
    # scoring every row (16 MACs each) and 16 x 16 MACs per kept row, whatever the rows kept
    kept, rest = divmod(first["macs"] - PROPOSALS_ROWS * 16, 16 * 16)
    assert rest == 0 and 0 <= kept <= PROPOSALS_ROWS


def test_engine_real_leaves_the_callers_rng_as_found(path):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    archlab.count(f"{path}:proposals", input_size=f"{PROPOSALS_ROWS},16", engine="real", seed=4)
    archlab.memory(f"{path}:proposals", input_size=f"{PROPOSALS_ROWS},16", engine="real", seed=4)
    assert torch.equal(torch.get_rng_state(), state)


def test_engine_real_seed_option_changes_the_weights_and_inputs(cli, path):
    base = archlab.count(f"{path}:proposals", input_size=f"{PROPOSALS_ROWS},16", engine="real").macs
    other = next((s for s in range(1, 50) if archlab.count(f"{path}:proposals", input_size=f"{PROPOSALS_ROWS},16",
                                                           engine="real", seed=s).macs != base), None)
    assert other is not None  # 49 seeds all keeping the same number of rows out of 32 would be a fixed seed
    expected = archlab.count(f"{path}:proposals", input_size=f"{PROPOSALS_ROWS},16", engine="real", seed=other).macs
    d = _proposals_macs(cli, path, "--seed", str(other))
    assert d["macs"] == expected != base and d["seed"] == other
    r = cli("count", f"{path}:proposals", "--input-size", f"{PROPOSALS_ROWS},16", "--engine", "real",
            "--seed", str(other), "--depth", "0")
    assert r.code == 0, r.err
    assert f"(real engine: real run, seed {other}, the counts are for this input)" in r.out.splitlines()[0]
    assert f"{expected:,}" in r.out


@pytest.mark.parametrize("command", ["count", "memory", "latency", "roofline"])
def test_seed_needs_engine_real(cli, path, command):
    assert_one_line_error(cli(command, f"{path}:proposals", "--input-size", f"{PROPOSALS_ROWS},16", "--seed", "1"),
                          "--seed", "--engine real")


def test_seed_with_a_training_bill_says_drop_it_not_add_engine_real(cli, path):
    # --engine real would be refused in turn with --training: the one line leads out, not in a loop
    r = cli("memory", f"{path}:proposals", "--input-size", f"{PROPOSALS_ROWS},16", "--training", "--seed", "1")
    assert_one_line_error(r, "drop --seed")
    assert "add --engine real" not in r.err


def test_a_bad_seed_is_one_line(cli, path):
    assert_one_line_error(cli("count", f"{path}:proposals", "--input-size", f"{PROPOSALS_ROWS},16", "--engine", "real",
                              "--seed", "-1"), "seed", "-1")


# issue 25 item B: under --engine real an integer input named ...mask is ones, token ids are drawn in the vocabulary

TOKENS = "input_ids=int64:16;attention_mask=int64:16"


def test_engine_real_masks_are_ones_and_token_ids_are_in_the_vocabulary(path):
    from archlab.spec import Inputs
    from archlab.trace.run import build

    built = build(f"{path}:masked", Inputs.of(TOKENS), real=True)
    mask, ids = built.kwargs["attention_mask"], built.kwargs["input_ids"]
    assert mask.dtype == ids.dtype == torch.int64 and mask.shape == ids.shape == (1, 16)
    assert torch.equal(mask, torch.ones(1, 16, dtype=torch.int64))  # no token is padding
    assert 0 <= ids.min() and ids.max() < 50 and len(ids.unique()) > 1  # the Embedding(50, 8)'s ids, not all 0
    given = build(built.module, Inputs.of(TOKENS), real=True)  # the nn.Module given as such: the same inputs
    assert torch.equal(given.kwargs["attention_mask"], mask) and torch.equal(given.kwargs["input_ids"], ids)


def test_engine_real_token_ids_are_zeros_where_no_vocabulary_is_known():
    from archlab.spec import Inputs
    from archlab.trace.run import build

    built = build(nn.Linear(16, 4), Inputs.of("idx=int64:16"), real=True)
    assert torch.equal(built.kwargs["idx"], torch.zeros(1, 16, dtype=torch.int64))


def test_engine_real_token_ids_of_a_narrow_dtype_stay_within_what_it_holds():
    # a uint8 token-id input of a 1000-word vocabulary: ids 0..255 (it was refused as "too large to describe")
    from archlab.trace.inputs import tensor_maker

    ids = tensor_maker(real=True, vocab=1000)((4, 64), torch.uint8, "input_ids")
    assert ids.dtype == torch.uint8 and ids.shape == (4, 64) and int(ids.max()) > 200 and len(ids.unique()) > 100
    small = tensor_maker(real=True, vocab=50)((4, 64), torch.int16, "input_ids")
    assert int(small.max()) < 50


def test_engine_real_counts_a_masked_embedding(cli, path):
    r = cli("count", f"{path}:masked", "--input-size", TOKENS, "--engine", "real", "--format", "json")
    assert r.code == 0, r.err
    assert r.json()["seed"] == 0 and r.json()["unsupported_ops"] == []


def test_engine_real_bert_equals_flop_counter_on_the_same_inputs():
    transformers = pytest.importorskip("transformers")
    from archlab.spec import Inputs
    from archlab.trace.run import build

    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=32)
    # eager attention: matmuls FlopCounterMode has formulas for (it has none for the CPU's fused sdpa op)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.BertModel(config).eval()
    built = build(model, Inputs.of(TOKENS), real=True)
    ids, mask = built.kwargs["input_ids"], built.kwargs["attention_mask"]
    assert torch.equal(mask, torch.ones_like(mask)) and ids.max() < 100 and len(ids.unique()) > 1
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(**built.kwargs)
    r = archlab.count(model, input_size=TOKENS, engine="real")
    assert r.macs == counter.get_total_flops() // 2 and r.unsupported_ops == ()


def test_memory_engine_real_training_pass_leaves_the_callers_rng_as_found():
    # memory's training-mode pass runs the dropout for real: its draws come from the seed, not the caller's RNG
    model = nn.Sequential(nn.Linear(16, 16), nn.Dropout(0.5), nn.Linear(16, 4))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    archlab.memory(model, input_size="16", engine="real", seed=4)
    assert torch.equal(torch.get_rng_state(), state)


def test_analyze_passes_the_seed_to_its_real_count(path):
    counts = {s: archlab.count(f"{path}:proposals", input_size=f"{PROPOSALS_ROWS},16", engine="real", seed=s)
              for s in range(6)}
    for s, r in counts.items():
        report = archlab.analyze(f"{path}:proposals", f"{PROPOSALS_ROWS},16", "count", engine="real", seed=s)
        assert report.count.macs == r.macs and report.count.seed == s
    assert len({r.macs for r in counts.values()}) > 1  # the seeds do differ here: the test can tell them apart
