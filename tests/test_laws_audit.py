"""The QA audit of `archlab dwsc`, `archlab compare` and `archlab efficientnet`: one test per
defect found, each run through the CLI where the defect was visible there."""

import csv
import io
import math
import os
import textwrap

import pytest

from archlab.analysis import laws
from conftest import assert_one_line_error


def _csv(text):
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def _count(spec):
    from archlab.analysis.count import count

    return count(spec, depth=0)


# --- 1. the alpha/rho form reads the spec's options --------------------------------------------


def test_compare_spec_alpha_is_the_variants_alpha(cli):
    d = cli("compare", "mobilenet@alpha=0.5", "--rho", "160", "-f", "json").json()
    assert d["alpha"] == 0.5 and d["resolution"] == 160 and d["default_resolution"] == 224
    assert d["variant"]["macs"] == _count("mobilenet@alpha=0.5,res=160").macs
    assert d["baseline"]["macs"] == _count("mobilenet").macs
    assert d["predicted"]["macs_ratio"] == pytest.approx(0.25 * (160 / 224) ** 2)
    assert cli("compare", "mobilenet@alpha=0.5", "--rho", "160").out.startswith("mobilenet: α = 0.5, ρ = 0.7143")


def test_compare_spec_res_is_the_variants_resolution_not_the_baseline(cli):
    d = cli("compare", "mobilenet@res=160", "--alpha", "0.5", "-f", "json").json()
    assert d["baseline"]["macs"] == _count("mobilenet").macs, "the baseline is at the default 224 px"
    assert d["variant"]["macs"] == _count("mobilenet@alpha=0.5,res=160").macs
    assert d["rho"] == pytest.approx(160 / 224) and d["default_resolution"] == 224
    assert 5 < d["macs_law_error_percent"] < 6  # was -46.2% with ρ taken as 1
    # the same comparison whichever way the values are given
    flags = cli("compare", "mobilenet", "--alpha", "0.5", "--rho", "160", "-f", "json").json()
    both = cli("compare", "mobilenet@alpha=0.5,res=160", "-f", "json").json()
    assert d == flags == both
    r = cli("compare", "mobilenet@res=160", "--alpha", "0.5")
    assert "mobilenet's default resolution (224 px)" in r.out.splitlines()[0]


def test_compare_keeps_the_specs_other_options_in_both_counts(cli):
    d = cli("compare", "mobilenet@num_classes=10", "--alpha", "0.5", "-f", "json").json()
    assert d["baseline"]["params"] == _count("mobilenet@num_classes=10").params
    assert d["variant"]["params"] == _count("mobilenet@num_classes=10,alpha=0.5").params
    assert d["baseline"]["params"] != _count("mobilenet").params
    assert d["course"] is None, "the course's table is for the 1000-class network"


@pytest.mark.parametrize("args, needles", [
    (("compare", "mobilenet@alpha=0.5", "--alpha", "0.75"), ("alpha given twice", "--alpha 0.75")),
    (("compare", "mobilenet@res=160", "--rho", "0.5"), ("resolution is given twice", "res=160", "--rho 0.5")),
    (("compare", "mobilenet@alpha=9"), ("alpha must be in (0, 4]",)),
    (("compare", "mobilenet@batch=2", "--alpha", "0.5"), ("batch",)),
    (("compare", "mobilenet@input=3x160x160", "--alpha", "0.5"), ("input=",)),
    (("compare", "resnet50@res=160"), ("no width multiplier",)),
])
def test_compare_scaling_refusals(cli, args, needles):
    assert_one_line_error(cli(*args), *needles)


# --- 2. a multiplier rounded to whole pixels ---------------------------------------------------


def test_rho_rounded_to_pixels_is_recomputed(cli):
    assert laws.parse_rho("0.0001", 224) == (1, 1 / 224)
    assert laws.parse_rho("0.7143", 224) == (160, 160 / 224)
    d = cli("compare", "mobilenet", "--rho", "0.0001", "-f", "json").json()
    assert d["resolution"] == 1 and d["default_resolution"] == 224
    assert d["rho"] == pytest.approx(1 / 224) and d["rho_requested"] == 0.0001
    assert d["predicted"]["macs_ratio"] == pytest.approx((1 / 224) ** 2)
    title = cli("compare", "mobilenet", "--rho", "0.0001").out.splitlines()[0]
    assert "default resolution (224 px)" in title and "10000 px" not in title
    assert "ρ = 0.0001 asked for" in title and "resolution 1 px" in title
    # a multiplier that lands on a whole pixel is not reported as rounded
    assert cli("compare", "mobilenet", "--rho", "0.5", "-f", "json").json()["rho_requested"] is None


