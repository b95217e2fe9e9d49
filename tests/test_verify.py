"""archlab verify: the course's claims recomputed; statuses, tolerances, the data file's errors, the report."""

import json
import os
import tomllib

import pytest

from archlab.report import verify as verify_report
from archlab.verify import DEFAULT_DATA, course_value, load, rounds_to, tolerance_of, verify
from conftest import assert_one_line_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def shipped():
    """One full run over the shipped claims (about 3 s), shared by the tests that read it."""
    return verify()


def _rows(result):
    return {r.claim.id: r for r in result.rows}


# --- the shipped data -------------------------------------------------------------------------


def test_every_shipped_claim_is_ok_or_an_explained_discrepancy(shipped):
    # what 'archlab verify' reports: the summary's FAIL count, and no ClaimsFailed (exit code 3)
    assert shipped.summary["FAIL"] == 0, [(r.claim.id, r.note) for r in shipped.rows if r.status == "FAIL"]
    shipped.raise_if_failed()
    recorded = {d["id"] for d in tomllib.load(open(DEFAULT_DATA, "rb"))["discrepancy"]}
    actual = {r.claim.id for r in shipped.rows if r.status == "known-discrepancy"}
    # no stale record: every recorded discrepancy still disagrees, and only those
    assert actual == recorded
    assert not [r.claim.id for r in shipped.rows if r.note]
    summary = shipped.summary
    assert summary["known-discrepancy"] == len(recorded) and summary["ok"] == len(shipped.rows) - len(recorded)


def test_the_issue_claims_are_all_transcribed(shipped):
    rows = _rows(shipped)
    for rid in ("alexnet.params", "alexnet.neurons", "alexnet.connections", "vgg.rf.two_3x3", "vgg.rf.three_3x3",
                "googlenet.params", "googlenet.fewer_params", "googlenet.fewer_macs", "dwsc.ratio.value",
                "mobilenet.conv.madds", "mobilenet.conv.params", "mobilenet_v2.alpha1_4.params",
                "efficientnet.constraint", "efficientnet.cost_growth"):
        assert rid in rows
    weight_layers = {c: rows[f"vgg.{c}.weight_layers"].computed for c in ("a", "a_lrn", "b", "c", "d", "e")}
    assert weight_layers == {"a": 11, "a_lrn": 11, "b": 13, "c": 16, "d": 16, "e": 19}
    # every row of GoogLeNet's table: nine inception modules, ten columns each
    assert sum(1 for r in rows if r.startswith("googlenet.t1.") and r.split(".")[2][0] in "345") == 9 * 10
    assert {f"resnet.{d}.flops" for d in (18, 34, 50, 101, 152)} <= set(rows)
    assert sum(1 for r in rows if r.startswith("mobilenet.t1.")) == 22
    assert sum(1 for r in rows if r.startswith("efficientnet.b0.stage")) == 9
    assert sum(1 for r in rows if r.startswith(("mobilenet.alpha", "mobilenet.res"))) == 16


def test_recomputed_values_are_the_models(shipped):
    rows = _rows(shipped)
    assert rows["alexnet.params"].computed == 60_965_224
    assert rows["alexnet.neurons"].computed == 290_400 + 186_624 + 64_896 + 64_896 + 43_264 + 4096 + 4096 + 1000
    assert rows["googlenet.layers"].computed == 22 and rows["resnet.layers"].computed == 152
    assert rows["mobilenet.layers"].computed == 28
    assert rows["googlenet.t1.3a.params"].computed == 163_328  # weights only: 159.5 K of 1024
    assert rows["googlenet.t1.conv2.params"].computed == 64 * 64 + 9 * 64 * 192
    assert rows["resnet.50.flops"].computed == 3_857_973_248
    assert rows["dwsc.ratio.mults"].computed == pytest.approx(1 / 1024 + 1 / 9, rel=1e-12)
    assert rows["efficientnet.b0.stage6"].computed == "MBConv6, k5x5 | 14x14 | 112 | 3"
    assert rows["mobilenet.t1.row18"].computed == "Conv dw / s1 | 3x3x1024 dw | 7x7x1024"


