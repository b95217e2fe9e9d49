"""measure/memory_peak.py (memory --measure): every input passed, a half-precision model run and
left as found."""

import pytest
import torch
from torch import nn

import archlab
from archlab.measure.memory_peak import measure_peak


# --- B8: a forward of several inputs ----------------------------------------------------------


def test_memory_measure_passes_every_input(cli, models):
    r = cli("memory", models("two"), "--input-size", "3,16,16;10", "--measure", "--format", "json")
    assert r.code == 0, r.err
    d = r.json()
    assert d["measured_peak_bytes"] > 0
    # the training-mode pass gets both inputs too
    assert d["training_activation_bytes"] > 0 and "training_note" not in d


def test_memory_measure_of_several_inputs_from_the_api():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 8, 3, padding=1)
            self.fc = nn.Linear(10, 8)

        def forward(self, image, vector):
            return torch.relu(self.c(image)).mean((2, 3)) @ self.fc(vector).T

    r = archlab.memory(Two(), input_size=[(3, 16, 16), (10,)], measure=True)
    assert r.measured_peak_bytes > 0 and r.training_activation_bytes > 0
    # measure_peak itself: one shape, or one per input
    assert measure_peak(Two(), ((1, 3, 16, 16), (1, 10)))[0] > 0
    # a lower bound that must hold: the input (3x8x8) and the conv's output (4x6x6), fp32, are both
    # allocated while the conv runs (on the CPU that is exactly the peak; an allocator may add more)
    assert measure_peak(nn.Conv2d(3, 4, 3), (1, 3, 8, 8))[0] >= (3 * 8 * 8 + 4 * 6 * 6) * 4


# --- B4: fp16 / bf16 models in the real runs --------------------------------------------------


def _conv_at(dtype):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_measure_peak_runs_a_half_precision_model_in_its_own_dtype_and_leaves_it_as_found(dtype):
    model = _conv_at(dtype)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    half, _ = measure_peak(model, (1, 3, 8, 8))
    full, _ = measure_peak(_conv_at(torch.float32), (1, 3, 8, 8))
    # the same forward at 2 bytes an element allocates half of what it allocates at 4: it ran in
    # the model's dtype, not cast to fp32 (the peak, on the CPU: the input, the conv's and the ReLU's outputs)
    assert full == (3 * 8 * 8 + 2 * 4 * 6 * 6) * 4
    assert half * 2 == full
    assert model[0].weight.dtype == dtype and model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_files_half_model_is_measured_in_fp16_and_billed_at_fp16(cli, models):
    # a file's factory that returns an fp16 model: its inputs, its bill and its measured forward are fp16
    assert measure_peak(models("half"), (1, 3, 8, 8), input_size=(3, 8, 8))[0] == (3 * 8 * 8 + 2 * 4 * 6 * 6) * 2
    r = cli("memory", models("half"), "--input-size", "3,8,8", "--measure", "-f", "json")
    assert r.code == 0, r.err
    d = r.json()
    assert (d["dtype"], d["act_dtype"], d["measured_dtype"]) == ("fp16", "fp16", "fp16")
    assert d["params_bytes"] == d["params"] * 2
    assert d["measured_peak_bytes"] == d["predicted_for_measure_bytes"] == (3 * 8 * 8 + 2 * 4 * 6 * 6) * 2


TOKENS = '''
import torch
from torch import nn


class Tokens(nn.Module):
    """Token ids in, logits out: the ids must reach the embedding as integers."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 8)
        self.head = nn.Linear(8, 50)

    def forward(self, ids, double=False):
        out = self.head(self.emb(ids))
        return out * 2 if double else out
'''


@pytest.fixture
def tokens_file(tmp_path):
    path = tmp_path / "tokens.py"
    path.write_text(TOKENS)
    return f"{path}:Tokens"


@pytest.mark.parametrize("how", [("memory", "--measure"), ("memory", "--training", "--measure"),
                                 ("count", "--engine", "fvcore")])
def test_token_id_inputs_keep_their_dtype_in_every_real_run(cli, tokens_file, how):
    # the real runs make their inputs as the trace does: int64 ids (and keyword options) reach the forward
    for size in ("int64:16", "ids=int64:16;double=true"):
        r = cli(how[0], tokens_file, "--input-size", size, *how[1:], "-f", "json")
        assert r.code == 0, r.err
        d = r.json()
        if how[0] == "memory" and "--training" in how:
            assert d["measured_training_peak_bytes"] > 0
        elif how[0] == "memory":
            assert d["measured_peak_bytes"] > 0
        else:  # fvcore's linear term: 16 tokens x 8 x 50 multiply-accumulates
            assert d["fvcore"]["macs"] == 16 * 8 * 50 == d["macs"]
