"""The public Python API (archlab/__init__.py, analysis/analyze.py): odd arguments are user errors."""

import pytest
from torch import nn

import archlab


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


def test_results_read_as_attributes_where_their_json_has_the_key():
    import torch

    r = archlab.count(torch.nn.Linear(4, 3), input_size=(4,), batch=2, training=True)
    d = r.to_dict()
    assert (r.forward_macs, r.backward_macs) == (d["forward_macs"], d["backward_macs"]) == (24, 24)  # the first layer: a weight gradient only
    assert (r.input_grad_macs, r.weight_grad_macs) == (d["input_grad_macs"], d["weight_grad_macs"])
    plain = archlab.count(torch.nn.Linear(4, 3), input_size=(4,))
    assert plain.forward_macs is None and "forward_macs" not in plain.to_dict()
    rf = archlab.receptive_field("lenet5")
    assert rf.rf.rf == rf.rf["rf"] == 32 and rf.rf.jump == rf.rf["jump"] and isinstance(rf.rf, dict)
    assert rf.layers[0].name == rf.layers[0]["name"]
    with pytest.raises(AttributeError):
        rf.rf.nosuch