def test_a_resolution_the_model_cannot_take_is_one_line(cli, tmp_path):
    # a model whose map vanishes below 5 px, with an alpha option so that compare takes it
    path = tmp_path / "shrink.py"
    path.write_text(textwrap.dedent('''
        from torch import nn

        def make(alpha: float = 1.0):
            c = max(1, round(8 * alpha))
            return nn.Sequential(nn.Conv2d(3, c, 5), nn.Flatten())
        make.input_size = (3, 32, 32)
    '''))
    assert cli("compare", f"{path}:make", "--alpha", "0.5", "-f", "json").code == 0
    assert_one_line_error(cli("compare", f"{path}:make", "--rho", "0.01"), "1 px", "vanishes")


# --- 3. a first model without parameters -------------------------------------------------------


@pytest.fixture
def empty_model(tmp_path):
    path = tmp_path / "empty.py"
    path.write_text("import torch\n\ndef make():\n    return torch.nn.ReLU()\nmake.input_size = (3, 8, 8)\n")
    return f"{path}:make"


def test_compare_first_model_without_params(cli, empty_model):
    rows = cli("compare", empty_model, "lenet5", "-f", "json").json()
    lenet = next(r for r in rows if r["model"] == "lenet5")
    assert lenet["params_ratio"] is None and lenet["macs_ratio"] is None
    for fmt in ("table", "md", "csv"):
        r = cli("compare", empty_model, "lenet5", "-f", fmt)
        assert r.code == 0, r.err
        assert "-" in r.out
    header, rows = _csv(cli("compare", empty_model, "lenet5", "-f", "csv").out)
    lenet = dict(zip(header, next(r for r in rows if r[0] == "lenet5")))
    assert lenet["params_ratio"] == lenet["macs_ratio"] == "-"
    # second: its ratios are 0, and the table does not divide by them
    r = cli("compare", "lenet5", empty_model)
    assert r.code == 0, r.err
    assert cli("compare", "lenet5", empty_model, "-f", "json").json()[0]["params_ratio"] == 0.0


# --- 4. CSV holds raw numbers ------------------------------------------------------------------


def _is_number(cell):
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_dwsc_csv_raw_numbers(cli):
    header, rows = _csv(cli("dwsc", "-f", "csv").out)
    assert header == ["quantity", "unit", "formula", "by_formula", "counted", "agree"]
    d = {r[0]: r for r in rows}
    r = laws.dwsc(3, 512, 1024, 14)
    assert int(d["standard_macs"][3]) == int(d["standard_macs"][4]) == r.standard_macs
    assert int(d["separable_params"][4]) == r.separable_params
    assert float(d["macs_ratio"][4]) == r.ratio
    assert all(row[5] == "true" for row in rows)
    header, rows = _csv(cli("dwsc", "--sweep", "n=64..256", "-f", "csv").out)
    assert header[:4] == ["n", "out_size_px", "standard_macs", "separable_macs"]
    assert all(_is_number(c) and "," not in c for row in rows for c in row)
    assert int(rows[0][2]) == laws.dwsc(3, 512, 64, 14).standard_macs


def test_compare_csv_raw_numbers(cli):
    header, rows = _csv(cli("compare", "lenet5", "alexnet", "-f", "csv").out)
    assert header == ["model", "params", "macs", "flops", "rf_px", "params_bytes", "activation_peak_bytes",
                      "params_ratio", "macs_ratio", "status"]
    js = {r["model"]: r for r in cli("compare", "lenet5", "alexnet", "-f", "json").json()}
    for row in rows:
        cells = dict(zip(header, row))
        j = js[cells["model"]]
        for key in ("params", "macs", "flops", "params_bytes", "activation_peak_bytes"):
            assert int(cells[key]) == j[key], key
        assert int(cells["rf_px"]) == j["rf"]
        assert float(cells["macs_ratio"]) == pytest.approx(j["macs_ratio"])
    header, rows = _csv(cli("compare", "mobilenet", "--alpha", "0.5", "-f", "csv").out)
    d = {r[0]: dict(zip(header, r)) for r in rows}
    j = cli("compare", "mobilenet", "--alpha", "0.5", "-f", "json").json()
    assert int(d["macs"]["variant"]) == j["variant"]["macs"] and int(d["params"]["baseline"]) == j["baseline"]["params"]
    assert float(d["macs"]["law_error_percent"]) == pytest.approx(j["macs_law_error_percent"])
    assert float(d["params"]["predicted_ratio"]) == 0.25


