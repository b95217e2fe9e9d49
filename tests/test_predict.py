"""archlab/measure/predict.py: the prediction's arithmetic on a given machine (accuracy: benchmarks/bench_roofline.py)."""

import pytest
from torch import nn

from archlab.analysis.traffic import OpTraffic
from archlab.measure.predict import predict_trace
from archlab.trace.run import trace_model
from conftest import fake_machine


def test_each_op_is_its_fixed_cost_plus_the_slower_of_compute_and_memory():
    m = fake_machine()
    model = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False), nn.ReLU(),
                          nn.Conv2d(32, 64, 1, bias=False), nn.Flatten(), nn.Linear(64 * 64, 10))
    tr, _ = trace_model(model, input_size=(32, 8, 8))
    p = predict_trace(tr, m)
    t = OpTraffic.of(tr)
    by_name = {}
    for op in tr.ops:
        by_name.setdefault(op.name, []).append(op.index)
    dw, pw = by_name["convolution"]
    flops = 2 * 32 * 64 * 9
    traffic = t.read[dw] + t.written[dw]
    assert p.ops[dw].kind == "depthwise 3x3 s1" and p.ops[dw].flops == flops
    assert p.ops[dw].seconds == pytest.approx(20e-6 + max(flops / 10e9, traffic / 10e9))
    assert p.ops[pw].kind == "pointwise 1x1"
    relu = by_name["relu"][0]
    assert p.ops[relu].seconds == pytest.approx((t.read[relu] + t.written[relu]) / 5e9 + 1e-6)
    assert p.ops[relu].bound in ("memory", "overhead") and p.ops[relu].compute_s == 0
    lin = by_name["addmm"][0]
    assert p.ops[lin].seconds == pytest.approx(max(2 * 4096 * 10 / 100e9, (t.read[lin] + t.written[lin]) / 5e9) + 1e-6)
    assert p.ops[lin].bound == "memory"  # batch 1: the weights' bytes, not the FLOPs, set the time
    for view in by_name.get("view", []) + by_name.get("t", []):
        assert p.ops[view].seconds == 0
    # and each module call's Python: the Sequential and its five children
    assert p.module_calls == 6 and p.seconds == pytest.approx(sum(o.seconds for o in p.ops) + 6 * 3e-6)
    rows = p.by_kind()
    assert sum(r["predicted_ms"] for r in rows) == pytest.approx(p.ms)
    assert p.predicted_ms == p.ms == p.seconds * 1e3  # the name LatencyResult uses, too


def test_the_kinds_a_prediction_tells_apart():
    m = fake_machine()
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.SiLU(), nn.Conv2d(8, 8, 1, stride=2), nn.ReLU(),
                          nn.Conv2d(8, 8, 5, padding=2, groups=8), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1))
    tr, _ = trace_model(model, input_size=(3, 32, 32))
    kinds = [p.kind for p in predict_trace(tr, m).ops if p.kind != "views"]
    # (adaptive average pooling to 1x1 runs as a mean: a reduction)
    assert kinds == ["stem", "activation (exp)", "pointwise 1x1 s2", "activation", "depthwise 5x5 s1", "max pooling",
                     "reduction"]



def test_a_machine_in_half_precision_moves_half_the_bytes():
    tr, _ = trace_model(nn.Sequential(nn.ReLU()), input_size=(4, 16, 16))
    free = {k: 0.0 for k in fake_machine().fixed_us}
    m32 = fake_machine(op_overhead_us=0.0, module_overhead_us=0.0, fixed_us=free)
    m16 = fake_machine(op_overhead_us=0.0, module_overhead_us=0.0, fixed_us=free, key={**m32.key, "dtype": "bf16"})
    assert predict_trace(tr, m16).seconds == pytest.approx(predict_trace(tr, m32).seconds / 2)
    # per tensor: max pooling's int64 indices stay 8 bytes each at half precision
    tr, _ = trace_model(nn.MaxPool2d(2, return_indices=True), input_size=(4, 8, 8))
    pool = next(p for p in predict_trace(tr, m16).ops if p.kind == "max pooling")
    assert pool.traffic == 4 * 8 * 8 * 2 + 4 * 4 * 4 * 2 + 4 * 4 * 4 * 8
