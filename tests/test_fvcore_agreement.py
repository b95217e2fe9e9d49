"""archlab's MACs equal fvcore's conv + linear + matmul counts, exactly, for every model.

fvcore runs a real forward (JIT trace) on real tensors, so this also proves each
model runs on real data. Big models run at a reduced resolution: the identity
being tested holds at any input size. Models with a fixed-size classifier (no
adaptive pooling) run at their own input.
"""

import pytest
import torch
from torch import nn

import archlab
from archlab.models.catalog import get_model_info

CROSS_CHECK_RES = {
    "inception_v3": 139,  # the valid-padding stem needs at least 75
    "inception_resnet_v2": 139,
    "unet": 188,  # the smallest input whose every level stays even: output 4x4
    "fcn8s": 64,
    "fcn16s": 64,
    "fcn32s": 64,
}
# fixed-size classifiers (flattened) or fixed pooling windows ("pool 8x8", "avg pool 7x7")
FIXED_INPUT = ("lenet", "alexnet", "vgg", "googlenet", "bn_inception", "inception_v2")


def _res(name):
    if name in CROSS_CHECK_RES:
        return CROSS_CHECK_RES[name]
    if name.startswith(FIXED_INPUT) and name != "alexnet_owt":
        return None
    return 64


@pytest.mark.slow
@pytest.mark.parametrize("name", archlab.list_models())
def test_macs_equal_fvcore_conv_linear_matmul(name):
    torch.manual_seed(0)
    result = archlab.count(name, res=_res(name), engine="fvcore", depth=0)
    fv = result.fvcore
    assert fv["macs"] == result.macs, (fv["mac_terms"], result.macs_by_kind)
    assert fv["agrees_with_archlab_macs"]
    # whatever fvcore adds to its total beyond the MACs is named, never mixed in silently
    assert fv["total"] == fv["macs"] + sum(fv["other_terms"].values())


def test_fvcore_engine_reports_the_reconciliation_in_json(cli):
    r = cli("count", "resnet18", "--res", "32", "--engine", "fvcore", "--format", "json", "--depth", "0")
    assert r.code == 0, r.err
    data = r.json()
    assert data["engine"] == "fvcore"
    fv = data["fvcore"]
    assert fv["macs"] == data["macs"] and fv["agrees_with_archlab_macs"] is True
    assert set(fv["other_terms"]) == {"batch_norm", "adaptive_avg_pool2d"}
    assert fv["total"] > data["macs"], "fvcore's total mixes batch norm and pooling into its 'flops'"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fvcore_engine_on_cuda():
    result = archlab.count("resnet18", res=64, engine="fvcore", device="cuda", depth=0)
    assert result.fvcore["device"] == "cuda"
    assert result.fvcore["macs"] == result.macs


def test_fvcore_engine_on_a_users_two_input_model_without_a_default_input(cli, user_file):
    d = cli("count", f"{user_file}:make@width=4", "--input-size", "3,16,16;10", "--engine", "fvcore",
            "--format", "json").json()
    assert d["fvcore"]["agrees_with_archlab_macs"] and d["fvcore"]["macs"] == d["macs"]


def test_fvcore_runs_a_bf16_model_in_its_own_dtype():
    from archlab.measure.fvcore import fvcore_count

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).to(torch.bfloat16)
    report = fvcore_count(model, ((1, 3, 8, 8),))
    assert report["macs"] == 4 * 6 * 6 * 27
    assert model[0].weight.dtype == torch.bfloat16


def test_fvcore_engine_takes_a_specs_res_and_batch(cli):
    # the spec's res= and batch= are the trace's input, not given a second time to the build (issue 15)
    d = cli("count", "mobilenet@alpha=0.25,res=64,batch=2", "--engine", "fvcore", "--depth", "0",
            "--format", "json").json()
    assert d["input_shape"] == [2, 3, 64, 64]
    assert d["fvcore"]["agrees_with_archlab_macs"] and d["fvcore"]["macs"] == d["macs"]
