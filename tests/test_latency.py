"""archlab latency: the structure and consistency of a measurement (never its speed), the
rank-correlation helper on known inputs, the comparison's ratios, per-layer attribution,
the user's model left as found, and the error paths."""

import csv
import io
import math
import os

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.benchmark import Measurement

import archlab
import archlab.measure.latency as latency_mod
from archlab.errors import UserError
from archlab.measure.latency import LatencyResult, latency
from archlab.measure.profile import by_kind
from archlab.measure.ranking import compare, paper_cpu, spearman
from archlab.report import latency as latency_report
from conftest import assert_one_line_error

FAST = ("--min-time", "0.05")
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _consistent(d: dict) -> None:
    """What every measurement must satisfy, whatever the machine's speed."""
    seconds = d["median_ms"] / 1e3
    assert d["median_ms"] > 0 and d["iqr_ms"] >= 0
    assert d["achieved_gflops"] == pytest.approx(2 * d["macs"] / seconds / 1e9, rel=1e-12)
    assert d["throughput"] == pytest.approx(d["batch"] / seconds, rel=1e-12)
    assert d["noisy"] == (d["iqr_ms"] / d["median_ms"] > 0.10)
    assert d["samples"] >= latency_mod.MIN_BLOCKS and d["runs_per_sample"] >= 1


# --- one model, end to end ---------------------------------------------------------


def test_tiny_model_timed_end_to_end(cli):
    r = cli("latency", "lenet5", "--batch", "2", *FAST, "--format", "json")
    assert r.code == 0, r.err
    d = r.json()
    for key in ("model", "device", "batch", "median_ms", "iqr_ms", "throughput", "macs", "achieved_gflops",
                "threads", "dtype", "input_shape", "units"):
        assert key in d
    assert d["model"] == "lenet5" and d["device"] == "cpu" and d["dtype"] == "fp32"
    assert d["batch"] == 2 and d["input_shape"] == [2, 1, 32, 32]
    # the MACs are the meta count of the same model and batch, exactly
    assert d["macs"] == archlab.count("lenet5", batch=2).macs == 2 * archlab.count("lenet5").macs
    assert d["threads"] == torch.get_num_threads()
    _consistent(d)
    assert "layers" not in d


def test_table_names_units_and_method(cli):
    r = cli("latency", "lenet", *FAST)
    assert r.code == 0, r.err
    assert r.out.startswith("lenet  input 1x1x16x16  on cpu (")
    for needle in ("median latency", "interquartile range", "images/s", "63,660", "GFLOP/s", "2 x MACs / median"):
        assert needle in r.out, needle
    r = cli("latency", "lenet", *FAST, "--format", "md")
    assert r.out.startswith("### lenet") and "| MACs | 63,660 |" in r.out


def test_threads_dtype_and_layout_are_applied_and_restored():
    seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            seen.append((torch.get_num_threads(), x.dtype, x.is_contiguous(memory_format=torch.channels_last),
                         self.conv.weight.dtype, torch.is_inference_mode_enabled()))
            return self.conv(x)

    before = torch.get_num_threads()
    r = latency(Probe(), input_size=(3, 8, 8), threads=1, dtype="bf16", channels_last=True, min_time=0.05)
    assert torch.get_num_threads() == before
    assert r.threads == 1 and r.dtype == "bf16" and r.channels_last
    # the traced calls run on meta tensors in fp32; every real forward ran as asked
    real = [s for s in seen if s[3] == torch.bfloat16]
    assert len(real) >= latency_mod.WARMUP_RUNS + 4
    assert all(s == (1, torch.bfloat16, True, torch.bfloat16, True) for s in real)


def test_user_model_is_left_as_found():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, groups=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=8))
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    latency(model, input_size=(3, 16, 16), dtype="bf16", channels_last=True, per_layer=True, min_time=0.05)
    assert model.training and all(m.training for m in model.modules())
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    for k, v in model.state_dict().items():
        assert v.dtype == state[k].dtype and v.device.type == "cpu" and torch.equal(v, state[k]), k
    assert model[0].weight.is_contiguous()  # not turned channels_last


