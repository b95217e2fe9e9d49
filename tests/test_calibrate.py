"""archlab/measure/calibrate.py: the machine's calibration, its cache (used and invalidated) and archlab calibrate."""

import json
import math
import os

import pytest
import torch

import archlab
from archlab.measure import calibrate as cal
from conftest import assert_one_line_error, fake_machine


def test_calibrations_before_and_after_average_geometrically():
    a = fake_machine(peak_gflops=100.0, fixed_us={**fake_machine().fixed_us, "stem": 10.0})
    b = fake_machine(peak_gflops=400.0, fixed_us={**fake_machine().fixed_us, "stem": 40.0})
    m = cal.mean_machine([a, b])
    assert m.peak_gflops == pytest.approx(200.0) and m.fixed_us["stem"] == pytest.approx(20.0)
    assert m.bandwidth_gbs == pytest.approx(10.0) and m.key == a.key
    with pytest.raises(ValueError):
        cal.mean_machine([a, fake_machine(key={**a.key, "threads": 2})])



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
    # what is checked here is that every quantity is measured; whether a calibration can be trusted
    # (on a machine busy with the other tests, it may be refused) has tests of its own, below
    monkeypatch.setattr(cal, "implausible", lambda m: None)
    monkeypatch.setattr(cal, "MAX_UNSTABLE", 1.0)
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


# issue 24, item 2: an implausible calibration is measured again, then refused and not cached


def test_an_implausible_calibration_is_refused_and_not_cached(cli, monkeypatch, tmp_path):
    from archlab.measure import calibrate as cal

    monkeypatch.setenv("ARCHLAB_CACHE_DIR", str(tmp_path))
    runs = []

    def loaded(fn, clock, budget=cal.TIME_PER_BENCHMARK, inner=1):
        """Every micro-benchmark takes 10 ms, whatever its size: a machine busy with other work."""
        runs.append(fn)
        return 0.01

    monkeypatch.setattr(cal, "_median_time", loaded)
    r = cli("calibrate", "--threads", "1")
    assert_one_line_error(r, "refused", "not cached", "--threads 1", "quieter")
    assert cal.cached("cpu", 1, "fp32") is None
    assert not (tmp_path / cal.CACHE_FILE).exists()
    assert cal.implausible(cal.calibrate("cpu", 1, "fp32")) is not None


def test_a_plausible_machine_passes_the_checks():
    from archlab.measure import calibrate as cal

    assert cal.implausible(fake_machine()) is None
    assert "efficiency" in cal.implausible(fake_machine(conv_gflops={k: 119.0 for k in cal.CONV_BENCHMARKS}))
    assert "fixed cost" in cal.implausible(fake_machine(fixed_us={**fake_machine().fixed_us, "dense 3x3": 5000.0}))
    assert "copy bandwidth" in cal.implausible(fake_machine(memory_gbs={k: 0.1 for k in cal.MEMORY_KINDS}))


def test_a_prediction_far_from_the_measured_time_warns_and_names_calibrate(cli, monkeypatch, tmp_path):
    from archlab.measure.predict import prediction_warning

    assert prediction_warning("m", 1.0) is None and prediction_warning("m", 2.9) is None
    assert "archlab calibrate" in prediction_warning("m", 17.75)
    assert "archlab calibrate" in prediction_warning("m", 0.2)
    # a machine a million times too slow: the prediction is orders of magnitude over any measured time
    monkeypatch.setenv("ARCHLAB_CACHE_DIR", str(tmp_path))
    slow = {k: 1e-4 for k in cal.CONV_BENCHMARKS}
    monkeypatch.setattr(cal, "calibrate", lambda device="cpu", threads=1, dtype="fp32", progress=None: fake_machine(
        key=cal.machine_key(device, threads, dtype), peak_gflops=1e-4, conv_gflops=slow))
    r = cli("latency", "lenet5", "--predict", "--min-time", "0.01")
    assert r.code == 0, r.err
    assert "archlab: warning: lenet5: the roofline prediction is" in r.err and "archlab calibrate" in r.err


