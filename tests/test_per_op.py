"""archlab/measure/per_op.py: each op's measured time, lined up with the trace (or per module when it is not)."""

import textwrap

import pytest
from torch import nn

import archlab
from conftest import assert_one_line_error


def test_per_op_times_line_up_with_the_trace(counted_calibrations):
    r = archlab.latency("mobilenet_v2@res=32", threads=1, min_time=0.05, per_op=True, predict=True)
    assert len(r.op_times.seconds) == len(r.trace.ops) and all(s >= 0 for s in r.op_times.seconds)
    # the real forward's ops, as the clock saw them, are the trace's one for one, in the same modules
    assert r.op_times.aligned and list(r.op_times.targets) == [op.target for op in r.trace.ops]
    assert list(r.op_times.modules) == [r.trace.calls[op.call].name if op.call >= 0 else "" for op in r.trace.ops]
    rows = r.op_rows()
    assert [row["measured_ms"] for row in rows] == [t * 1e3 for t in r.op_times.seconds]
    kinds = r.by_kind()
    assert sum(k["measured_ms"] for k in kinds) == pytest.approx(r.op_times.total * 1e3)
    assert sum(k["predicted_ms"] for k in kinds) == pytest.approx(r.predicted_ms)
    assert r.predicted_over_measured == pytest.approx(r.predicted_ms / r.median_ms)
    d = r.to_dict()
    assert d["predicted_ms"] == r.predicted_ms and len(d["ops"]) == len(r.trace.ops)
    assert d["ops_lined_up_with_trace"] is True and d["page_faults_per_forward"] >= 0


def test_a_layout_that_changes_the_ops_is_timed_per_module_not_op_by_op(counted_calibrations):
    # channels_last turns the classifier's view into a clone: the real ops are not the trace's
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    r = archlab.latency(model, input_size=(3, 8, 8), channels_last=True, min_time=0.02, per_layer=True, per_op=True,
                        predict=True)
    assert not r.op_times.aligned and not r.lined_up
    assert any("not lined up with the prediction" in note for note in r.notes)
    layers = {layer.name: layer for layer in r.layers}
    assert layers["0"].macs == 8 * 3 * 9 * 36 and layers["0"].time_ms > 0  # per module all the same
    assert sum(layer.time_ms for layer in r.layers) == pytest.approx(r.op_times.total * 1e3)
    assert all("measured_ms" not in k for k in r.by_kind())  # predicted only, by kind
    d = r.to_dict()
    assert d["ops_lined_up_with_trace"] is False
    assert sum(row["measured_ms"] for row in d["measured_by_op_name"]) == pytest.approx(r.op_times.total * 1e3)


def test_a_forward_that_runs_different_ops_on_different_calls_is_one_line(cli, tmp_path):
    path = tmp_path / "drift.py"
    path.write_text(textwrap.dedent('''
        from torch import nn
        class Drifts(nn.Module):
            def __init__(self):
                super().__init__()
                self.c = nn.Conv2d(3, 4, 3)
                self.calls = 0
            def forward(self, x):
                self.calls += 1
                y = self.c(x)
                return y.relu() if self.calls % 2 else y
        def make():
            return Drifts()
        make.input_size = (3, 8, 8)
    '''))
    assert_one_line_error(cli("latency", f"{path}:make", "--min-time", "0.01", "--per-op"),
                          "the forward ran different ops on different calls")