def test_bf16_on_cpu_and_spec_options(cli):
    r = cli("latency", "mobilenet@res=32", "--alpha", "0.5", "--dtype", "bf16", "--channels-last", "--threads", "1",
            *FAST, "--format", "json")
    assert r.code == 0, r.err
    d = r.json()
    assert d["model"] == "mobilenet@alpha=0.5,res=32" and d["dtype"] == "bf16" and d["channels_last"]
    assert d["threads"] == 1 and d["input_shape"] == [1, 3, 32, 32]
    assert d["macs"] == archlab.count("mobilenet@alpha=0.5,res=32").macs
    _consistent(d)


def test_output_file_and_csv(cli, tmp_path):
    path = tmp_path / "lat.csv"
    r = cli("latency", "lenet", *FAST, "--format", "csv", "-o", str(path))
    assert r.code == 0 and r.out == ""
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert len(rows) == 1 and rows[0]["model"] == "lenet" and int(rows[0]["macs"]) == 63_660
    assert [p for p in os.listdir(tmp_path) if p.startswith(".archlab-")] == []


# --- per layer ---------------------------------------------------------------------------


def test_per_layer_attributes_time_and_macs_per_module():
    r = latency("mobilenet_v2@res=32", per_layer=True, min_time=0.05)
    layers = {layer.name: layer for layer in r.layers}
    assert layers.keys() == {layer.name for layer in r.layers}  # one row per module
    assert sum(layer.macs for layer in r.layers) == r.macs
    assert sum(layer.mac_share for layer in r.layers) == pytest.approx(1.0, rel=1e-12)
    assert sum(layer.time_share for layer in r.layers) == pytest.approx(1.0, rel=1e-12)
    assert sum(layer.time_ms for layer in r.layers) == pytest.approx(r.profiled_forward_ms, rel=1e-9)
    assert r.profiled_runs >= latency_mod.PROFILE_RUNS[0]
    # each leaf's MACs are the count's MACs of the same module
    counted = {c.name: c.macs for c in archlab.count("mobilenet_v2@res=32", depth=99).layers}
    dw = layers["features.bottleneck2.0.depthwise.conv"]
    assert dw.kind == "depthwise conv 3x3" and dw.macs == counted[dw.name] > 0
    assert layers["features.bottleneck2.0.project.conv"].kind == "pointwise conv 1x1"
    assert layers["features.conv1.conv"].kind == "conv 3x3"
    # a residual block's own operation (the addition) is its own row; a plain container is not
    assert layers["features.bottleneck2.1"].kind == "InvertedResidual (own operations)"
    assert "features.bottleneck2" not in layers
    # the rows are the ops timed one by one, summed per module: every op's time in exactly one row
    assert r.profiled_forward_ms == pytest.approx(sum(layer.time_ms for layer in r.layers), rel=1e-9)
    for layer in r.layers:
        if layer.mac_share:
            assert layer.time_per_mac_share == pytest.approx(layer.time_share / layer.mac_share)
        else:
            assert layer.time_per_mac_share is None
    kinds = {k["kind"]: k for k in by_kind(r.layers)}
    assert kinds["depthwise conv 3x3"]["calls"] == 17
    assert kinds["depthwise conv 3x3"]["macs"] == sum(l.macs for l in r.layers if l.kind == "depthwise conv 3x3")


def test_per_layer_cli_formats(cli):
    r = cli("latency", "lenet5", *FAST, "--per-layer")
    assert r.code == 0, r.err
    assert "by kind" in r.out and "by module" in r.out and "time/MAC share" in r.out
    assert "c3.map15" in r.out
    d = cli("latency", "lenet5", *FAST, "--per-layer", "--format", "json").json()
    assert d["layer_time_method"].startswith("each ATen op timed by the clock around it")
    assert sum(layer["macs"] for layer in d["layers"]) == d["macs"]
    c5 = next(layer for layer in d["layers"] if layer["name"] == "c5")
    assert c5["type"] == "Conv2d" and c5["macs"] == 16 * 120 * 25
    rows = list(csv.DictReader(io.StringIO(cli("latency", "lenet5", *FAST, "--per-layer", "-f", "csv").out)))
    assert {row["name"] for row in rows} == {layer["name"] for layer in d["layers"]}


