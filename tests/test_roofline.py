"""Issue 16: memory traffic, the measurement protocol, per-op timing, calibration and the roofline.

No test here asserts a speed: the prediction's accuracy is benchmarks/bench_roofline.py's. What is
tested is exact (traffic bytes, the prediction's arithmetic on a given machine, the plotted
series), or a mechanism (the calibration cache is used and invalidated; the allocator setting
takes the page faults out of a forward)."""

import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import archlab
from archlab.trace.run import trace_model
from archlab.analysis.traffic import OpTraffic
from archlab.measure import calibrate as cal
from archlab.measure.calibrate import Machine
from archlab.measure.predict import predict_trace
from conftest import assert_one_line_error

F32 = 4


def _only(model: nn.Module, size, **kw):
    """(read, written) bytes of a one-layer model, from archlab.count's total and its one row."""
    r = archlab.count(model, input_size=size, depth=1, **kw)
    d = r.to_dict()
    assert d["read_bytes"] == r.read_bytes and d["traffic_bytes"] == r.read_bytes + r.written_bytes
    return r.read_bytes, r.written_bytes, r


# --- memory traffic, exactly -----------------------------------------------------------------


def test_traffic_of_a_convolution_with_bias():
    read, written, r = _only(nn.Conv2d(3, 8, 3), (3, 10, 10))
    assert read == (3 * 10 * 10 + 8 * 3 * 3 * 3 + 8) * F32  # input, weight, bias: each read once
    assert written == 8 * 8 * 8 * F32
    assert r.arithmetic_intensity == pytest.approx(2 * r.macs / (read + written))


def test_traffic_of_a_convolution_without_bias():
    read, written, _ = _only(nn.Conv2d(3, 8, 3, bias=False), (3, 10, 10))
    assert read == (3 * 10 * 10 + 8 * 3 * 3 * 3) * F32
    assert written == 8 * 8 * 8 * F32


def test_traffic_of_a_depthwise_convolution():
    read, written, r = _only(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), (16, 14, 14))
    assert read == (16 * 14 * 14 + 16 * 9) * F32 and written == 16 * 14 * 14 * F32
    # a depthwise layer does 9 MACs per output element on 8 bytes moved per element: ~2 FLOP/B
    assert r.arithmetic_intensity == pytest.approx(2 * 9 * 16 * 196 / ((2 * 16 * 196 + 144) * F32))


def test_traffic_of_a_linear_layer():
    read, written, _ = _only(nn.Linear(64, 10), (64,))
    assert read == (64 + 64 * 10 + 10) * F32 and written == 10 * F32


class Add(nn.Module):
    def forward(self, x):
        return x + x.flip(1)


class Cat(nn.Module):
    def forward(self, x):
        return torch.cat([x, x * 2], 1)


class View(nn.Module):
    def forward(self, x):
        return x.view(x.shape[0], -1).permute(1, 0)


def test_traffic_of_an_addition_a_concatenation_and_a_view():
    n = 4 * 5 * 5
    tr, _ = trace_model(Add(), input_size=(4, 5, 5))
    t = OpTraffic.of(tr)
    ops = {op.name: op.index for op in tr.ops}
    assert (t.read[ops["flip"]], t.written[ops["flip"]]) == (n * F32, n * F32)
    assert (t.read[ops["add"]], t.written[ops["add"]]) == (2 * n * F32, n * F32)

    tr, _ = trace_model(Cat(), input_size=(4, 5, 5))
    t = OpTraffic.of(tr)
    cat = next(op.index for op in tr.ops if op.name == "cat")
    assert (t.read[cat], t.written[cat]) == (2 * n * F32, 2 * n * F32)

    read, written, r = _only(View(), (4, 5, 5))
    assert (read, written) == (0, 0)  # views move nothing
    assert r.arithmetic_intensity is None and r.to_dict()["arithmetic_intensity"] is None