def test_unstable_micro_benchmarks_are_refused_and_not_cached(cli, monkeypatch, tmp_path):
    """A clock whose every step is 1 ms or 10 ms at random (the repetitions of a loaded machine):
    each micro-benchmark is timed again, stays unstable, and the calibration is refused, not cached."""
    import random

    monkeypatch.setenv("ARCHLAB_CACHE_DIR", str(tmp_path))
    steps = random.Random(0)

    def swinging(device):
        now = [0.0]

        def clock():
            now[0] += steps.choice([1e-3, 1e-2])
            return now[0]
        return clock

    monkeypatch.setattr(cal, "_timer", swinging)
    monkeypatch.setattr(cal, "_cycled", lambda build, nbytes, most=64: (lambda: None))  # nothing really run
    r = cli("calibrate", "--threads", "1")
    assert_one_line_error(r, "refused", "not cached", "unstable")
    assert not (tmp_path / cal.CACHE_FILE).exists()


def _spin(stop):
    while not stop.is_set():
        pass


@pytest.mark.slow
def test_a_loaded_machine_is_never_silently_cached(cli, monkeypatch, tmp_path):
    """Busy loops on every core while calibrating with every core: a refusal (one line, nothing
    cached) or a calibration that passed every check, cached with a warning that names the load;
    never an implausible one cached, never one cached without a word."""
    import multiprocessing as mp
    import os

    monkeypatch.setenv("ARCHLAB_CACHE_DIR", str(tmp_path))
    stop = mp.Event()
    busy = [mp.Process(target=_spin, args=(stop,)) for _ in range(os.cpu_count() or 1)]
    for p in busy:
        p.start()
    try:
        r = cli("calibrate", "--threads", str(os.cpu_count() or 1))
    finally:
        stop.set()
        for p in busy:
            p.join()
    if r.code == 2:
        assert_one_line_error(r, "refused", "not cached")
        assert not (tmp_path / cal.CACHE_FILE).exists()
    else:  # kept: plausible, and never without a word: the busy machine is named on stderr and in the cache
        assert r.code == 0, r.err
        m = cal.cached("cpu", os.cpu_count() or 1, "fp32")
        assert m is not None and cal.implausible(m) is None
        assert "archlab: warning: calibration measured while other processes kept" in r.err
        assert any(n.startswith("measured while other processes kept") for n in m.notes)


def test_a_busy_machine_is_noted_by_the_cpu_time_others_took():
    # /proc/stat's busy CPU seconds less this process's own, over the calibration's wall time
    quiet = cal.busy_note((0.0, 100.0, 1.0), (10.0, 110.0, 10.0), threads=1)  # others: 0.1 CPU
    assert quiet is None
    cores = os.cpu_count() or 1
    loaded = cal.busy_note((0.0, 100.0, 1.0), (10.0, 100.0 + 10 * (cores + 1), 1.0 + 10 * cores), threads=cores)
    assert loaded.startswith("measured while other processes kept 1.0 CPUs busy, beyond the 0 this calibration left")
    assert cal.busy_note((0.0, 0.0, 0.0), (0.5, 100.0, 0.0), threads=1) is None  # too short to say
    assert cal.busy_note(None, (1.0, 1.0, 1.0), threads=1) is None  # not Linux: nothing to read
    assert cal.cpu_seconds() is None or len(cal.cpu_seconds()) == 3


def test_a_calibration_kept_on_a_busy_machine_warns(cli, counted_calibrations, monkeypatch):
    readings = iter([(0.0, 0.0, 0.0), (10.0, 10.0 * (os.cpu_count() or 1) + 20.0, 0.0)])  # others: 2 CPUs
    monkeypatch.setattr(cal, "cpu_seconds", lambda: next(readings))
    r = cli("calibrate", "--threads", str(os.cpu_count() or 1))
    assert r.code == 0, r.err
    assert r.err.startswith("archlab: warning: calibration measured while other processes kept")
    assert "note: measured while other processes kept" in r.out