def test_known_discrepancies_keep_the_computed_value_and_the_cause(shipped):
    rows = _rows(shipped)
    r = rows["googlenet.t1.conv1.params"]
    assert r.status == "known-discrepancy" and r.claim.cause == "erratum"
    assert r.computed == 7 * 7 * 3 * 64 and r.course_value == 2.7 and r.tolerance == pytest.approx(0.05)
    assert "released Caffe model" in r.claim.explanation
    # a truncation is a cause only where truncating does reproduce the printed value
    r = rows["resnet.50.flops"]
    assert r.claim.cause == "rounded-down" and [e.reproduced for e in r.evidence if e.reproduces] == [True]
    r = rows["resnet.34.flops"]
    assert r.claim.cause == "variant" and r.evidence[0].reproduced is True
    assert r.evidence[0].value == 3_663_761_408 - 3 * 6_422_528  # minus the three 1x1 projections


def test_markdown_report_is_up_to_date(shipped):
    with open(os.path.join(ROOT, "reports", "course-tables.md"), encoding="utf-8") as f:
        committed = f.read()
    assert committed == verify_report.render(shipped, "md"), \
        "reports/course-tables.md is out of date: run 'archlab verify --format md -o reports/course-tables.md'"


def test_markdown_and_json_shapes(shipped):
    md = verify_report.render(shipped, "md")
    assert md.startswith("# The course's tables, recomputed\n")
    assert "archlab verify --format md -o reports/course-tables.md" in md
    assert "| id | claim | course | computed | diff | tolerance | status | explanation |" in md
    assert "## Not recomputed: facts, not computations" in md and "7291 training" in md
    d = json.loads(verify_report.render(shipped, "json"))
    assert set(d["summary"]) == {"ok", "known-discrepancy", "FAIL"}
    for row in d["rows"]:
        assert {"id", "section", "claim", "course", "computed", "tolerance", "status", "explanation"} <= set(row)
    assert d["summary"]["ok"] == sum(1 for r in d["rows"] if r["status"] == "ok")


# --- tolerance and rounding -------------------------------------------------------------------


@pytest.mark.parametrize("printed, approx, tol", [
    ("4.2", False, 0.05), ("569", False, 0.5), ("11.3", False, 0.05), ("1.15", False, 0.005),
    ("140", True, 5.0), ("140", False, 0.5), ("2", True, 0.5), ("0.1", True, 0.05), ("0", True, 0.5),
])
def test_tolerance_is_half_a_unit_of_the_last_printed_digit(printed, approx, tol):
    assert tolerance_of(printed, approx) == pytest.approx(tol)


def test_rounding_reproductions():
    assert rounds_to(3.858, "3.8", "down", False) and not rounds_to(3.858, "3.8", "nearest", False)
    assert rounds_to(3.644, "3.6", "nearest", False) and rounds_to(73.06, "73", "nearest", False)
    assert rounds_to(138.4, "140", "nearest", True) and not rounds_to(138.4, "140", "down", True)
    assert not rounds_to(290.68, "290", "nearest", False) and rounds_to(290.68, "290", "down", False)


# --- the command --------------------------------------------------------------------------------