def test_a_tensor_passed_twice_is_read_once_and_a_broadcast_reads_its_storage():
    class Square(nn.Module):
        def forward(self, x):
            return x * x

    read, written, _ = _only(Square(), (4, 5, 5))
    assert (read, written) == (100 * F32, 100 * F32)

    class Bias(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = nn.Parameter(torch.zeros(4, 1, 1))

        def forward(self, x):
            return x + self.b.expand_as(x)  # a (4,1,1) bias broadcast over a 4x5x5 map

    tr, _ = trace_model(Bias(), input_size=(4, 5, 5))
    t = OpTraffic.of(tr)
    add = next(op.index for op in tr.ops if op.name == "add")
    assert t.read[add] == (100 + 4) * F32


def test_traffic_follows_the_dtype_and_a_lookup_reads_its_rows():
    class Lookup(nn.Module):
        def __init__(self):
            super().__init__()
            self.e = nn.Embedding(1000, 16)

        def forward(self, ids):
            return self.e(ids)

    read, written, _ = _only(Lookup(), "int64:7")
    assert written == 7 * 16 * F32
    assert read == 7 * 8 + 7 * 16 * F32  # the int64 indices and the rows gathered, not the 1000-row table


def test_layer_rows_add_up_to_the_total_and_show_in_every_format(cli):
    r = archlab.count("mobilenet_v2@res=64", depth=1)
    top = [layer for layer in r.layers if layer.depth == 1]
    assert sum(layer.traffic_bytes for layer in top) == r.traffic_bytes  # no op outside a top-level module
    out = cli("count", "mobilenet_v2@res=64", "--depth", "1")
    assert "memory traffic" in out.out and "FLOP/B" in out.out and "arithmetic intensity" in out.out
    d = cli("trace", "lenet5", "--format", "json").json()
    c1 = next(row for row in d["layers"] if row["name"] == "c1")
    assert c1["read_bytes"] == (32 * 32 + 6 * 25 + 6) * F32 and c1["written_bytes"] == 6 * 28 * 28 * F32
    assert "traffic_bytes" in cli("trace", "lenet5", "--format", "csv").out.splitlines()[0]


# --- the prediction's arithmetic on a given machine -------------------------------------------


def fake_machine(**over) -> Machine:
    kw = dict(key={"machine": "test", "device": "cpu", "threads": 1, "dtype": "fp32", "torch": torch.__version__,
                   "version": cal.VERSION},
              peak_gflops=100.0, bandwidth_gbs=10.0, op_overhead_us=2.0, module_overhead_us=3.0,
              fixed_us={**{k: 20.0 for k in cal.CONV_BENCHMARKS}, **{k: 1.0 for k in cal.MEMORY_KINDS},
                        **{f"{k} pooling": 4.0 for k in cal.POOL_KINDS}},
              conv_gflops={k: 100.0 * (0.1 if k.startswith("depthwise") else 1.0) for k in cal.CONV_BENCHMARKS},
              memory_gbs={k: 5.0 for k in cal.MEMORY_KINDS}, pool_rate={k: 1.0 for k in cal.POOL_KINDS},
              measured_at="fixed")
    kw.update(over)
    return Machine(**kw)


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


def test_the_kinds_a_prediction_tells_apart():
    m = fake_machine()
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.SiLU(), nn.Conv2d(8, 8, 1, stride=2), nn.ReLU(),
                          nn.Conv2d(8, 8, 5, padding=2, groups=8), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1))
    tr, _ = trace_model(model, input_size=(3, 32, 32))
    kinds = [p.kind for p in predict_trace(tr, m).ops if p.kind != "views"]
    # (adaptive average pooling to 1x1 runs as a mean: a reduction)
    assert kinds == ["stem", "activation (exp)", "pointwise 1x1 s2", "activation", "depthwise 5x5 s1", "max pooling",
                     "reduction"]


def test_calibrations_before_and_after_average_geometrically():
    a = fake_machine(peak_gflops=100.0, fixed_us={**fake_machine().fixed_us, "stem": 10.0})
    b = fake_machine(peak_gflops=400.0, fixed_us={**fake_machine().fixed_us, "stem": 40.0})
    m = cal.mean_machine([a, b])
    assert m.peak_gflops == pytest.approx(200.0) and m.fixed_us["stem"] == pytest.approx(20.0)
    assert m.bandwidth_gbs == pytest.approx(10.0) and m.key == a.key
    with pytest.raises(ValueError):
        cal.mean_machine([a, fake_machine(key={**a.key, "threads": 2})])


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


# --- the calibration cache -------------------------------------------------------------------


@pytest.fixture
def counted_calibrations(monkeypatch, tmp_path):
    monkeypatch.setenv("ARCHLAB_CACHE_DIR", str(tmp_path))
    calls = []

    def fake(device="cpu", threads=1, dtype="fp32", progress=None):
        calls.append((device, threads, dtype))
        return fake_machine(key=cal.machine_key(device, threads, dtype))

    monkeypatch.setattr(cal, "calibrate", fake)
    return calls


def test_the_calibration_is_cached_and_used(counted_calibrations):
    first = cal.machine("cpu", 1, "fp32")
    again = cal.machine("cpu", 1, "fp32")
    assert len(counted_calibrations) == 1
    assert not first.cached and again.cached and again.peak_gflops == first.peak_gflops
    cal.machine("cpu", 1, "fp32", fresh=True)  # archlab calibrate: measured afresh, replaced
    assert len(counted_calibrations) == 2


