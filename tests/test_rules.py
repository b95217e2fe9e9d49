"""Per-op rules: the one registry mechanism (archlab.trace.rules) and user cost rules
(archlab.cost_rule)."""

import dataclasses

import pytest
import torch
from torch import nn

import archlab
from archlab.analysis.costs import COST_RULES, cost_rules_restored, remove_cost_rule
from archlab.trace.rules import OpRules, op_key
from archlab.errors import UserError


class Cos(nn.Module):
    # an op with no built-in rule (cos has one now): lgamma
    def forward(self, x):
        return torch.lgamma(x) + x


def count_cos():
    return archlab.count(Cos(), input_size=(3, 4, 4), depth=1)


def test_op_names_normalise_to_one_key():
    assert op_key("aten::cos") == op_key("cos") == op_key(torch.ops.aten.cos) == "aten::cos"
    assert op_key(torch.ops.aten.upsample_nearest2d.vec) == op_key("aten::upsample_nearest2d.vec") \
        == op_key("aten.upsample_nearest2d.vec") == "aten::upsample_nearest2d.vec"
    with pytest.raises(UserError):
        op_key("not an op")
    with pytest.raises(UserError):
        op_key(42)


def test_registry_duplicate_check_and_lookup_overload_first():
    rules = OpRules("test rule")
    rules.register("aten::upsample_nearest2d", "packet")
    with pytest.raises(UserError, match="already has a test rule"):
        rules.register(torch.ops.aten.upsample_nearest2d, "again")
    rules.register(torch.ops.aten.upsample_nearest2d.vec, "overload")
    assert rules.get("aten.upsample_nearest2d.vec") == "overload"
    assert rules.get(torch.ops.aten.upsample_nearest2d.vec) == "overload"
    assert rules.get(torch.ops.aten.upsample_nearest2d.default) == "packet"
    assert rules.get("aten.cos.default") is None
    rules.register("upsample_nearest2d", "replaced", replace=True)
    assert rules.get("aten.upsample_nearest2d.default") == "replaced"
    assert rules.unregister("aten::upsample_nearest2d.vec") == "overload"
    assert rules.get("aten.upsample_nearest2d.vec") == "replaced"


def test_user_rule_completes_the_count_exactly_as_it_says():
    before = count_cos()
    assert before.unsupported_ops == (("aten.lgamma.default", 1),) and before.status == "partial"
    with cost_rules_restored():
        @archlab.cost_rule("aten::lgamma", kind="elementwise")
        def cos_cost(op):
            return 0, 7 * op.output_numel

        after = count_cos()
    assert after.unsupported_ops == () and after.status == "complete"
    assert after.other_ops["elementwise"] == before.other_ops["elementwise"] + 7 * 48
    assert after.macs == before.macs
    assert count_cos().unsupported_ops == before.unsupported_ops, "the rule is gone after the context"


def test_user_rule_of_a_mac_kind_counts_macs_and_its_extra_as_bias():
    with cost_rules_restored():
        archlab.cost_rule(torch.ops.aten.lgamma, kind="matmul")(lambda op: (5, 2))
        r = count_cos()
        t = archlab.trace_layers(Cos(), input_size=(3, 4, 4))
    assert r.macs == 5 and r.macs_by_kind["matmul"] == 5 and r.other_ops["bias"] == 2
    assert t.macs == 5 and t.status == "complete"


def test_duplicate_of_a_builtin_rule_raises_unless_replace():
    with cost_rules_restored():
        with pytest.raises(UserError, match="aten::relu already has a cost rule"):
            archlab.cost_rule("relu", kind="activation")(lambda op: (0, 1))
        archlab.cost_rule("relu", kind="activation", replace=True)(lambda op: (0, 1))
        r = archlab.count(nn.ReLU(), input_size=(3, 4, 4))
        assert r.other_ops["activation"] == 1
    assert archlab.count(nn.ReLU(), input_size=(3, 4, 4)).other_ops["activation"] == 48


def test_remove_cost_rule():
    with cost_rules_restored():
        archlab.cost_rule("aten::lgamma", kind="elementwise")(lambda op: (0, 0))
        remove_cost_rule("lgamma")
        assert "aten::lgamma" not in COST_RULES
        assert count_cos().status == "partial"


def test_bad_kind():
    with pytest.raises(UserError, match="unknown cost kind 'trig'"):
        archlab.cost_rule("aten::cos", kind="trig")


@pytest.mark.parametrize("rule, message", [
    (lambda op: 1 / 0, r"failed: ZeroDivisionError: division by zero"),
    (lambda op: 5, r"returned 5: a rule returns \(macs, other_ops\)"),
    (lambda op: (0, 1.5), r"returned \(0, 1.5\)"),
    (lambda op: (0, -1), r"returned \(0, -1\)"),
    (lambda op: (3, 0), r"returned 3 MACs for kind 'elementwise'"),
])
def test_a_rule_that_fails_or_returns_garbage_is_a_one_line_user_error(rule, message):
    with cost_rules_restored():
        archlab.cost_rule("aten::lgamma", kind="elementwise")(rule)
        with pytest.raises(UserError, match=message) as e:
            count_cos()
    assert "\n" not in str(e.value) and "aten.lgamma.default" in str(e.value)


def test_the_view_is_read_only():
    seen = []
    with cost_rules_restored():
        @archlab.cost_rule("aten::lgamma", kind="elementwise")
        def look(op):
            seen.append(op)
            return 0, 0

        count_cos()
    (view,) = seen
    assert view.name == "lgamma" and view.target == "aten.lgamma.default"
    assert view.input_shapes == ((1, 3, 4, 4),) and view.output_shapes == ((1, 3, 4, 4),)
    assert view.output_numel == 48 and dict(view.attrs) == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.name = "sin"
    with pytest.raises(TypeError):
        view.attrs["kernel"] = (3, 3)


def test_a_rule_for_an_op_pytorch_does_not_have_is_refused():
    with cost_rules_restored():
        with pytest.raises(UserError, match="not an op PyTorch has registered"):
            archlab.cost_rule("aten::not_an_op", kind="elementwise")(lambda op: (0, 1))
        with pytest.raises(UserError, match="has no overload 'nosuch'"):
            archlab.cost_rule("aten::cos.nosuch", kind="elementwise")(lambda op: (0, 1))
        archlab.cost_rule("aten::lgamma.default", kind="elementwise")(lambda op: (0, 1))  # a real one still is
        assert "aten::not_an_op" not in COST_RULES.snapshot()