def test_efficientnet_csv_raw_numbers(cli):
    header, rows = _csv(cli("efficientnet", "--phi", "1", "-f", "csv").out)
    assert header == ["quantity", "rule", "value", "unit"]
    d = {r[0]: r for r in rows}
    j = cli("efficientnet", "--phi", "1", "-f", "json").json()
    assert all(_is_number(r[2]) for r in rows), [r for r in rows if not _is_number(r[2])]
    assert int(d["macs"][2]) == j["macs"] and int(d["params"][2]) == j["params"]
    assert int(d["resolution"][2]) == j["resolution"] and d["resolution"][3] == "px"
    assert int(d["official_macs"][2]) == j["official"]["macs"]
    assert float(d["measured_cost_ratio"][2]) == pytest.approx(j["measured_cost_ratio"])
    header, rows = _csv(cli("efficientnet", "--search", "-f", "csv").out)
    assert header == ["alpha", "beta", "gamma", "constraint", "resolution_px", "params", "macs"]
    assert all(_is_number(c) for row in rows for c in row)
    # table and md stay human-formatted
    assert "992,629,472 (992.63 M)" in cli("efficientnet", "--phi", "1").out
    assert "924,844,032" in cli("dwsc", "-f", "md").out


# --- 5. options that were ignored ------------------------------------------------------------


@pytest.mark.parametrize("args, needles", [
    (("efficientnet", "--search", "--phi", "3"), ("--search", "--phi")),
    (("efficientnet", "--search", "--alpha", "2"), ("--search", "--alpha")),
    (("efficientnet", "--search", "--phi", "1"), ("--phi",)),  # even the value --search uses: it was given
    (("efficientnet", "--search", "--report", "md"), ("--report",)),
    (("efficientnet", "--report", "md", "-f", "json"), ("--report", "-f")),
    (("efficientnet", "--report", "json", "-f", "table"), ("--report", "-f")),
    (("compare", "lenet5", "alexnet", "--min-time", "-1"), ("--min-time must be a positive number",)),
    (("compare", "lenet5", "alexnet", "--min-time", "nan"), ("--min-time must be a positive number",)),
    (("compare", "lenet5", "alexnet", "--min-time", "1"), ("--min-time", "--latency")),
    (("compare", "mobilenet", "--alpha", "0.5", "--min-time", "0.1"), ("--latency",)),
])
def test_ignored_options_are_refused(cli, args, needles):
    assert_one_line_error(cli(*args), *needles)


def test_efficientnet_defaults_still_apply(cli):
    d = cli("efficientnet", "-f", "json").json()
    assert (d["phi"], d["alpha"], d["beta"], d["gamma"]) == (1.0, 1.2, 1.1, 1.15)
    assert cli("efficientnet", "--phi", "2", "--beta", "1.2", "-f", "json").json()["beta"] == 1.2


# --- 6. an even kernel keeps the map's side --------------------------------------------------


@pytest.mark.parametrize("k, size, stride", [(2, 7, 1), (4, 14, 1), (4, 15, 2), (6, 9, 3), (8, 1, 1), (2, 5, 2)])
def test_even_kernel_formula_equals_the_counted_layers(k, size, stride):
    r = laws.dwsc(k, 8, 16, size, stride)
    assert r.out_size == math.ceil(size / stride)
    assert sum(r.padding) == k - 1 and r.padding == ((k - 1) // 2, k // 2)
    assert r.agrees, r
    assert r.standard_macs == k * k * 8 * r.out_size**2 * 16


def test_cli_dwsc_even_kernel(cli):
    r = cli("dwsc", "--k", "4", "--size", "14")
    assert r.code == 0 and "D_G = 14" in r.out.splitlines()[0] and "1 before and 2 after" in r.out
    assert "NO" not in r.out
    d = cli("dwsc", "--k", "4", "--size", "14", "-f", "json").json()
    assert d["out_size"] == 14 and d["padding"] == [1, 2] and d["formula_agrees_with_count"] is True


# --- 7. sizes no tensor can hold -------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ("--k", "99999999999999999999"),
    ("--m", "9999999999", "--n", "9999999999"),
    ("--m", "3000000000", "--n", "3000000000", "--size", "3000000000"),
    ("--size", "2000000000", "--m", "1", "--n", "1", "--k", "1"),
    ("--stride", "99999999999999999999"),
    ("--sweep", "m=10000000000000000,1"),
])
def test_dwsc_too_large_is_one_line(cli, args):
    assert_one_line_error(cli("dwsc", *args), "--")