def test_the_cache_is_kept_per_threads_dtype_and_torch(counted_calibrations, monkeypatch):
    cal.machine("cpu", 1, "fp32")
    cal.machine("cpu", 2, "fp32")
    cal.machine("cpu", 1, "bf16")
    assert len(counted_calibrations) == 3
    cal.machine("cpu", 2, "fp32")
    assert len(counted_calibrations) == 3  # each setting's own entry
    monkeypatch.setattr(torch, "__version__", "9.9.9")  # another torch: measured again
    cal.machine("cpu", 1, "fp32")
    assert len(counted_calibrations) == 4


def test_a_broken_cache_or_none_is_not_an_error(counted_calibrations, monkeypatch, tmp_path):
    (tmp_path / cal.CACHE_FILE).write_text("{not json")
    assert cal.machine("cpu", 1, "fp32").peak_gflops == 100.0
    assert json.loads((tmp_path / cal.CACHE_FILE).read_text())  # rewritten whole
    (tmp_path / cal.CACHE_FILE).write_text(json.dumps({json.dumps(cal.machine_key("cpu", 1, "fp32"),
                                                                  sort_keys=True): {"peak_gflops": "x"}}))
    cal.machine("cpu", 1, "fp32")
    assert len(counted_calibrations) == 2
    monkeypatch.setenv("ARCHLAB_CACHE_DIR", "off")
    cal.machine("cpu", 1, "fp32")
    cal.machine("cpu", 1, "fp32")
    assert len(counted_calibrations) == 4


def test_a_damaged_cache_entry_is_measured_again(counted_calibrations, tmp_path):
    cal.machine("cpu", 1, "fp32")
    path = tmp_path / cal.CACHE_FILE
    for damage in ({"bandwidth_gbs": 0}, {"peak_gflops": "fast"}, {"conv_gflops": {"dense kxk": 1.0}},
                   {"fixed_us": {}}, {"memory_gbs": None}):
        data = json.loads(path.read_text())
        (entry,) = data.values()
        entry.update(damage)
        path.write_text(json.dumps(data))
        before = len(counted_calibrations)
        assert cal.machine("cpu", 1, "fp32").peak_gflops == 100.0  # measured again, and stored whole
        assert len(counted_calibrations) == before + 1, damage