def _write(tmp_path, text, name="claims.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


GOOD = '''
[[group]]
section = "MobileNet"
where = "test"
model = "mobilenet"
unit = "M"
rows = [
  { id = "t.params", claim = "params", course = "4.2", value = "4.2", quantity = "params" },
  { id = "t.layers", claim = "layers", course = "28", value = "28", quantity = "weight_layers", unit = "" },
]
'''


def test_a_wrong_row_fails_with_exit_code_3(cli, tmp_path):
    wrong = GOOD.replace('course = "4.2", value = "4.2"', 'course = "4.4", value = "4.4"')
    path = _write(tmp_path, wrong)
    r = cli("verify", "--data", path)
    assert r.code == 3, r.err
    assert r.err.strip() == "archlab: error: 1 of 2 claims FAIL: t.params"
    lines = {line.split()[0]: line for line in r.out.splitlines() if line.startswith("t.")}
    assert lines["t.params"].rstrip().endswith("FAIL") and "4.232M" in lines["t.params"]
    assert lines["t.layers"].rstrip().endswith("ok")
    assert r.out.rstrip().endswith("1 ok, 0 known-discrepancy, 1 FAIL")
    d = cli("verify", "--data", path, "--format", "json")
    assert d.code == 3
    rows = {x["id"]: x for x in d.json()["rows"]}
    assert rows["t.params"]["status"] == "FAIL" and rows["t.params"]["computed"] == 4_231_976
    assert d.json()["summary"] == {"ok": 1, "known-discrepancy": 0, "FAIL": 1}


def test_the_report_is_written_even_when_a_row_fails(cli, tmp_path):
    path = _write(tmp_path, GOOD.replace('"28", value = "28"', '"27", value = "27"'))
    out = tmp_path / "report.md"
    r = cli("verify", "--data", path, "--format", "md", "-o", str(out))
    assert r.code == 3 and r.out == ""
    assert "| t.layers | layers | 27 | 28 | +3.7% | exact | FAIL |" in out.read_text()


DISCREPANCY = '''
[[discrepancy]]
id = "t.params"
cause = "rounded-down"
explanation = "A test record: the printed value would be the count rounded down to one decimal."
[[discrepancy.evidence]]
label = "params, rounded down"
quantity = "params"
model = "mobilenet"
reproduces = "down"
'''


def test_a_discrepancy_is_known_only_while_its_cause_reproduces(cli, tmp_path):
    # 4.23M printed as 4.1 is not a truncation: the recorded cause does not hold, so FAIL
    path = _write(tmp_path, GOOD.replace('"4.2", value = "4.2"', '"4.1", value = "4.1"') + DISCREPANCY)
    r = cli("verify", "--data", path, "--format", "json")
    row = {x["id"]: x for x in r.json()["rows"]}["t.params"]
    assert r.code == 3 and row["status"] == "FAIL" and "no longer reproduces" in row["note"]
    assert row["evidence"][0]["reproduced"] is False
    # the same record on a claim that now agrees (4.232M printed as 4.23): ok, and the record is stale
    path = _write(tmp_path, GOOD.replace('"4.2", value = "4.2"', '"4.23", value = "4.23"') + DISCREPANCY)
    r = cli("verify", "--data", path, "--format", "json")
    row = {x["id"]: x for x in r.json()["rows"]}["t.params"]
    assert r.code == 0 and row["status"] == "ok" and "stale" in row["note"]


def test_a_recorded_discrepancy_is_known(cli, tmp_path):
    text = GOOD.replace('"4.2", value = "4.2"', '"4.3", value = "4.3"') + DISCREPANCY.replace(
        'reproduces = "down"', "").replace("rounded-down", "erratum")
    r = cli("verify", "--data", _write(tmp_path, text))
    assert r.code == 0, r.out
    assert r.out.rstrip().endswith("1 ok, 1 known-discrepancy, 0 FAIL")


@pytest.mark.parametrize("mutate, needles", [
    (lambda t: t.replace(', quantity = "params" }', " }"), ["claims.toml", "row #1 ('t.params')", "'quantity'"]),
    (lambda t: t.replace('id = "t.layers", ', ""), ["claims.toml", "row #2 (no id)", "'id'"]),
    (lambda t: t.replace('"weight_layers"', '"depth"'), ["claims.toml", "'t.layers'", "unknown quantity 'depth'"]),
    (lambda t: t.replace('model = "mobilenet"', 'model = "mobilenot"'), ["claims.toml", "'t.params'",
                                                                        "unknown model 'mobilenot'"]),
    (lambda t: t.replace('value = "4.2"', "value = 4.2"), ["claims.toml", "'t.params'", "printed number as text"]),
    (lambda t: t.replace('value = "4.2"', 'value = "4.5"'), ["claims.toml", "'t.params'", "does not appear"]),
    (lambda t: t.replace('unit = "M"', 'unit = "Mi"'), ["claims.toml", "'t.params'", "unknown unit 'Mi'"]),
    (lambda t: t.replace("rows = [", "rows = [[["), ["claims.toml", "not valid TOML"]),
    (lambda t: t + DISCREPANCY.replace('"t.params"', '"t.nothing"'), ["claims.toml", "unknown claim id", "t.nothing"]),
    (lambda t: t + DISCREPANCY.replace('cause = "rounded-down"\n', ""), ["claims.toml", "'t.params'", "'cause'"]),
    (lambda t: t.replace('quantity = "params"', 'quantity = "params", module = "fc"'),
     ["claims.toml", "'t.params'", "takes no module"]),
])
def test_a_malformed_data_file_names_the_file_and_the_row(cli, tmp_path, mutate, needles):
    r = cli("verify", "--data", _write(tmp_path, mutate(GOOD)))
    assert_one_line_error(r, *needles)


def test_an_unknown_module_names_the_row(cli, tmp_path):
    text = GOOD.replace('quantity = "weight_layers", unit = ""',
                        'quantity = "output_size", module = "features.conv99"').replace('value = "28", ', "")
    assert_one_line_error(cli("verify", "--data", _write(tmp_path, text)), "'t.layers'", "no module 'features.conv99'")


def test_missing_data_file_and_empty_selection(cli, tmp_path):
    assert_one_line_error(cli("verify", "--data", str(tmp_path / "nope.toml")), "nope.toml", "does not exist")
    assert_one_line_error(cli("verify", "--only", "resnet9*"), "no claim id matches 'resnet9*'")


def test_only_selects_by_id_glob(cli):
    r = cli("verify", "--only", "mobilenet_v2*", "--format", "json")
    assert r.code == 0, r.err
    ids = [x["id"] for x in r.json()["rows"]]
    assert ids and all(i.startswith("mobilenet_v2") for i in ids)
    assert "mobilenet_v2.alpha1_4.params" in ids and r.json()["only"] == "mobilenet_v2*"
    r = cli("verify", "--only", "RESNET.50.FLOPS")
    assert r.code == 0 and "resnet.50.flops" in r.out and "known-discrepancy" in r.out
    assert r.out.rstrip().endswith("0 ok, 1 known-discrepancy, 0 FAIL")


def test_csv_format(cli):
    r = cli("verify", "--only", "vgg.rf.*", "--format", "csv")
    lines = r.out.splitlines()
    assert lines[0].startswith("id,section,where,claim,model,input,quantity,course")
    assert lines[1].startswith("vgg.rf.two_3x3,VGG,") and ",5x5,5x5," in lines[1] and ",ok," in lines[1]


# --- the library -------------------------------------------------------------------------------


def test_load_keeps_file_order_and_inherits_group_fields():
    data = load()
    assert data.path == "archlab/data/course_claims.toml"
    ids = [c.id for c in data.claims]
    assert ids[0] == "alexnet.layers" and ids.index("vgg.a.block1") < ids.index("googlenet.layers")
    c = next(c for c in data.claims if c.id == "googlenet.t1.4c.ops")
    assert c.model == "googlenet" and c.section == "GoogLeNet" and c.unit == "M"
    assert data.facts and all(f.why for f in data.facts)


def test_course_value_for_the_multiplier_tables():
    assert course_value("mobilenet", 0.75, 224) == {"Million Mult-Adds": "325", "Million Parameters": "2.6"}
    assert course_value("mobilenet", 1.0, 160) == {"Million Mult-Adds": "290", "Million Parameters": "4.2"}
    assert course_value("mobilenet", 0.6, 224) is None


@pytest.mark.parametrize("expr, needle", [
    ("9 ** 9 ** 9", "exponent 387420489 is out of range"),
    ("2 ** -100", "out of range"),
    ("1e300 ** 2", "overflows"),  # float power: OverflowError
    ("1e308 * 10", "not finite"),  # float product: inf, refused too
    ("((10 ** 64) ** 64) ** 64", "overflows"),  # exact integers: stopped before they grow huge
    ("1 / (2 - 2)", "divides by zero"),
    ("__import__('os')", "only numbers, names"),
    ("M +", "not an arithmetic expression"),
    ("K * 2", "unknown name 'K'"),
])
def test_formula_evaluator_refuses_what_is_not_bounded_arithmetic(expr, needle):
    from archlab.errors import UserError
    from archlab.verify import evaluate

    with pytest.raises(UserError, match=needle):
        evaluate(expr, {"M": 1})


def test_formula_evaluator_computes_the_course_formula():
    from archlab.verify import evaluate

    assert evaluate("2 ** -3", {}) == 0.125
    assert evaluate("DK * DK * M * N * DF * DF", {"DK": 3, "M": 512, "N": 1024, "DF": 14}) == 3 * 3 * 512 * 1024 * 196


def test_a_claims_file_that_is_not_text_or_too_large(cli, tmp_path, monkeypatch):
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert_one_line_error(cli("verify", "--data", str(binary)), "bin.toml", "not UTF-8 text")
    import archlab.models.course

    monkeypatch.setattr(archlab.models.course, "MAX_DATA_BYTES", 2**20)
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * 2**20 + "\n")
    assert_one_line_error(cli("verify", "--data", str(big)), "big.toml", "is larger than 1 MiB")