# --- Spearman --------------------------------------------------------------------------


def test_spearman_known_inputs():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [9, 7, 5, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 8, 27]) == pytest.approx(1.0)  # ranks, not values
    # ties by hand: x ranks 1, 2.5, 2.5, 4; y ranks 1, 3, 2, 4 -> 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(3 / math.sqrt(10), rel=1e-12)
    # d^2 formula without ties: 1 - 6 * (0 + 4 + 1 + 1) / (4 * 15) = 0.4
    assert spearman([1, 2, 3, 4], [1, 4, 2, 3]) == pytest.approx(0.4, rel=1e-12)
    assert spearman([5], [1]) is None and spearman([], []) is None
    assert spearman([1, 2], [10, 20]) is None and spearman([1, 2], [20, 10]) is None  # two: always ±1
    assert spearman([1, 1, 1], [1, 2, 3]) is None  # no variance
    with pytest.raises(ValueError):
        spearman([1, 2], [1])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=2, max_size=12))
def test_spearman_is_pearson_of_average_ranks(pairs):
    x, y = [p[0] for p in pairs], [p[1] for p in pairs]
    ours = spearman(x, y)
    rx, ry = pd.Series(x).rank(), pd.Series(y).rank()  # pandas' average ranks
    if rx.nunique() == 1 or ry.nunique() == 1 or len(pairs) < 3:  # two pairs: always ±1, not given
        assert ours is None
    else:
        assert ours == pytest.approx(rx.corr(ry), abs=1e-12)


# --- several models ----------------------------------------------------------------------


def _result(model, median_ms, macs, batch=1, iqr_ms=0.1):
    return LatencyResult(model=model, input_shape=(batch, 3, 224, 224), device="cpu", device_name="test cpu",
                         dtype="fp32", channels_last=False, threads=1, median_ms=median_ms, iqr_ms=iqr_ms, samples=5,
                         runs_per_sample=1, min_time_s=1.0, params=1, macs=macs)


def test_paper_reference_is_the_course_table():
    # MobileNetV2 paper, Table 4 (CPU column), as the course shows it
    assert paper_cpu()[0] == {"mobilenet": 113, "mobilenet_v2": 75, "mobilenet_v2@alpha=1.4": 143}


def test_compare_ratios_to_first_given_sorted_by_latency_with_paper():
    v1, v2, v2w = _result("mobilenet", 30.0, 600), _result("mobilenet_v2", 24.0, 300), \
        _result("mobilenet_v2@alpha=1.4", 45.0, 600 - 15)
    c = compare([v1, v2, v2w])
    assert c.baseline == "mobilenet"
    assert [row.result.model for row in c.rows] == ["mobilenet_v2", "mobilenet", "mobilenet_v2@alpha=1.4"]
    row = {row.result.model: row for row in c.rows}
    assert row["mobilenet_v2"].latency_ratio == pytest.approx(0.8) and row["mobilenet_v2"].macs_ratio == 0.5
    assert row["mobilenet_v2"].paper_ratio == pytest.approx(75 / 113)
    assert row["mobilenet_v2@alpha=1.4"].paper_ratio == pytest.approx(143 / 113)
    assert row["mobilenet"].paper_ratio == 1.0
    # MACs ranks 3, 1, 2 vs latency ranks 2, 1, 3: 1 - 6 * (1 + 0 + 1) / (3 * 8) = 0.5
    assert c.spearman == pytest.approx(0.5)
    text = latency_report.render([v1, v2, v2w], "table", c)
    assert "paper ms" in text and "the paper's measurement, not ours" in text and "+0.50" in text
    assert text.index("mobilenet_v2 ") < text.index("mobilenet ")  # sorted by latency
    data = c.to_dicts([v1, v2, v2w])
    assert [d["model"] for d in data] == ["mobilenet", "mobilenet_v2", "mobilenet_v2@alpha=1.4"]
    assert data[1]["comparison"]["latency_rank"] == 1 and data[1]["comparison"]["paper"]["cpu_ms"] == 75