def test_a_real_calibration_measures_every_quantity(monkeypatch, tmp_path, cli):
    monkeypatch.setenv("ARCHLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cal, "TIME_PER_BENCHMARK", 0.005)
    d = cli("calibrate", "--threads", "1", "--format", "json").json()
    assert d["key"]["threads"] == 1 and d["key"]["dtype"] == "fp32" and d["cached"] is False
    values = [d["peak_gflops"], d["bandwidth_gbs"], d["op_overhead_us"], *d["conv_gflops"].values(),
              *d["memory_gbs"].values(), *d["pool_rate"].values()]
    assert all(math.isfinite(v) and v > 0 for v in values)
    assert all(math.isfinite(v) and v >= 0 for v in [d["module_overhead_us"], *d["fixed_us"].values()])
    assert set(d["fixed_us"]) == {*cal.CONV_BENCHMARKS, *cal.MEMORY_KINDS, *(f"{k} pooling" for k in cal.POOL_KINDS)}
    assert set(d["conv_gflops"]) == set(cal.CONV_BENCHMARKS) and set(d["memory_gbs"]) == set(cal.MEMORY_KINDS)
    shown = cli("calibrate", "--threads", "1", "--show")
    assert shown.code == 0 and "read from the cache" in shown.out and "peak compute" in shown.out


@pytest.mark.parametrize("args,needle", [
    (("--threads", "0"), "--threads must be at least 1"),
    (("--device", "tpu"), "device"),
])
def test_calibrate_bad_input_is_one_line(cli, args, needle):
    assert_one_line_error(cli("calibrate", *args), needle)


# --- per-op timing and the measurement protocol -----------------------------------------------


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


ORDER_PROBE = textwrap.dedent('''
    import json, sys
    import archlab.measure.latency as lat
    out = {}
    for names in (["mobilenet_v2@res=96"], ["resnet50@res=96", "mobilenet_v2@res=96"]):
        r = lat.measure_all(names, threads=1, min_time=0.2)
        out[" ".join(names)] = {x.model: x.page_faults_per_forward for x in r}
    print(json.dumps(out))
''')


def _faults(mode: str) -> dict:
    p = subprocess.run([sys.executable, "-c", ORDER_PROBE, mode], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator: Linux only")
def test_a_models_forward_does_not_depend_on_what_ran_before():
    # the mechanism behind "MobileNetV2 takes 26-31 ms alone and 16-18 ms after bigger models": glibc
    # returns a freed activation's pages and faults them in again next forward, unless its dynamic
    # threshold was raised by an earlier, bigger model (on this machine, without the setting, a fresh
    # process measured 0 to ~1,000 faults per forward of MobileNetV2@96 alone, run to run: glibc's
    # own history decides). Held steady, a forward faults in nothing of its activations, in any order:
    # at most one arena of Python's own allocator (256 KiB = 64 pages, which it maps and gives back
    # whatever glibc's setting), never the activations' hundreds.
    fixed = _faults("fixed")
    for run in fixed.values():
        assert all(f <= 64 for f in run.values()), fixed


class FakeLibc:
    """glibc's mallopt and malloc_trim, recorded; ``accepts``: the largest threshold it takes."""

    def __init__(self, accepts):
        self.accepts, self.calls = accepts, []

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return int(value <= self.accepts)

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.mark.parametrize("accepts,held", [(1 << 30, 1 << 30), (32 << 20, 32 << 20), (1 << 20, None)])
def test_the_allocator_is_held_steady_and_set_back(monkeypatch, accepts, held):
    import archlab.measure.setting as setting

    libc = FakeLibc(accepts)
    monkeypatch.setattr(setting, "_libc", lambda: libc)
    for key in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(key, raising=False)
    with setting.allocator_fixed() as steady:
        with setting.allocator_fixed() as inner:  # nested: the outer one holds it
            assert inner == steady
        taken = [c for c in libc.calls if c[0] == "mallopt" and c[2] <= accepts]
    assert steady == (held is not None)
    if held is not None:  # both thresholds at the largest value glibc took
        assert ("mallopt", -3, held) in taken and ("mallopt", -1, held) in taken
    # afterwards: glibc's initial 128 KiB thresholds again, and the heap's free memory given back
    assert libc.calls[-3:] == [("mallopt", -3, 128 * 1024), ("mallopt", -1, 128 * 1024), ("malloc_trim", 0)]
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")  # the user's own setting: left alone
    libc.calls.clear()
    with setting.allocator_fixed() as steady:
        assert not steady
    assert libc.calls == []


# --- the roofline ------------------------------------------------------------------------------


def test_the_plotted_roofline_is_the_computed_data(counted_calibrations, tmp_path, cli):
    from archlab.measure.roofline import roofline
    from archlab.report.figures import draw, series_of
    from archlab.report.roofline import figure

    r = roofline("mobilenet_v2@res=64", threads=1)
    m = r.machine
    spec = figure(r)
    roof = spec.series[0]
    assert all(y == min(m.peak_gflops, m.bandwidth_gbs * x) for x, y in zip(roof.x, roof.y))
    plotted = series_of(draw(spec))
    for s in spec.series[1:]:
        kind = s.label.removesuffix(" (predicted)")
        points = [p for p in r.points if p.kind == kind]
        assert list(s.y) == [p.predicted_gflops for p in points] == plotted[s.label]
        assert list(s.x) == [p.flops / p.traffic_bytes for p in points]
    assert {p.kind for p in r.points} >= {"depthwise 3x3 s1", "pointwise 1x1"}
    for ext in ("svg", "png"):
        out = tmp_path / f"roof.{ext}"
        res = cli("roofline", "mobilenet_v2@res=64", "--threads", "1", "--plot", str(out))
        assert res.code == 0, res.err
        data = out.read_bytes()
        assert data.startswith(b"<svg") if ext == "svg" else data.startswith(b"\x89PNG")


@pytest.mark.parametrize("args,needle", [
    (("mobilenet_v2", "--plot", "x.pdf"), "--plot writes a .png or .svg file"),
    (("mobilenet_v2", "--plot", "/nonexistent-dir/x.png"), "directory '/nonexistent-dir' does not exist"),
    (("nosuchnet",), "nosuchnet"),
    (("mobilenet_v2", "--threads", "0"), "--threads must be at least 1"),
])
def test_roofline_bad_input_is_one_line(cli, counted_calibrations, args, needle):
    assert_one_line_error(cli("roofline", *args), needle)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs it there)")
def test_cuda_calibration_per_op_times_and_prediction(monkeypatch, tmp_path):
    monkeypatch.setenv("ARCHLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cal, "TIME_PER_BENCHMARK", 0.01)
    m = cal.machine("cuda", None, "fp32", fresh=True)
    assert m.key["device"] == "cuda" and m.key["machine"] == torch.cuda.get_device_name() and m.peak_gflops > 0
    r = archlab.latency("mobilenet_v2@res=64", device="cuda", min_time=0.05, per_op=True, predict=True)
    assert len(r.op_times.seconds) == len(r.trace.ops) and r.op_times.method.startswith("each ATen op timed by a pair "
                                                                                         "of CUDA events")
    assert r.predicted_ms > 0 and r.prediction.machine.key["device"] == "cuda"
