"""archlab compare (analysis/compare.py and its CLI): the alpha/rho scaling form, several models
side by side, raw numbers in CSV, --latency in every format, a partial count flagged."""

import csv
import io
import textwrap

import pytest

from archlab.analysis import laws
from conftest import assert_one_line_error


def _csv(text):
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def _count(spec):
    from archlab.api.count import count

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
    (("compare", "mobilenet@alpha=0.5", "--alpha", "0.75"), ("alpha is given twice with different values", "--alpha 0.75")),
    (("compare", "mobilenet@res=160", "--rho", "0.5"), ("resolution is given twice", "res=160", "--rho 0.5")),
    (("compare", "mobilenet@alpha=9"), ("alpha must be in (0, 4]",)),
    (("compare", "mobilenet@batch=2", "--alpha", "0.5"), ("batch",)),
    (("compare", "mobilenet@input=3x160x160", "--alpha", "0.5"), ("input=",)),
    (("compare", "resnet50", "--alpha", "0.5"), ("no width multiplier", "--rho (res=) works for any CNN")),
    (("compare", "resnet50@alpha=0.5", "--rho", "160"), ("has no option 'alpha'",)),
    (("compare", "efficientnet_b0", "--alpha", "0.5"), ("no width multiplier",)),
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


# issue 24, item 6: compare --latency marks noisy runs as `archlab latency` does; each model's batch is said


def _fake_timings(monkeypatch, noisy):
    """measure_all replaced by one that returns a median (ms) and a noise flag per spec: no real timing."""
    from types import SimpleNamespace

    import archlab.measure.latency as latency

    def fake(specs, **options):
        return [SimpleNamespace(median_ms=2.0 + i, noisy=n) for i, n in enumerate(noisy[:len(specs)])]

    monkeypatch.setattr(latency, "measure_all", fake)


def test_compare_latency_marks_a_noisy_run_and_says_why(cli, monkeypatch):
    _fake_timings(monkeypatch, [False, True])
    r = cli("compare", "lenet", "lenet5", "--latency")
    assert r.code == 0, r.err
    rows = {line.split()[0]: line for line in r.out.splitlines() if line.startswith("lenet")}
    assert "3.00 (noisy)" in rows["lenet5"] and "(noisy)" not in rows["lenet"]
    assert "noisy (IQR over 10.0% of the median): lenet5" in r.out
    d = cli("compare", "lenet", "lenet5", "--latency", "-f", "json").json()
    assert [row["latency_noisy"] for row in sorted(d, key=lambda x: x["model"])] == [False, True]


def test_compare_latency_without_noise_has_no_mark(cli, monkeypatch):
    _fake_timings(monkeypatch, [False, False])
    r = cli("compare", "lenet", "lenet5", "--latency")
    assert r.code == 0, r.err
    assert "noisy" not in r.out


def test_compare_footer_says_each_models_batch(cli):
    r = cli("compare", "lenet", "lenet5@batch=8")
    assert r.code == 0, r.err
    assert "memory at fp32, batch 1" not in r.out  # the footer said batch 1 for all
    assert "memory at fp32, at each model's batch: lenet batch 1, lenet5 batch 8\n" in r.out
    same = cli("compare", "lenet@batch=4", "lenet5@batch=4")
    assert "memory at fp32, batch 4\n" in same.out


def test_compare_several_models_take_res_and_batch_for_every_model(cli):
    r = cli("compare", "mobilenet", "resnet18", "--res", "64", "--batch", "2", "-f", "json")
    assert r.code == 0, r.err
    by_spec = {row["model"].split("@")[0]: row for row in r.json()}
    for name in ("mobilenet", "resnet18"):  # the same counts as the spec saying it
        assert by_spec[name]["macs"] == _count(f"{name}@res=64,batch=2").macs
    assert "memory at fp32, batch 2\n" in cli("compare", "lenet", "lenet5", "--batch", "2").out


def test_compare_input_size_and_forward_kw_apply_to_every_model(cli):
    r = cli("compare", "mobilenet", "resnet18", "--input-size", "3,48,48", "-f", "json")
    assert r.code == 0, r.err
    assert (sorted(row["macs"] for row in r.json())
            == sorted(_count(f"{m}@res=48").macs for m in ("mobilenet", "resnet18")))


