"""archlab/measure/roofline.py and report/roofline.py: the roofline's points, its figure, archlab roofline."""

import pytest

from conftest import assert_one_line_error


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
        # every command says "wrote FILE": on stdout when the file is its only output (report), on
        # stderr after "archlab: " when stdout carries the command's table, as here
        assert res.err.strip().splitlines()[-1] == f"archlab: wrote {out}" and "wrote" not in res.out
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


def test_roofline_engine_real_places_a_forward_that_reads_values(cli, counted_calibrations, tmp_path, monkeypatch):
    from test_latency import BRANCHING_FILE

    (tmp_path / "branching.py").write_text(BRANCHING_FILE)
    monkeypatch.chdir(tmp_path)
    meta = cli("roofline", "branching.py:make")
    assert meta.code == 2 and "--engine real" in meta.err
    r = cli("roofline", "branching.py:make", "--engine", "real", "-f", "json")
    assert r.code == 0, r.err
    d = r.json()
    # the conv branch, from the real forward's trace: 3->4 channels, 3x3 kernel, 6x6 output, 2 FLOPs a MAC
    assert sum(p["flops"] for p in d["points"]) == 2 * 4 * 3 * 3 * 3 * 6 * 6


def test_roofline_measure_warns_when_the_prediction_is_far_off(cli, monkeypatch, tmp_path):
    from archlab.measure import calibrate as cal
    from conftest import fake_machine

    monkeypatch.setenv("ARCHLAB_CACHE_DIR", str(tmp_path))
    slow = {k: 1e-4 for k in cal.CONV_BENCHMARKS}  # a machine a million times too slow: no noise reaches it
    monkeypatch.setattr(cal, "calibrate", lambda device="cpu", threads=1, dtype="fp32", progress=None: fake_machine(
        key=cal.machine_key(device, threads, dtype), peak_gflops=1e-4, conv_gflops=slow))
    r = cli("roofline", "lenet5", "--measure")
    assert r.code == 0, r.err
    assert "archlab: warning: lenet5: the roofline prediction is" in r.err and "archlab calibrate" in r.err
