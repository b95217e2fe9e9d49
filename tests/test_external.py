"""models/external.py: a user's file, package module or callable as a model."""

import csv
import io

import pytest

from conftest import assert_one_line_error


def test_a_users_file_with_two_inputs_and_a_dict_output(cli, user_file):
    d = cli("count", f"{user_file}:make@width=4", "--input-size", "3,16,16;10", "--format", "json").json()
    assert d["input_shapes"] == [[1, 3, 16, 16], [1, 10]]
    conv, fc, gram = 16 * 16 * 4 * 27, 10 * 4, 4 * 4 * 1
    assert d["macs"] == conv + fc + gram
    assert d["other_ops"]["upsampling"] == 4 * 32 * 32 and d["other_ops"]["activation"] == 4 * 16 * 16
    assert len(d["output_shapes"]) == 2
    d = cli("count", f"{user_file}:small", "--format", "json").json()
    assert d["input_shape"] == [1, 3, 16, 16], "the factory's input_size attribute is the default"


def test_the_rows_add_up_to_the_totals_with_what_forward_computes_itself(cli, user_file):
    # the 16-MAC gram matmul is in TwoInputs.forward, outside conv and fc: a row of its own
    r = cli("count", f"{user_file}:make@width=4", "--input-size", "3,16,16;10", "--depth", "1")
    assert r.code == 0, r.err
    assert r.out.splitlines()[0].endswith("inputs 1x3x16x16, 1x10  (archlab engine: meta trace, nothing run)")
    outside = [line.split() for line in r.out.splitlines() if line.startswith("(outside submodules)")]
    assert outside == [["(outside", "submodules)", "forward", "0", "16", "0.1%"]]
    out = cli("count", f"{user_file}:make@width=4", "--input-size", "3,16,16;10", "--depth", "1",
              "--format", "csv").out
    total, *layers = list(csv.reader(io.StringIO(out)))[1:]
    assert layers[-1][:2] == ["(outside submodules)", "forward"]
    assert sum(int(c[4]) for c in layers) == int(total[4]) and sum(int(c[5]) for c in layers) == int(total[5])
    # a zoo model's children account for everything: no such row
    assert "(outside submodules)" not in cli("count", "resnet18", "--depth", "1").out
    trace = cli("trace", f"{user_file}:make@width=4", "--input-size", "3,16,16;10", "--depth", "1")
    assert [line.split()[-2:] for line in trace.out.splitlines() if line.startswith("(outside")] == [["0", "16"]]
    d = cli("trace", f"{user_file}:make@width=4", "--input-size", "3,16,16;10", "--format", "json").json()
    assert d["macs"] == sum(r["macs"] for r in d["layers"] if r["depth"] == 1) + 16
    assert "(outside submodules)" not in cli("trace", "resnet18", "--depth", "1").out
    out = cli("trace", f"{user_file}:make@width=4", "--input-size", "3,16,16;10", "--depth", "1", "--format", "csv").out
    total, *layers = list(csv.DictReader(io.StringIO(out)))
    assert total["type"] == "(total)" and total["status"] == "complete" and layers[-1]["name"] == "(outside submodules)"
    assert sum(int(r["macs"]) for r in layers) == int(total["macs"]), "the trace CSV adds up too"


def test_a_factorys_required_parameters_are_options(cli, user_file):
    d = cli("count", f"{user_file}:needs@width=8,k=3", "--input-size", "3,8,8", "--format", "json").json()
    assert d["params"] == 8 * 27 + 8 and d["macs"] == 6 * 6 * 8 * 27
    assert_one_line_error(cli("count", f"{user_file}:needs@width=8", "--input-size", "3,8,8"),
                          "needs option 'k': give", ":needs@k=...")


def test_a_forward_that_reads_values_says_why_it_cannot_be_counted(cli, user_file):
    assert_one_line_error(cli("count", f"{user_file}:reads_values", "--input-size", "3,8,8"),
                          "item() cannot be called on meta tensors", "hold shapes but no values")


def test_a_module_instance_in_a_file_is_the_model(cli, user_file):
    d = cli("count", f"{user_file}:instance", "--input-size", "3,8,8", "--format", "json").json()
    assert d["params"] == 4 * 27 + 4 and d["macs"] == 6 * 6 * 4 * 27
    assert_one_line_error(cli("count", f"{user_file}:instance@k=3", "--input-size", "3,8,8"), "has no option 'k'")


def test_sys_exit_in_a_users_code_is_reported_not_obeyed(cli, user_file, tmp_path):
    assert_one_line_error(cli("count", f"{user_file}:quits", "--input-size", "3,8,8"),
                          "building", "SystemExit: the code called sys.exit(3)")
    assert_one_line_error(cli("count", f"{user_file}:quits_in_forward", "--input-size", "3,8,8"),
                          "the forward pass called sys.exit(0)")
    at_import = tmp_path / "exits.py"
    at_import.write_text("import sys\nsys.exit(5)\n")
    assert_one_line_error(cli("count", f"{at_import}:make", "--input-size", "3,8,8"), "loading", "sys.exit(5)")


def test_the_forwards_own_error_is_the_message(cli, user_file):
    # a model without a default input used to get "has no default input size" instead
    assert_one_line_error(cli("count", f"{user_file}:explodes", "--input-size", "3,8,8"), "forward exploded")


@pytest.mark.parametrize("suffix, args, needle", [
    (":make", (), "no default input size"),
    (":missing", ("--input-size", "3,8,8"), "has no 'missing'"),
    (":not_a_model", ("--input-size", "3,8,8"), "not an nn.Module"),
    ("x:make", ("--input-size", "3,8,8"), "no such file"),
    (":make@depth=3", ("--input-size", "3,8,8"), "no option 'depth'"),
])
def test_users_file_errors(cli, user_file, suffix, args, needle):
    assert_one_line_error(cli("count", user_file + suffix, *args), needle)


def test_package_module_callable_and_missing_packages(cli):
    d = cli("count", "torch.nn:Identity", "--input-size", "3,4,4", "--format", "json").json()
    assert d["macs"] == 0 and d["params"] == 0
    assert_one_line_error(cli("count", "no_such_package_xyz:f", "--input-size", "3,4,4"), "cannot import")
    try:
        import torchvision  # noqa: F401
    except Exception:
        assert_one_line_error(cli("count", "torchvision:resnet18"), "torchvision")
    try:
        import timm  # noqa: F401
    except ImportError:
        assert_one_line_error(cli("count", "timm:resnet18"), "pip install timm")
