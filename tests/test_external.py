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
    assert [row[:6] for row in outside] == [["(outside", "submodules)", "forward", "0", "16", "0.1%"]]
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


# --- the user's code apart from archlab's output (issue 15) ------------------------------------

NOISY = '''
import warnings
import torch
from torch import nn
print("printed at import")

class Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        print("printed in forward")
        warnings.warn("a warning of the forward\\nwith a second line")
        return self.conv(x)

def make():
    print("printed in the factory")
    torch.nn.init.kaiming_normal(torch.empty(3, 3))  # deprecated: PyTorch warns
    return Noisy()
make.input_size = (3, 8, 8)
'''


def test_what_the_users_code_prints_goes_to_stderr_and_json_stays_json(cli, tmp_path):
    path = tmp_path / "noisy.py"
    path.write_text(NOISY)
    for command in ("count", "trace", "rf", "memory"):
        r = cli(command, f"{path}:make", "--format", "json")
        assert r.code == 0, r.err
        d = r.json()  # stdout is archlab's JSON alone
        assert d["input_shape"][1:] == [3, 8, 8]
        assert "printed" not in r.out
        assert "printed in the factory" in r.err and "printed in forward" in r.err
    # PyTorch's and the user's warnings: one line each, not Python's two (message, then the source line)
    warning_lines = [line for line in r.err.splitlines() if "warning" in line.lower()]
    assert any(line.startswith("archlab: warning: FutureWarning: `nn.init.kaiming_normal` is now deprecated")
               and line.endswith("(noisy.py:19)") for line in warning_lines), r.err
    assert "archlab: warning: UserWarning: a warning of the forward (noisy.py:14)" in warning_lines
    assert "with a second line" not in r.err and "torch.nn.init.kaiming_normal(torch" not in r.err
    # after the command, print goes to stdout again and warnings are Python's again
    import sys
    import warnings
    assert sys.stdout is not sys.stderr and warnings.showwarning.__module__ == "warnings"


def test_print_at_import_goes_to_stderr(cli, tmp_path):
    path = tmp_path / "loud.py"
    path.write_text(NOISY)
    r = cli("count", f"{path}:make", "--format", "csv", "--depth", "0")
    assert r.code == 0 and r.out.startswith("name,type,"), r.out
    assert "printed at import" in r.err


@pytest.mark.parametrize("name", ["notes.txt", "model.PY", "mycnn"])
def test_a_model_file_is_python_source_whatever_its_name(cli, tmp_path, monkeypatch, name):
    (tmp_path / name).write_text("from torch import nn\ndef make():\n    return nn.Conv2d(3, 4, 3)\n"
                                 "make.input_size = (3, 8, 8)\n")
    monkeypatch.chdir(tmp_path)
    d = cli("count", f"{name}:make", "--format", "json").json()  # a bare name in the working directory
    assert d["params"] == 4 * 27 + 4
    d = cli("count", f"{tmp_path / name}:make", "--format", "json").json()  # a path
    assert d["params"] == 4 * 27 + 4


def test_a_model_file_that_is_not_python_is_one_line(cli, tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "notes.txt").write_text("these are notes, not code\n")
    assert_one_line_error(cli("count", f"{tmp_path / 'weights.bin'}:make"), "loading", "weights.bin", "failed")
    assert_one_line_error(cli("count", f"{tmp_path / 'notes.txt'}:make"), "loading", "notes.txt", "SyntaxError")
    assert_one_line_error(cli("count", f"{tmp_path / 'nothere.txt'}:make"), "no such file")


def test_a_factory_that_changes_directory_does_not_move_the_output(cli, tmp_path, monkeypatch):
    away = tmp_path / "away"
    away.mkdir()
    (tmp_path / "cd.py").write_text(f"import os\nfrom torch import nn\ndef make():\n    os.chdir({str(away)!r})\n"
                                    "    return nn.Conv2d(3, 4, 3)\nmake.input_size = (3, 8, 8)\n")
    monkeypatch.chdir(tmp_path)
    r = cli("count", "cd.py:make", "-o", "out.json", "--format", "json")
    assert r.code == 0, r.err
    assert (tmp_path / "out.json").exists() and not (away / "out.json").exists()
    assert '"params": 112' in (tmp_path / "out.json").read_text()
    monkeypatch.chdir(tmp_path)
    # without user code, a relative -o is the path as given (and errors name it as given)
    r = cli("count", "lenet", "-o", "missing/out.txt")
    assert_one_line_error(r, "cannot write 'missing/out.txt'")


def _notice_timers():
    import threading

    return [t for t in threading.enumerate() if isinstance(t, threading.Timer) and t.is_alive()]


# A factory (or a file's import) that returns only once the notice's timer has fired: it waits on the
# mechanism, not on a time that a loaded machine could stretch past the notice's delay.
WAITS_FOR_THE_NOTICE = """
import threading, time
from torch import nn

def _wait_for_the_notice():
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(isinstance(t, threading.Timer) and t.is_alive()
                                              for t in threading.enumerate()):
        time.sleep(0.01)
"""


