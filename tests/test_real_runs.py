"""What runs a user's model for real (``latency``, ``memory --measure``, ``count --engine
fvcore``, ``compare --latency``): whatever the user's forward raises, or ``sys.exit()``, is
one line ``archlab: error: ...`` with exit 2, never an internal error and never a silent exit;
a forward of several inputs gets all of them; a model in fp16 or bf16 runs; a partial count is
flagged in every latency output.

The models fail only on real tensors (the meta trace, which runs first, passes), so each
failure is the real run's. They live in a file written per test, loaded as ``file.py:name``.
"""

from __future__ import annotations

import csv
import io
import textwrap

import pytest
import torch
from torch import nn

import archlab
import archlab.measure.latency as latency_mod
from archlab.measure.devices import run_failed
from archlab.errors import UserError
from archlab.measure.memory_peak import measure_peak
from conftest import assert_one_line_error

FAST = ("--min-time", "0.02")

MODELS = '''
import sys

import torch
from torch import nn


def _real(x):
    return x.device.type != "meta"


def _profiled():
    return torch.autograd._profiler_enabled()


class Fails(nn.Module):
    """Raises ``exc`` on real tensors only; with ``profiled``, only under the profiler."""

    def __init__(self, exc, profiled=False):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)
        self.exc, self.profiled = exc, profiled

    def forward(self, x):
        y = self.c(x)
        if _real(x) and (not self.profiled or _profiled()):
            if self.exc == "exit0":
                sys.exit(0)
            if self.exc == "exit3":
                sys.exit(3)
            if self.exc == "KeyError":
                raise KeyError("boom")
            if self.exc == "AssertionError":
                assert x.shape[-1] == 999, "input size check"
            if self.exc == "AttributeError":
                return self.nope(y)
            if self.exc == "ZeroDivisionError":
                return y * (1 / 0)
            if self.exc == "ValueError":
                raise ValueError("real-only failure")
        return y


def keyerr(): return Fails("KeyError")
def asserr(): return Fails("AssertionError")
def attrerr(): return Fails("AttributeError")
def zerodiv(): return Fails("ZeroDivisionError")
def valueerr(): return Fails("ValueError")
def exit0(): return Fails("exit0")
def exit3(): return Fails("exit3")
def profiled_keyerr(): return Fails("KeyError", profiled=True)
def profiled_exit(): return Fails("exit3", profiled=True)


for _f in (keyerr, asserr, attrerr, zerodiv, valueerr, exit0, exit3, profiled_keyerr, profiled_exit):
    _f.input_size = (3, 8, 8)


class Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(10, 8)

    def forward(self, image, vector):
        return torch.relu(self.c(image)).mean((2, 3)) @ self.fc(vector).T


def two(): return Two()


class Cumsum(nn.Module):
    """cumsum has no cost rule: the count is partial."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.cumsum(self.c(x), dim=1)


def cumsum(): return Cumsum()
cumsum.input_size = (3, 8, 8)


def half(): return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).half()
'''

EXCEPTIONS = ("KeyError", "AssertionError", "AttributeError", "ZeroDivisionError", "ValueError")
FACTORY = {"KeyError": "keyerr", "AssertionError": "asserr", "AttributeError": "attrerr",
           "ZeroDivisionError": "zerodiv", "ValueError": "valueerr"}
# every real run of a model, as a command; the model's spec goes in place of "{m}"
REAL_RUNS = {
    "latency": ("latency", "{m}", *FAST),
    "latency several": ("latency", "lenet5", "{m}", *FAST),
    "memory --measure": ("memory", "{m}", "--measure"),
    "count --engine fvcore": ("count", "{m}", "--engine", "fvcore"),
    "compare --latency": ("compare", "lenet5", "{m}", "--latency", *FAST),
}


@pytest.fixture
def models(tmp_path):
    path = tmp_path / "usermodels.py"
    path.write_text(textwrap.dedent(MODELS))
    return lambda name: f"{path}:{name}"


def _command(run: str, spec: str) -> list[str]:
    return [a.replace("{m}", spec) for a in REAL_RUNS[run]]


# --- B1: any exception of the user's forward is the user's error ---------------------------


@pytest.mark.parametrize("run", REAL_RUNS)
@pytest.mark.parametrize("exc", EXCEPTIONS)
def test_an_exception_in_the_users_forward_during_a_real_run_is_one_line(cli, models, run, exc):
    r = cli(*_command(run, models(FACTORY[exc])))
    assert_one_line_error(r, "failed: ", exc)
    assert "internal error" not in r.err


def test_the_message_says_what_failed(cli, models):
    assert_one_line_error(cli("latency", models("valueerr"), *FAST),
                          "the forward pass of ", ":valueerr on cpu at fp32 failed: ValueError: real-only failure")
    assert_one_line_error(cli("memory", models("keyerr"), "--measure"),
                          "the measured forward of ", "failed: KeyError: 'boom'")
    assert_one_line_error(cli("count", models("asserr"), "--engine", "fvcore"),
                          "fvcore's forward on cpu at fp32 failed: AssertionError: input size check")