def test_dwsc_large_but_possible_is_counted(cli):
    d = cli("dwsc", "--m", "100000", "--n", "100000", "--size", "1000", "-f", "json").json()
    assert d["standard_macs"] == 9 * 100000 * 1000**2 * 100000 and d["formula_agrees_with_count"] is True


# --- 8. report paths ---------------------------------------------------------------------------


def test_report_to_a_missing_directory_names_the_users_path(cli, tmp_path):
    missing = tmp_path / "no" / "such"
    r = cli("efficientnet", "--report", "md", "-o", str(missing / "x.md"))
    assert_one_line_error(r, f"'{missing / 'x.md'}'", str(missing))
    assert "x.png" not in r.err
    assert_one_line_error(cli("efficientnet", "--report", "md", "-o", str(tmp_path)), "is a directory")


def test_report_without_o_creates_reports(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("efficientnet", "--phi", "0", "--report", "json")
    assert r.code == 0, r.err
    assert r.out.strip() == f"wrote {os.path.join('reports', 'efficientnet-phi0.json')}"
    assert (tmp_path / "reports" / "efficientnet-phi0.json").is_file()
    # a file where the folder should be: one line that points to -o
    (tmp_path / "reports" / "efficientnet-phi0.json").unlink()
    (tmp_path / "reports").rmdir()
    (tmp_path / "reports").write_text("")
    assert_one_line_error(cli("efficientnet", "--phi", "0", "--report", "json"), "reports", "-o")


# --- second audit ------------------------------------------------------------------------------
# B5: the one-model form's --latency is data in JSON and CSV, a line only in the table and md


LATENCY = ("compare", "mobilenet", "--alpha", "0.5", "--rho", "64", "--latency", "--min-time", "0.05")


def test_compare_one_model_latency_is_data_in_json(cli):
    r = cli(*LATENCY, "-f", "json")
    assert r.code == 0, r.err
    d = r.json()  # the whole output parses: no line of text after the JSON
    lat = d["latency"]
    assert lat["baseline_ms"] > 0 and lat["variant_ms"] > 0
    assert lat["ratio"] == pytest.approx(lat["variant_ms"] / lat["baseline_ms"])
    assert (lat["device"], lat["batch"], lat["statistic"]) == ("cpu", 1, "median")
    assert d["units"]["latency"]["baseline_ms"] == "milliseconds"
    assert "latency (CPU" not in r.out
    # without --latency there is no latency key at all
    assert "latency" not in cli("compare", "mobilenet", "--alpha", "0.5", "--rho", "64", "-f", "json").json()


def test_compare_one_model_latency_is_a_row_in_csv(cli):
    r = cli(*LATENCY, "-f", "csv")
    assert r.code == 0, r.err
    header, rows = _csv(r.out)
    assert all(len(row) == len(header) for row in rows), "every line is a row of the table"
    d = {row[0]: dict(zip(header, row)) for row in rows}
    assert set(d) == {"params", "macs", "latency_ms"}
    lat = d["latency_ms"]
    assert float(lat["baseline"]) > 0 and float(lat["variant"]) > 0
    assert float(lat["measured_ratio"]) == pytest.approx(float(lat["variant"]) / float(lat["baseline"]))
    assert lat["variant_model"] == d["macs"]["variant_model"] == "mobilenet@alpha=0.5,res=64"


def test_compare_one_model_latency_stays_a_line_in_md(cli):
    r = cli(*LATENCY, "-f", "md")
    assert r.code == 0, r.err
    assert r.out.startswith("### mobilenet: α = 0.5")
    line = [x for x in r.out.splitlines() if x.startswith("latency (CPU, batch 1, median): baseline ")]
    assert len(line) == 1 and "ms, variant " in line[0]


def test_compare_several_models_latency_csv_is_one_table(cli):
    r = cli("compare", "lenet", "lenet5", "--latency", "--min-time", "0.05", "-f", "csv")
    assert r.code == 0, r.err
    header, rows = _csv(r.out)
    assert header[-3:] == ["latency_ms", "latency_ratio", "status"]
    assert len(rows) == 2 and all(len(row) == len(header) for row in rows)
    assert all(float(dict(zip(header, row))["latency_ms"]) > 0 for row in rows)


# B10: a partial count is flagged in every output of compare

PARTIAL_FILE = textwrap.dedent('''
    import torch
    from torch import nn

    class Cumulative(nn.Module):
        def __init__(self, alpha=1.0):
            super().__init__()
            self.conv = nn.Conv2d(3, max(1, round(4 * alpha)), 3)

        def forward(self, x):
            return torch.cumsum(self.conv(x), 1)  # an op archlab has no cost rule for

    def make(alpha: float = 1.0):
        return Cumulative(alpha)
    make.input_size = (3, 8, 8)
''')


@pytest.fixture
def partial_model(tmp_path, monkeypatch):
    (tmp_path / "partial.py").write_text(PARTIAL_FILE)
    monkeypatch.chdir(tmp_path)  # a short name: the table wraps long ones
    spec = "partial.py:make"
    assert _count(spec).status == "partial", "the test model must be a partial count"
    return spec


def test_compare_flags_a_partial_count(cli, partial_model):
    rows = {r["model"]: r for r in cli("compare", partial_model, "lenet5", "-f", "json").json()}
    assert rows[partial_model]["status"] == "partial" and rows["lenet5"]["status"] == "complete"
    assert rows[partial_model]["unsupported_ops"] == [{"op": "aten.cumsum.default", "count": 1}]
    assert rows["lenet5"]["unsupported_ops"] == []
    header, csv_rows = _csv(cli("compare", partial_model, "lenet5", "-f", "csv").out)
    assert header[-1] == "status"
    assert {row[0]: row[-1] for row in csv_rows} == {partial_model: "partial", "lenet5": "complete"}
    for fmt in ("table", "md"):
        out = cli("compare", partial_model, "lenet5", "-f", fmt).out
        assert f"{partial_model} (partial)" in out and "lenet5 (partial)" not in out
        caption = [line for line in out.splitlines() if line.startswith("PARTIAL counts: ")]
        assert len(caption) == 1 and "aten.cumsum.default x1" in caption[0], out
    # complete counts: no flag anywhere
    out = cli("compare", "lenet", "lenet5").out
    assert "partial" not in out.lower()
    assert {r["status"] for r in cli("compare", "lenet", "lenet5", "-f", "json").json()} == {"complete"}


def test_compare_scaling_flags_a_partial_count(cli, partial_model):
    d = cli("compare", partial_model, "--alpha", "0.5", "-f", "json").json()
    assert d["baseline"]["status"] == d["variant"]["status"] == "partial"
    assert d["variant"]["unsupported_ops"] == [{"op": "aten.cumsum.default", "count": 1}]
    header, rows = _csv(cli("compare", partial_model, "--alpha", "0.5", "-f", "csv").out)
    assert header[-2:] == ["baseline_status", "variant_status"]
    assert all(row[-2:] == ["partial", "partial"] for row in rows)
    out = cli("compare", partial_model, "--alpha", "0.5").out
    assert "(partial)" in out and "PARTIAL count: the baseline" in out and "aten.cumsum.default x1" in out
    d = cli("compare", "mobilenet", "--alpha", "0.5", "-f", "json").json()
    assert d["baseline"]["status"] == d["variant"]["status"] == "complete"
    assert "partial" not in cli("compare", "mobilenet", "--alpha", "0.5").out.lower()


# B11: efficientnet --report md and the paths of the report and its plot


def test_report_md_refuses_an_o_that_is_its_own_plot(cli, tmp_path):
    for name in ("x.png", "x.PNG"):
        r = cli("efficientnet", "--phi", "0", "--report", "md", "-o", str(tmp_path / name))
        assert_one_line_error(r, name, "plot", "overwrite")
    # a link at the plot's place that leads to the report: the same file too
    (tmp_path / "y.png").symlink_to(tmp_path / "y.md")
    assert_one_line_error(cli("efficientnet", "--phi", "0", "--report", "md", "-o", str(tmp_path / "y.md")),
                          "overwrite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y.png"], "nothing written"


def test_report_md_through_a_symlink_puts_the_plot_beside_the_real_file(cli, tmp_path):
    (tmp_path / "sub").mkdir()
    link = tmp_path / "link.md"
    link.symlink_to(tmp_path / "sub" / "real.md")
    r = cli("efficientnet", "--phi", "0", "--report", "md", "-o", str(link))
    assert r.code == 0, r.err
    assert link.is_symlink(), "the link stays"
    assert (tmp_path / "sub" / "real.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "link.png").exists()
    assert "![MACs and params against phi](real.png)" in (tmp_path / "sub" / "real.md").read_text()
    assert r.out.strip() == f"wrote {link}, {tmp_path / 'sub' / 'real.png'}"


def test_report_md_refuses_an_o_that_is_not_a_regular_file(cli, tmp_path):
    fifo = tmp_path / "r.md"
    os.mkfifo(fifo)
    # a reader, so that a regression writing into the pipe fails the test instead of hanging it
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        r = cli("efficientnet", "--phi", "0", "--report", "md", "-o", str(fifo))
        assert_one_line_error(r, "r.md", "not a regular file")
        assert os.read(reader, 100) == b""
    finally:
        os.close(reader)
    # the same through a link, as /dev/stdout is one
    link = tmp_path / "out"
    link.symlink_to(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert_one_line_error(cli("efficientnet", "--phi", "0", "--report", "md", "-o", str(link)),
                              "not a regular file")
    finally:
        os.close(reader)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "r.md"], "no plot written"
    # json writes through a pipe, as a shell's > does: only md needs a file to put its plot beside
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert cli("efficientnet", "--phi", "0", "--report", "json", "-o", str(fifo)).code == 0
        assert b'"measured_cost_ratio"' in os.read(reader, 1 << 20)
    finally:
        os.close(reader)


def test_report_md_plot_in_the_way_is_refused_before_anything_is_written(cli, tmp_path):
    (tmp_path / "d.png").mkdir()
    assert_one_line_error(cli("efficientnet", "--phi", "0", "--report", "md", "-o", str(tmp_path / "d.md")),
                          "d.png", "directory")
    assert not (tmp_path / "d.md").exists()


@pytest.mark.parametrize("old_plot", [None, b"an old plot"])
def test_report_md_takes_its_plot_back_when_the_report_cannot_be_written(cli, tmp_path, monkeypatch, old_plot):
    from archlab.errors import UserError
    from archlab.report import files

    real = files.write_atomic

    def fail_on_md(path, data):
        if str(path).endswith(".md"):
            raise UserError(f"cannot write '{path}': No space left on device")
        real(path, data)

    monkeypatch.setattr(files, "write_atomic", fail_on_md)
    png = tmp_path / "r.png"
    if old_plot is not None:
        png.write_bytes(old_plot)
    assert_one_line_error(cli("efficientnet", "--phi", "0", "--report", "md", "-o", str(tmp_path / "r.md")),
                          "No space left")
    if old_plot is None:
        assert not png.exists(), "the plot written for the failed report is removed"
    else:
        assert png.read_bytes() == old_plot, "the plot it replaced is restored"
    assert not (tmp_path / "r.md").exists()


# B21: archlab.dwsc() and archlab dwsc compute the same layer by default


def test_dwsc_api_defaults_are_the_clis(cli):
    import inspect

    params = inspect.signature(laws.dwsc).parameters
    assert {k: p.default for k, p in params.items()} == laws.DWSC_DEFAULTS
    assert laws.DWSC_DEFAULTS == {"k": 3, "m": 512, "n": 1024, "size": 14, "stride": 1}  # the README's defaults
    assert cli("dwsc", "-f", "json").json() == laws.dwsc().to_dict()
    r = laws.dwsc(k=3, n=1024)  # the README's API example: the CLI's default layer
    assert (r.m, r.size, r.out_size) == (512, 14, 14)