def test_compare_without_paper_when_baseline_or_batch_differ():
    c = compare([_result("lenet", 1.0, 10), _result("mobilenet", 20.0, 600), _result("mobilenet_v2", 10.0, 300)])
    assert c.paper_source is None and all(row.paper_ratio is None for row in c.rows)
    assert "paper" not in latency_report.render([row.result for row in c.rows], "table", c)
    c = compare([_result("mobilenet", 20.0, 600, batch=8), _result("mobilenet_v2", 10.0, 300, batch=8)])
    assert c.paper_source is None  # the paper's times are batch 1
    assert compare([_result("a", 1.0, 5), _result("b", 2.0, 5)]).spearman is None  # equal MACs
    three = compare([_result("a", 1.0, 5), _result("b", 2.0, 6), _result("c", 3.0, 9)])
    assert three.spearman == pytest.approx(1.0)
    assert compare([_result("a", 1.0, 5), _result("b", 2.0, 5), _result("c", 3.0, 5)]).spearman is None


def test_several_models_cli(cli):
    r = cli("latency", "lenet5", "lenet", *FAST, "--format", "json")
    assert r.code == 0, r.err
    data = r.json()
    assert isinstance(data, list) and [d["model"] for d in data] == ["lenet5", "lenet"]
    for d in data:
        _consistent(d)
        comp = d["comparison"]
        assert comp["baseline"] == "lenet5" and comp["models"] == 2
        assert comp["macs_ratio"] == pytest.approx(d["macs"] / data[0]["macs"])
        assert comp["latency_ratio"] == pytest.approx(d["median_ms"] / data[0]["median_ms"])
        assert comp["spearman_macs_latency"] is None  # two models are always ±1: not given
    assert sorted(d["comparison"]["latency_rank"] for d in data) == [1, 2]
    r = cli("latency", "lenet5", "lenet", *FAST)
    assert "latency ratio" in r.out and "MACs ratio" in r.out
    assert "Spearman's rank correlation of MACs and latency: not given for 2 models" in r.out
    assert "ratios are to lenet5 (the first model given)" in r.out


def test_noisy_run_is_flagged(cli, monkeypatch):
    real = latency_mod._Run.measurement

    def noisy(self, threads):
        m = real(self, threads)
        # the same timings with the slower half made three times slower: a wide IQR
        times = sorted(m.raw_times)
        k = len(times) // 2
        return Measurement(number_per_run=m.number_per_run, raw_times=times[:k] + [3 * t for t in times[k:]],
                           task_spec=m.task_spec)

    monkeypatch.setattr(latency_mod._Run, "measurement", noisy)
    r = cli("latency", "lenet", *FAST)
    assert r.code == 0
    assert "NOISY" in r.out
    assert "archlab: warning: lenet: noisy run" in r.err


def test_several_models_take_turns(monkeypatch):
    order = []
    timing = []
    real_block, real_interleave = latency_mod._Run.block, latency_mod._interleave

    def block(self, number):
        if timing:
            order.append(self.plan.label)
        return real_block(self, number)

    def interleave(*args):
        timing.append(True)
        return real_interleave(*args)

    monkeypatch.setattr(latency_mod._Run, "block", block)
    monkeypatch.setattr(latency_mod, "_interleave", interleave)

    class Small(nn.Module):
        def forward(self, x):
            return x + 1

    class Big(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)

        def forward(self, x):
            return self.conv(x)

    results = latency_mod.measure_all([Small(), Big()], input_size=(3, 16, 16), min_time=0.05)
    assert [r.model for r in results] == ["Small", "Big"]
    assert all(r.models_interleaved == 2 and r.samples >= latency_mod.MIN_BLOCKS for r in results)
    # one untimed round in turn (the heap settles to the interleaved pattern), then every model needs
    # at least MIN_BLOCKS timed blocks, so the first rounds alternate
    n = latency_mod.MIN_BLOCKS + 1
    assert order[:2 * n] == ["Small", "Big"] * n
    assert order.count("Small") == results[0].samples + 1 and order.count("Big") == results[1].samples + 1