def test_a_deeply_nested_claims_file_is_a_user_error(cli, tmp_path):
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 50000 + "]" * 50000 + "\n")
    assert_one_line_error(cli("verify", "--data", str(deep)), "deep.toml", "nested too deeply")
    assert "exit 3 if any row FAILs" in " ".join(cli("verify", "--help").out.split())


# --- issue 15: one unit convention (k = 1000) and a table that fits 120 columns ----------------


def test_googlenet_params_are_shown_with_k_1000_and_the_course_as_printed(shipped, cli):
    row = _rows(shipped)["googlenet.t1.conv1.params"]
    assert row.computed == 9408 and row.claim.unit == "Ki"  # the claim keeps its reading (K = 1024)
    assert row.computed_display() == "9.408k"  # not "9.188K"
    assert row.course_display() == "2.7K (= 2.765k)"
    assert row.tolerance_display() == "±0.0512k"
    assert _rows(shipped)["googlenet.t1.conv2.params"].computed_display() == "114.688k"
    text = cli("verify", "--only", "googlenet.t1.*", "--wide").out
    assert "9.408k" in text and "9.188K" not in text and "112K (= 114.688k)" in text
    md = verify_report.render(shipped, "md")
    assert "| 2.7K (= 2.765k) | 9.408k |" in md and "2.65K (= 2.71k)" in md  # evidence: printed unit and k
    d = cli("verify", "--only", "googlenet.t1.conv1.params", "--format", "json").json()["rows"][0]
    assert d["unit"] == "Ki" and d["computed"] == 9408  # the data, unchanged