def test_compare_an_option_the_spec_gives_otherwise_is_given_twice(cli):
    assert_one_line_error(cli("compare", "lenet@batch=2", "lenet5", "--batch", "4"), "given twice")
    assert_one_line_error(cli("compare", "lenet@res=32", "lenet5", "--res", "64"), "given twice")


def test_compare_amp_is_the_training_views(cli):
    assert_one_line_error(cli("compare", "lenet", "lenet5", "--amp", "bf16"), "--training")
    fp32 = {x["model"]: x for x in cli("compare", "lenet", "lenet5", "--training", "-f", "json").json()}
    amp = {x["model"]: x for x in cli("compare", "lenet", "lenet5", "--training", "--amp", "bf16", "-f", "json").json()}
    from archlab.api.model import Model

    for m in ("lenet", "lenet5"):  # the bill `archlab memory --training --amp bf16` gives, not the fp32 one
        assert amp[m]["training_peak_bytes"] == Model(m).training_memory(amp="bf16").training_peak_bytes
        assert amp[m]["training_peak_bytes"] != fp32[m]["training_peak_bytes"]


# B10: a partial count is flagged in every output of compare

PARTIAL_FILE = textwrap.dedent('''
    import torch
    from torch import nn

    class Cumulative(nn.Module):
        def __init__(self, alpha=1.0):
            super().__init__()
            self.conv = nn.Conv2d(3, max(1, round(4 * alpha)), 3)

        def forward(self, x):
            return torch.lgamma(self.conv(x))  # an op archlab has no cost rule for

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
    assert rows[partial_model]["unsupported_ops"] == [{"op": "aten.lgamma.default", "count": 1}]
    assert rows["lenet5"]["unsupported_ops"] == []
    header, csv_rows = _csv(cli("compare", partial_model, "lenet5", "-f", "csv").out)
    assert header[-1] == "status"
    assert {row[0]: row[-1] for row in csv_rows} == {partial_model: "partial", "lenet5": "complete"}
    for fmt in ("table", "md"):
        out = cli("compare", partial_model, "lenet5", "-f", fmt).out
        assert f"{partial_model} (partial)" in out and "lenet5 (partial)" not in out
        caption = [line for line in out.splitlines() if line.startswith("PARTIAL counts: ")]
        assert len(caption) == 1 and "aten.lgamma.default x1" in caption[0], out
    # complete counts: no flag anywhere
    out = cli("compare", "lenet", "lenet5").out
    assert "partial" not in out.lower()
    assert {r["status"] for r in cli("compare", "lenet", "lenet5", "-f", "json").json()} == {"complete"}


def test_compare_scaling_flags_a_partial_count(cli, partial_model):
    d = cli("compare", partial_model, "--alpha", "0.5", "-f", "json").json()
    assert d["baseline"]["status"] == d["variant"]["status"] == "partial"
    assert d["variant"]["unsupported_ops"] == [{"op": "aten.lgamma.default", "count": 1}]
    header, rows = _csv(cli("compare", partial_model, "--alpha", "0.5", "-f", "csv").out)
    assert header[-2:] == ["baseline_status", "variant_status"]
    assert all(row[-2:] == ["partial", "partial"] for row in rows)
    out = cli("compare", partial_model, "--alpha", "0.5").out
    assert "(partial)" in out and "PARTIAL count: the baseline" in out and "aten.lgamma.default x1" in out
    d = cli("compare", "mobilenet", "--alpha", "0.5", "-f", "json").json()
    assert d["baseline"]["status"] == d["variant"]["status"] == "complete"
    assert "partial" not in cli("compare", "mobilenet", "--alpha", "0.5").out.lower()


# --- issue 15: the notes name the law's actual causes; --rho for any CNN ------------------------


def test_rho_alone_works_for_any_cnn(cli):
    d = cli("compare", "resnet50", "--rho", "160", "-f", "json").json()
    assert d["resolution"] == 160 and d["alpha"] == 1 and d["variant"]["params"] == d["baseline"]["params"]
    assert d["variant"]["macs"] == _count("resnet50@res=160").macs
    assert cli("compare", "resnet50@res=160", "-f", "json").json() == d
    assert cli("compare", "efficientnet_b0", "--rho", "0.5").code == 0


def test_the_notes_name_the_causes_and_their_shares_add_up(cli):
    d = cli("compare", "mobilenet", "--rho", "2", "-f", "json").json()
    causes = {c["cause"]: c["points"] for c in d["causes"]["macs"]}
    assert set(causes) == {"map_rounding", "classifier_resolution"}  # α = 1: no width cause
    assert sum(causes.values()) == pytest.approx(d["macs_law_error_percent"])
    assert d["causes"]["params"] == []
    text = cli("compare", "mobilenet", "--rho", "2").out
    note = next(line for line in text.splitlines() if line.startswith("note: cost"))
    assert "depthwise" not in note and "classifier" in note and "rounded" in note
    d = cli("compare", "mobilenet", "--alpha", "0.5", "-f", "json").json()  # ρ = 1: no resolution cause
    causes = {c["cause"]: c["points"] for c in d["causes"]["macs"]}
    assert {"depthwise_width", "first_conv_width"} <= set(causes) and "map_rounding" not in causes
    assert sum(causes.values()) == pytest.approx(d["macs_law_error_percent"])
    params = {c["cause"]: c["points"] for c in d["causes"]["params"]}
    assert max(params, key=params.get) == "classifier_params"
    assert sum(params.values()) == pytest.approx(d["params_law_error_percent"])
    # MobileNetV2 keeps its last 1x1 layer at 1280 channels for alpha < 1: a channel cause
    d = cli("compare", "mobilenet_v2", "--alpha", "0.5", "-f", "json").json()
    assert "channel_rounding" in {c["cause"] for c in d["causes"]["macs"]}


def test_an_efficientnet_gate_is_not_taken_for_map_rounding():
    from archlab.analysis.laws import compare_scaling

    c = compare_scaling("efficientnet_b0", rho="0.5")
    causes = {x["cause"]: x["amount"] for x in c.causes["macs"]}
    assert causes["classifier_resolution"] > 1_024_000 * 1.2  # the classifier and the SE gates' 1x1 convs


def test_compare_bills_each_model_at_its_own_dtype_and_says_so(cli, tmp_path):
    # issue 24 item 4: a bf16 model's memory columns are at bf16 (half the fp32 one's), and the caption says so
    path = tmp_path / "two_dtypes.py"
    path.write_text("import torch\nfrom torch import nn\n\n\ndef mlp(bf16=False):\n"
                    "    m = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))\n"
                    "    return m.to(torch.bfloat16) if bf16 else m\n\n\ndef half_mlp():\n    return mlp(True)\n")
    r = cli("compare", f"{path}:mlp", f"{path}:half_mlp", "--input-size", "64", "-f", "json")
    assert r.code == 0, r.err
    rows = {row["model"].split(":")[1].split("@")[0]: row for row in r.json()}
    assert (rows["mlp"]["dtype"], rows["half_mlp"]["dtype"]) == ("fp32", "bf16")
    assert rows["half_mlp"]["params_bytes"] * 2 == rows["mlp"]["params_bytes"] == 4 * 19_210
    assert rows["half_mlp"]["activation_peak_bytes"] * 2 == rows["mlp"]["activation_peak_bytes"]
    text = cli("compare", f"{path}:mlp", f"{path}:half_mlp", "--input-size", "64")
    assert "memory at each model's own dtype (" in text.out and "half_mlp@input=64 bf16)" in text.out
    assert "memory at fp32, batch 1" in cli("compare", "lenet5", "alexnet").out


# --- compare --training --world-size N --shard ...: one rank's bill per scheme, side by side ---------


def _bill(model, shard, **kw):
    from archlab.api.memory import training_memory

    return training_memory(model, shard=shard, **kw)


def test_compare_training_shard_columns_are_each_schemes_per_rank_bill(cli):
    kw = dict(world_size=4, batch=8, optimizer="adam", res=64)
    r = cli("compare", "resnet18", "--training", "--world-size", "4", "--shard", "all", "--batch", "8",
            "--optimizer", "adam", "--res", "64", "-f", "json")
    assert r.code == 0, r.err
    got = r.json()
    assert [c["shard"] for c in got] == ["none", "zero1", "zero2", "zero3", "fsdp"]
    none = _bill("resnet18", "none", **kw)
    for column in got:
        bill = _bill("resnet18", column["shard"], **kw)
        assert {k: v for k, v in column.items() if k != "saving_against_none_bytes"} == bill.to_dict()
        assert column["saving_against_none_bytes"] == none.training_peak_bytes - bill.training_peak_bytes
    # an independent reference for the sharded parameters: FSDP2's dim-0 shards of the model's own parameters
    import math

    from archlab.api.model import Model

    module = Model("resnet18", res=64).built.module
    shards = sum(math.ceil(p.shape[0] / 4) * math.prod(p.shape[1:]) * 4 for p in module.parameters())
    assert got[3]["params_bytes"] == got[4]["params_bytes"] == shards
    assert got[0]["params_bytes"] == 4 * sum(p.numel() for p in module.parameters())


def test_compare_training_shard_table_md_csv_name_each_scheme_and_the_saving(cli):
    from archlab.units import human_bytes

    args = ("compare", "resnet18", "--training", "--world-size", "2", "--shard", "none,zero3", "--batch", "4",
            "--res", "64")
    bills = [_bill("resnet18", s, world_size=2, batch=4, res=64) for s in ("none", "zero3")]
    table = cli(*args).out.splitlines()
    assert table[0].split() == ["per", "rank", "none", "zero3"]
    peak = next(line for line in table if line.startswith("training peak per rank"))
    assert peak.split("  ")[-1].strip() == human_bytes(bills[1].training_peak_bytes)
    assert human_bytes(bills[0].training_peak_bytes) in peak
    saved = bills[0].training_peak_bytes - bills[1].training_peak_bytes
    saving = next(line for line in table if line.startswith("saving against none"))
    assert f"{human_bytes(saved)} ({100 * saved / bills[0].training_peak_bytes:.1f}%)" in saving
    assert "one rank of 2, global batch 4 (2 per rank)" in cli(*args).out and "at fp32" in cli(*args).out
    md = cli(*args, "-f", "md").out
    assert md.startswith("| per rank | none | zero3 |") and "| training peak per rank |" in md
    head, rows = _csv(cli(*args, "-f", "csv").out)
    for row, bill in zip(rows, bills):
        d = dict(zip(head, row))
        assert d["shard"] == bill.shard and int(d["training_peak_bytes"]) == bill.training_peak_bytes
        assert int(d["comm_buffers_bytes"]) == bill.comm_buffers_bytes
        assert int(d["saving_against_none_bytes"]) == bills[0].training_peak_bytes - bill.training_peak_bytes
    page = cli(*args, "-f", "html").out
    assert page.count("<svg") == 1 and page.endswith("</html>\n") and "training peak per rank" in page


def test_compare_training_several_models_under_one_scheme(cli):
    r = cli("compare", "resnet18", "mobilenet_v2", "--training", "--world-size", "2", "--shard", "zero2",
            "--batch", "4", "--res", "64", "-f", "json")
    assert r.code == 0, r.err
    for column, model in zip(r.json(), ("resnet18", "mobilenet_v2")):
        bill = _bill(model, "zero2", world_size=2, batch=4, res=64)
        none = _bill(model, "none", world_size=2, batch=4, res=64)
        assert column["model"] == bill.model == f"{model}@res=64"
        assert column["training_peak_bytes"] == bill.training_peak_bytes
        assert column["saving_against_none_bytes"] == none.training_peak_bytes - bill.training_peak_bytes
    table = cli("compare", "resnet18", "mobilenet_v2", "--training", "--world-size", "2", "--shard", "zero2",
                "--batch", "4", "--res", "64").out
    assert table.splitlines()[0].split() == ["per", "rank", "resnet18@res=64", "mobilenet_v2@res=64"]
    assert "ZeRO-2, one rank" in table


@pytest.mark.parametrize("args, needles", [
    (("--world-size", "2"), ("--world-size", "add --training")),
    (("--shard", "zero1"), ("--shard", "add --training")),
    (("--training", "--world-size", "3", "--batch", "4"), ("--world-size 3 does not divide", "--batch 3 or 6")),
    (("--training", "--world-size", "0"), ("--world-size must be a whole number",)),
    (("--training", "--shard", "zero9"), ("unknown --shard 'zero9'", "or all")),
    (("--training", "--shard", "all,zero1"), ("--shard all", "alone")),
    (("--training", "--shard", "none,"), ("scheme names separated by commas",)),
    (("--training", "--shard", "zero1", "--latency"), ("--latency",)),
    (("--training", "--shard", "zero1", "--alpha", "0.5"), ("--alpha/--rho", "no training view")),
])
def test_compare_training_shard_bad_inputs_are_one_line(cli, args, needles):
    assert_one_line_error(cli("compare", "resnet18", "--res", "64", *args), *needles)