# --- errors --------------------------------------------------------------------------------


def test_error_paths(cli, monkeypatch):
    assert_one_line_error(cli("latency", "lenet", "--device", "tpu"), "unknown device 'tpu'")
    assert_one_line_error(cli("latency", "lenet", "lenet9", *FAST), "unknown model 'lenet9'")
    assert_one_line_error(cli("latency", "lenet", "--min-time", "0"), "--min-time")
    assert_one_line_error(cli("latency", "lenet", "--threads", "0"), "--threads")
    assert_one_line_error(cli("latency", "lenet", "--dtype", "int8"), "--dtype")
    # refused before anything is allocated: about 2 TiB of activations
    assert_one_line_error(cli("latency", "vgg16", "--batch", "100000"), "timing vgg16", "--force")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert_one_line_error(cli("latency", "lenet", "--device", "cuda"), "--device cuda", "no CUDA GPU")


def test_unsupported_dtype_is_one_clear_line():
    class HalfShy(nn.Module):
        def forward(self, x):
            if x.dtype == torch.float16:
                raise RuntimeError("\"slow_conv2d_cpu\" not implemented for 'Half'\nmore detail")
            return x * 2

    with pytest.raises(UserError) as e:
        latency(HalfShy(), input_size=(1, 4, 4), dtype="fp16", min_time=0.05)
    msg = str(e.value)
    assert "\n" not in msg and "at fp16" in msg and "not implemented for 'Half'" in msg and "bf16" in msg


# --- CUDA (skipped without a GPU) -----------------------------------------------------------


@cuda_only
@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_cuda_measurement(cli, dtype):
    r = cli("latency", "mobilenet_v2@res=64", "--device", "cuda", "--dtype", dtype, "--channels-last", *FAST,
            "--format", "json")
    assert r.code == 0, r.err
    d = r.json()
    assert d["device"] == "cuda" and d["device_name"] == torch.cuda.get_device_name(0) and d["dtype"] == dtype
    _consistent(d)


@cuda_only
def test_cuda_per_layer_is_kernel_time():
    r = latency("mobilenet_v2@res=64", device="cuda", per_layer=True, min_time=0.05)
    assert r.layer_time_method.startswith("each ATen op timed by a pair of CUDA events")
    assert sum(layer.time_share for layer in r.layers) == pytest.approx(1.0, rel=1e-9)
    convs = [layer for layer in r.layers if "conv" in layer.kind]
    assert convs and all(layer.time_ms > 0 for layer in convs)


@pytest.mark.parametrize("model_dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_latency_times_a_half_precision_model_at_any_dtype(monkeypatch, model_dtype, dtype):
    # the meta trace of an fp16 model is the trace's business (it traces in the model's dtype);
    # here it traces an fp32 twin, so that only the real run is under test
    real_build = latency_mod.build

    def build_fp32_twin(spec, inputs, **kw):
        import copy

        twin = copy.deepcopy(spec).float() if isinstance(spec, nn.Module) else spec
        return real_build(twin, inputs, **kw)

    monkeypatch.setattr(latency_mod, "build", build_fp32_twin)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).to(model_dtype)
    r = archlab.measure.latency.latency(model, input_size=(3, 8, 8), dtype=dtype, min_time=0.02)
    assert r.dtype == dtype and r.macs == 4 * 6 * 6 * 27 and r.median_ms > 0
    assert model[0].weight.dtype == model_dtype


# --- B10: a partial count in every latency output ---------------------------------------------


def test_single_model_latency_csv_has_macs_status(cli, models):
    rows = list(csv.DictReader(io.StringIO(cli("latency", models("cumsum"), *FAST, "-f", "csv").out)))
    assert rows[0]["macs_status"] == "partial"
    rows = list(csv.DictReader(io.StringIO(cli("latency", "lenet5", *FAST, "-f", "csv").out)))
    assert rows[0]["macs_status"] == "complete"