def test_a_factory_that_takes_long_gets_one_notice(cli, tmp_path, monkeypatch):
    import archlab.user_code

    monkeypatch.setattr(archlab.user_code, "WAIT_NOTICE_S", 0.2)
    (tmp_path / "slow.py").write_text(WAITS_FOR_THE_NOTICE + "def make():\n    _wait_for_the_notice()\n"
                                      "    return nn.Conv2d(3, 4, 3)\nmake.input_size = (3, 8, 8)\n"
                                      "def quick():\n    return nn.Conv2d(3, 4, 3)\nquick.input_size = (3, 8, 8)\n")
    r = cli("count", f"{tmp_path / 'slow.py'}:make", "--format", "json")
    assert r.code == 0 and r.json()["params"] == 112
    notices = [line for line in r.err.splitlines() if "still waiting" in line]
    assert len(notices) == 1, r.err
    assert notices[0].startswith("archlab: still waiting for '") and "slow.py:make' to build" in notices[0]
    # a quick factory: its timer is cancelled when it returns (a delay no factory reaches here, so
    # that the check does not depend on how loaded the machine is), and no notice comes later
    monkeypatch.setattr(archlab.user_code, "WAIT_NOTICE_S", 600)
    r = cli("count", f"{tmp_path / 'slow.py'}:quick", "--format", "json")
    assert r.code == 0 and "still waiting" not in r.err
    for timer in _notice_timers():
        timer.join(10)  # a cancelled timer's thread ends at once
    assert _notice_timers() == [], "the notice's timer outlived the user's code"
    # a file whose import takes long: the notice says it is loading
    monkeypatch.setattr(archlab.user_code, "WAIT_NOTICE_S", 0.2)
    (tmp_path / "slow_import.py").write_text(WAITS_FOR_THE_NOTICE + "_wait_for_the_notice()\n"
                                             "def make():\n    return nn.Conv2d(3, 4, 3)\nmake.input_size = (3, 8, 8)\n")
    r = cli("count", f"{tmp_path / 'slow_import.py'}:make", "--format", "json")
    assert r.code == 0 and r.json()["params"] == 112
    notices = [line for line in r.err.splitlines() if "still waiting" in line]
    assert len(notices) == 1 and "slow_import.py' to load (the user's code has run 0.2 s" in notices[0], r.err


def test_a_file_named_without_its_factory_lists_the_candidates(cli, tmp_path, monkeypatch):
    (tmp_path / "mycnn.py").write_text(
        "import sys\nfrom torch import nn\nsys.exit('this file must not run')\n"
        "class Net(nn.Module):\n    pass\nclass Helper:\n    pass\n"
        "def make(width=8):\n    return Net()\ndef _private():\n    pass\n")
    monkeypatch.chdir(tmp_path)
    for spec in ("mycnn.py", "mycnn.py@res=64", str(tmp_path / "mycnn.py")):
        r = cli("count", spec)
        assert_one_line_error(r, "is a file: name the callable that builds the model", "mycnn.py:make'",
                              "its top-level functions and nn.Module classes: Net, make")
        assert "Helper" not in r.err and "_private" not in r.err and "must not run" not in r.err
    assert_one_line_error(cli("count", "other.py"), "no such file: 'other.py'", "file.py:factory")
    (tmp_path / "broken.py").write_text("def (:\n")
    assert_one_line_error(cli("count", "broken.py"), "'broken.py' is a file: name its factory", "SyntaxError")
    (tmp_path / "empty.py").write_text("x = 1\n")
    assert_one_line_error(cli("count", "empty.py"), "defines no top-level function or nn.Module class")


def test_a_very_long_model_name_is_shortened_in_the_error(cli):
    name = "x" * 10_000
    for spec in (name, f"{name}@alpha=1", f"mobilenet@{name}=1", f"{name}.py:make", f"{name}.py", f"{name}:make"):
        r = cli("count", spec)
        assert r.code == 2 and len(r.err) < 400, (spec[:20], len(r.err))
        assert "x" * 60 + "…" in r.err


def test_the_real_runs_keep_the_users_prints_off_stdout_too(cli, tmp_path):
    # latency's timed forwards, its per-layer profile, memory --measure and the fvcore engine run the
    # user's forward for real: what it prints goes to stderr there as well
    path = tmp_path / "noisy.py"
    path.write_text(NOISY)
    spec = f"{path}:make"
    for args in (("latency", spec, "--min-time", "0.05"), ("latency", spec, "--min-time", "0.05", "--per-layer"),
                 ("memory", spec, "--measure"), ("count", spec, "--engine", "fvcore")):
        r = cli(*args, "--format", "json")
        assert r.code == 0, (args, r.err)
        r.json()
        assert "printed in forward" in r.err and "printed" not in r.out