def test_the_default_table_fits_120_columns_and_wide_has_every_column(cli):
    out = cli("verify").out
    assert max(len(line) for line in out.splitlines()) <= 120
    head = out.splitlines()[1].split()
    assert head == ["id", "claim", "course", "computed", "diff", "status"]
    assert "known: known-discrepancy" in out and "--wide" in out
    wide = cli("verify", "--wide").out
    assert wide.splitlines()[1].split() == ["id", "section", "claim", "course", "computed", "diff", "tolerance",
                                            "status"]
    assert max(len(line) for line in wide.splitlines()) > 120
    assert "known-discrepancy" in wide.splitlines()[5] or "known-discrepancy" in wide
    # --wide changes only the table: other formats are the same with or without it
    assert cli("verify", "--only", "vgg.rf.*", "--wide", "-f", "csv").out == cli("verify", "--only", "vgg.rf.*",
                                                                                   "-f", "csv").out
    assert cli("verify", "--wide", "--only", "nothing*").code == 2


def test_luo_erf_claims_pass_with_the_exponent_printed(shipped):
    rows = _rows(shipped)
    luo = [r for r in shipped.rows if r.claim.id.startswith("luo.")]
    assert len(luo) == 8 and all(r.status == "ok" for r in luo)
    # independent reference: n equal 3x3 weights sum n independent steps of variance 2/3 per axis (CLT)
    sigma64 = rows["luo.uniform.sigma_growth"].evidence[1].value
    assert sigma64 == pytest.approx((2 * 64 / 3) ** 0.5, rel=0.01)
    assert 0.45 <= rows["luo.uniform.sigma_growth"].computed <= 0.55
    assert rows["luo.uniform.sigma_growth"].computed_display() == f"{rows['luo.uniform.sigma_growth'].computed:.3f}"
    assert rows["luo.dilation.larger"].tolerance_display() == "> 1"


def test_a_bound_row_fails_on_the_wrong_side_and_needs_a_value(cli, tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text('[[group]]\nsection = "s"\nwhere = "w"\nrows = [{ id = "a", claim = "c", course = "below 1", '
                   'value = "1", bound = "below", quantity = "formula", expr = "2" }]\n')
    r = cli("verify", "--data", str(bad))
    assert r.code == 3
    bad.write_text('[[group]]\nsection = "s"\nwhere = "w"\nrows = [{ id = "a", claim = "c", course = "x", '
                   'bound = "sideways", quantity = "formula", expr = "2" }]\n')
    assert_one_line_error(cli("verify", "--data", str(bad)), "'bound' must be one of above, below")