def test_several_model_latency_flags_a_partial_count(cli, models):
    spec = models("cumsum")
    r = cli("latency", "lenet5", spec, *FAST)
    assert r.code == 0, r.err
    # the name is long (a path): it is cut, the marker is not
    row = next(line for line in r.out.splitlines() if line.startswith(spec[:20]))
    assert " (partial)" in row and "…" in row
    assert not any(line.startswith("lenet5 (partial)") for line in r.out.splitlines())
    assert "partial: MACs leave out op calls without a cost rule" in r.out and "(1 op call)" in r.out
    md = cli("latency", "lenet5", spec, *FAST, "-f", "md").out
    assert f"{spec} (partial)" in md  # md cuts nothing
    rows = {row["model"]: row for row in csv.DictReader(io.StringIO(cli("latency", "lenet5", spec, *FAST,
                                                                        "-f", "csv").out))}
    assert rows[spec]["macs_status"] == "partial" and rows["lenet5"]["macs_status"] == "complete"
    assert rows[spec]["latency_ratio"]  # the comparison's columns still follow


def test_a_short_name_keeps_its_partial_marker_whole(cli, models, monkeypatch, tmp_path):
    models("cumsum")  # writes usermodels.py into tmp_path
    monkeypatch.chdir(tmp_path)
    r = cli("latency", "usermodels.py:cumsum", "lenet5", *FAST)
    assert r.code == 0, r.err
    assert any(line.startswith("usermodels.py:cumsum (partial)") for line in r.out.splitlines()), r.out


# --- B20: --min-time is bounded ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["1e308", "3601"])
def test_a_min_time_beyond_an_hour_is_refused(cli, value):
    assert_one_line_error(cli("latency", "lenet5", "--min-time", value), "--min-time", "3600 seconds")
    assert_one_line_error(cli("compare", "lenet5", "mobilenet", "--latency", "--min-time", value),
                          "--min-time", "3600 seconds")


def test_an_hour_is_allowed():
    latency_mod.check_options("cpu", "fp32", None, 3600)
    with pytest.raises(UserError, match="more than 3600"):
        latency_mod.check_options("cpu", "fp32", None, 3600.5)


def test_spearman_is_printed_from_three_models_only():
    from archlab.report.latency import render

    def caption(results):
        return next(line for line in render(results, "table", compare(results)).splitlines()
                    if line.startswith("Spearman"))

    two = [_result("a", 1.0, 5), _result("b", 2.0, 6)]
    assert "not given for 2 models" in caption(two) and "+1.00" not in caption(two)
    three = [_result("a", 1.0, 5), _result("b", 2.0, 6), _result("c", 3.0, 9)]
    assert caption(three).startswith("Spearman's rank correlation of MACs and latency: +1.00 over 3 models")
    flat = [_result("a", 1.0, 5), _result("b", 2.0, 5), _result("c", 3.0, 5)]
    assert "undefined (the models' MACs, or their latencies, are all equal)" in caption(flat)


# issue 24, item 7: a forward that reads values is timed with --engine real, its MACs from the real trace

BRANCHING_FILE = '''
import torch
from torch import nn


class Branching(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        if x.abs().sum() > 0:  # reads a value (meta tensors have none); true for any nonzero input
            return self.conv(x)
        return x


def make():
    return Branching()
make.input_size = (3, 8, 8)
'''


def test_latency_engine_real_times_a_forward_that_reads_values(cli, tmp_path, monkeypatch):
    (tmp_path / "branching.py").write_text(BRANCHING_FILE)
    monkeypatch.chdir(tmp_path)
    meta = cli("latency", "branching.py:make", "--min-time", "0.01")
    assert meta.code == 2 and "--engine real" in meta.err
    r = cli("latency", "branching.py:make", "--engine", "real", "--min-time", "0.01", "-f", "json")
    assert r.code == 0, r.err
    d = r.json()
    d = d[0] if isinstance(d, list) else d
    # independent reference: the conv branch, 3->4 channels, 3x3 kernel, 6x6 output, batch 1
    assert d["macs"] == 4 * 3 * 3 * 3 * 6 * 6 and d["median_ms"] > 0


def test_latency_engine_unknown_is_one_line(cli):
    from conftest import assert_one_line_error

    assert_one_line_error(cli("latency", "lenet", "--engine", "fvcore"), "engine")