def test_an_exception_only_under_the_per_layer_profiler_is_one_line(cli, models):
    # the warm-up and the timing pass; the profiled forwards of --per-layer raise
    assert cli("latency", models("profiled_keyerr"), *FAST).code == 0
    assert_one_line_error(cli("latency", models("profiled_keyerr"), *FAST, "--per-layer"),
                          "profiling ", "failed: KeyError: 'boom'")


def test_an_exception_in_archlabs_own_code_is_still_archlabs_bug(cli, monkeypatch):
    # the catch is for the user's forward: archlab's own analysis after it is not the user's
    def broken(*args, **kw):
        raise KeyError("archlab's own")

    monkeypatch.setattr(latency_mod, "layers_from_events", broken)
    r = cli("latency", "lenet5", *FAST, "--per-layer")
    assert r.code == 1 and "archlab: internal error: KeyError" in r.err


def test_the_python_api_raises_user_error_too(models):
    with pytest.raises(UserError, match="failed: ZeroDivisionError: division by zero"):
        archlab.measure.latency.latency(models("zerodiv"), min_time=0.02)
    with pytest.raises(UserError, match="failed: AttributeError: .*nope"):
        archlab.memory(models("attrerr"), measure=True)


# --- B2: sys.exit() in the user's forward ---------------------------------------------------


@pytest.mark.parametrize("run", REAL_RUNS)
@pytest.mark.parametrize("factory,code", [("exit0", 0), ("exit3", 3)])
def test_sys_exit_in_the_users_forward_during_a_real_run_is_one_line(cli, models, run, factory, code):
    r = cli(*_command(run, models(factory)))
    assert_one_line_error(r, f"the forward pass called sys.exit({code})")


def test_sys_exit_under_the_per_layer_profiler_is_one_line(cli, models):
    assert_one_line_error(cli("latency", models("profiled_exit"), *FAST, "--per-layer"),
                          "profiling ", "the forward pass called sys.exit(3)")


def test_run_failed_names_the_exception_and_keeps_its_hints():
    assert str(run_failed("x", "cpu", "fp32", KeyError("k"))) == "x on cpu at fp32 failed: KeyError: 'k'"
    assert str(run_failed("x", "cpu", "fp32", ZeroDivisionError())) == "x on cpu at fp32 failed: ZeroDivisionError"
    # PyTorch's RuntimeErrors speak for themselves, and the dtype hint stays
    e = run_failed("x", "cpu", "fp16", RuntimeError('"addmm" not implemented for \'Half\''))
    assert str(e).startswith("x on cpu at fp16 failed: \"addmm\"") and "--dtype bf16 may have one" in str(e)
    assert "ran out of memory" in str(run_failed("x", "cuda", "fp32", torch.OutOfMemoryError("CUDA oom")))
    assert str(run_failed("x", "cpu", "fp32", SystemExit(5))) == "x on cpu: the forward pass called sys.exit(5)"
    own = UserError("already one line")
    assert run_failed("x", "cpu", "fp32", own) is own


def test_ctrl_c_in_the_forward_is_not_swallowed():
    class Interrupted(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            if x.device.type != "meta":
                raise KeyboardInterrupt
            return self.c(x)

    with pytest.raises(KeyboardInterrupt):
        archlab.measure.latency.latency(Interrupted(), input_size=(3, 8, 8), min_time=0.02)
    with pytest.raises(KeyboardInterrupt):
        measure_peak(Interrupted(), (1, 3, 8, 8))


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
    assert measure_peak(nn.Conv2d(3, 4, 3), (1, 3, 8, 8))[0] > 0


# --- B4: fp16 / bf16 models in the real runs --------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_measure_peak_runs_a_half_precision_model_in_fp32_and_leaves_it_as_found(dtype):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).to(dtype)
    peak, _ = measure_peak(model, (1, 3, 8, 8))
    assert peak > 0
    assert model[0].weight.dtype == dtype


def test_measure_peak_casts_a_files_half_model_too(models):
    # a file's factory that returns an fp16 model: the measured forward is fp32 like its input
    assert measure_peak(models("half"), (1, 3, 8, 8), input_size=(3, 8, 8))[0] > 0


def test_fvcore_runs_a_bf16_model_in_its_own_dtype():
    from archlab.measure.fvcore import fvcore_count

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).to(torch.bfloat16)
    report = fvcore_count(model, ((1, 3, 8, 8),))
    assert report["macs"] == 4 * 6 * 6 * 27
    assert model[0].weight.dtype == torch.bfloat16


@pytest.mark.parametrize("model_dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_latency_times_a_half_precision_model_at_any_dtype(monkeypatch, model_dtype, dtype):
    # the meta trace of an fp16 model is the trace's business (it traces in the model's dtype);
    # here it traces an fp32 twin, so that only the real run is under test
    real_trace_model = latency_mod.trace_model

    def trace_fp32_twin(spec, **kw):
        import copy

        twin = copy.deepcopy(spec).float() if isinstance(spec, nn.Module) else spec
        return real_trace_model(twin, **kw)

    monkeypatch.setattr(latency_mod, "trace_model", trace_fp32_twin)
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
