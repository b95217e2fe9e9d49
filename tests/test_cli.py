"""One test per command and its error paths: exit code 2 and one clear line, never a traceback."""

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st

import archlab.measure.latency as latency_mod
from conftest import assert_one_line_error


def test_count_table_names_its_units(cli):
    r = cli("count", "resnet18", "--depth", "1")
    assert r.code == 0, r.err
    assert "resnet18  input 1x3x224x224" in r.out
    assert "1,814,073,344" in r.out and "multiply-accumulates" in r.out
    assert "FLOPs = 2 x MACs" in r.out
    assert "layer4" in r.out and "share of MACs" in r.out


def test_count_json_is_the_stable_interface(cli):
    r = cli("count", "mobilenet@alpha=0.5,res=160", "--format", "json")
    assert r.code == 0, r.err
    d = r.json()
    for key in ("model", "input_shape", "params", "trainable_params", "macs", "flops", "other_ops",
                "unsupported_ops", "layers", "engine"):
        assert key in d
    assert d["model"] == "mobilenet@alpha=0.5,res=160"
    assert d["input_shape"] == [1, 3, 160, 160]
    assert d["flops"] == 2 * d["macs"]
    assert d["engine"] == "archlab" and d["unsupported_ops"] == []
    layer = d["layers"][0]
    assert set(layer) >= {"name", "type", "output_shape", "params", "macs"}
    assert sum(l["macs"] for l in d["layers"] if l["depth"] == 1) == d["macs"]


def test_count_options_res_batch_alpha_set(cli):
    base = cli("count", "mobilenet", "--format", "json", "--depth", "0").json()
    r = cli("count", "mobilenet", "--alpha", "0.5", "--res", "112", "--batch", "2", "--format", "json")
    d = r.json()
    assert d["input_shape"] == [2, 3, 112, 112]
    assert d["macs"] < base["macs"] / 4
    r = cli("count", "hourglass", "--set", "stacks=2", "--format", "json", "--depth", "1")
    assert len(r.json()["output_shapes"]) == 2
    r = cli("count", "unet", "--input-size", "1,188,188", "--format", "json", "--depth", "0")
    assert r.json()["output_shapes"] == [[1, 2, 4, 4]]


def test_count_csv_and_markdown(cli):
    r = cli("count", "lenet", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(r.out)))
    assert rows[0]["type"] == "(total)" and int(rows[0]["macs"]) == 63_660
    assert {"name", "type", "depth", "output_shape", "params", "macs", "flops", "traffic_bytes", "status"} == set(rows[0])
    assert rows[0]["status"] == "complete" and int(rows[0]["flops"]) == 2 * 63_660
    assert all(int(row["flops"]) == 2 * int(row["macs"]) for row in rows)
    r = cli("count", "lenet", "--format", "md")
    assert r.out.startswith("### lenet") and "| MACs | 63,660 |" in r.out


def test_output_file_is_written_atomically(cli, tmp_path):
    target = tmp_path / "r.json"
    target.write_text("old")
    r = cli("count", "lenet", "--format", "json", "-o", str(target))
    assert r.code == 0 and r.out == ""
    assert json.loads(target.read_text())["params"] == 9_760
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"], "no temporary file left behind"
    r = cli("count", "lenet", "-o", str(tmp_path / "t.txt"))
    assert "63,660" in (tmp_path / "t.txt").read_text()


def test_output_follows_links_keeps_modes_and_writes_through_pipes(cli, tmp_path):
    import stat
    import threading

    real = tmp_path / "real.txt"
    real.write_text("old")
    real.chmod(0o664)
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    assert cli("count", "lenet", "-o", str(link)).code == 0
    assert link.is_symlink() and "63,660" in real.read_text(), "the link stays, its target is replaced"
    assert stat.S_IMODE(real.stat().st_mode) == 0o664, "the old file's permissions are kept"

    umask = os.umask(0o022)
    try:
        assert cli("count", "lenet", "-o", str(tmp_path / "new.txt")).code == 0
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644, "a new file gets what the umask gives"

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    r = cli("count", "lenet", "--format", "json", "-o", str(fifo))
    reader.join(timeout=30)
    assert r.code == 0 and json.loads(received[0])["macs"] == 63_660
    assert stat.S_ISFIFO(fifo.stat().st_mode), "a pipe is written through, not replaced by a file"
    assert_one_line_error(cli("count", "lenet", "-o", str(tmp_path)), "is a directory")


def test_list_json_and_pattern(cli):
    r = cli("list", "resnet5*", "--format", "json")
    rows = r.json()
    assert [x["name"] for x in rows] == ["resnet50", "resnet50_v1_5"]
    assert rows[0]["family"] == "resnet" and rows[0]["input_shape"] == [3, 224, 224]
    assert rows[0]["params"] == 25_557_032 and rows[0]["macs"] == 3_857_973_248
    r = cli("list", "lenet*")
    assert "lenet5" in r.out and "LeCun" in r.out


@pytest.mark.parametrize("args, needles", [
    (("count", "resnet5"), ("unknown model 'resnet5'", "did you mean resnet50")),
    (("count", "vgg17"), ("unknown model", "vgg16")),
    (("count", "mobilenet", "--alpha", "0"), ("alpha must be greater than 0",)),
    (("count", "mobilenet", "--alpha", "-0.5"), ("alpha",)),
    (("count", "resnet50", "--alpha", "0.5"), ("has no width multiplier",)),
    (("count", "resnet50", "--res", "0"), ("resolution must be at least 1",)),
    (("count", "resnet18", "--res", "1000000000"), ("too large",)),
    (("count", "alexnet", "--res", "8"), ("vanishes at layer 'features.conv1'",)),
    (("count", "vgg16", "--res", "112"), ("classifier.fc6", "default input is 3x224x224")),
    (("count", "resnet50", "--input-size", "3,224"), ("--input-size must be C,H,W",)),
    (("count", "resnet50", "--input-size", "3,x,2"), ("--input-size",)),
    (("count", "resnet50", "--res", "64", "--input-size", "3,64,64"), ("either a resolution (--res, res=) or an input size (--input-size, input=), not both",)),
    (("count", "resnet50", "--set", "stacks"), ("--set expects key=value",)),
    (("count", "resnet50", "--set", "stacks=2"), ("has no option 'stacks'", "num_classes")),
    (("count", "hourglass", "--set", "stacks=two"), ("must be an integer",)),
    (("count", "googlenet@aux_logits=maybe"), ("true or false",)),
    (("count", "resnet50@"), ("no key=value",)),
    (("count", "resnet50", "--batch", "0"), ("batch",)),
    (("count", "resnet50", "--depth", "-1"), ("depth",)),
    (("count", "resnet50", "--format", "xml"), ("--format",)),
    (("count", "resnet50", "--engine", "ptflops"), ("--engine",)),
    (("count", "resnet50", "--device", "tpu"), ("unknown device 'tpu'",)),
    (("count", "resnet50", "-o", "/nonexistent-dir/x.txt"), ("does not exist",)),
    (("count",), ("Missing argument",)),
    (("count", "resnet50", "--bogus"), ("No such option",)),
    (("list", "zzz*"), ("no model matches 'zzz*'",)),
    # click's usage errors, on one line without typer's "(env var: 'None')"
    (("count", "resnet50", "--res", "3.5"), ("Invalid value for '--res': '3.5' is not a valid integer.",)),
    # memory --training's --budget is as close to --depth as --set: click names both
    (("memory", "resnet18", "--depth", "0"), ("No such option: --depth (Possible options: --budget, --set)",)),
    # sizes beyond int64 (torch raises TypeError/OverflowError for them)
    (("count", "resnet50", "--res", "99999999999999999999"), ("is too large to describe",)),
    (("count", "resnet50", "--batch", "99999999999999999999"), ("is too large to describe",)),
    (("memory", "resnet50", "--input-size", "3,99999999999999999999,224"), ("is too large to describe",)),
    (("count", "vgg16", "--set", "num_classes=99999999999999999999"), ("building vgg16@num_classes=", "failed")),
    (("latency", "lenet5", "--threads", "99999999999999999999"), ("--threads", "is more than")),
    (("latency", "lenet5", "--threads", "20000"), ("--threads 20000 is more than",)),
    # the channels the first layer expects, as PyTorch checks them (the meta shape rules too)
    (("count", "resnet50", "--input-size", "1,224,224"), ("expected input[1, 1, 224, 224] to have 3 channels",)),
    (("trace", "resnet18", "--input-size", "5,64,64"), ("to have 3 channels, but got 5",)),
    (("count", "lenet5", "--input-size", "3,32,32"), ("to have 1 channels, but got 3",)),
    (("count", "torch.nn:BatchNorm2d@num_features=4", "--input-size", "3,8,8"),
     ("running_mean should contain 3 elements not 4",)),
    (("count", "torch.nn:Linear", "--input-size", "1,1,3"),
     ("needs options 'in_features', 'out_features': give torch.nn:Linear@in_features=...,out_features=...",)),
])
def test_bad_input_gives_one_line_and_exit_2(cli, args, needles):
    assert_one_line_error(cli(*args), *needles)


def test_cuda_absent_is_a_clear_error(cli):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert_one_line_error(cli("count", "resnet18", "--device", "cuda"), "no CUDA GPU")


def test_internal_error_exits_1_and_asks_for_a_report(cli, monkeypatch):
    import archlab.analysis.count

    def boom(*a, **k):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(archlab.analysis.count, "count_trace", boom)
    r = cli("count", "lenet")
    assert r.code == 1
    assert "internal error" in r.err and "bug" in r.err and "Traceback" not in r.err
    with pytest.raises(ZeroDivisionError):
        cli("--debug", "count", "lenet")


def test_console_script_and_module_entry_points():
    for cmd in (["archlab"], [sys.executable, "-m", "archlab"]):
        p = subprocess.run(cmd + ["count", "lenet", "--format", "json"], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["macs"] == 63_660
        p = subprocess.run(cmd + ["count", "nosuchnet"], capture_output=True, text=True)
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_same_command_gives_byte_identical_json(cli):
    a = cli("count", "densenet121", "--format", "json").out
    b = cli("count", "densenet121", "--format", "json").out
    assert a == b


def test_zoo_report_is_up_to_date(cli):
    """reports/zoo.md is `archlab list --format md`; regenerate it with that command when this fails."""
    path = os.path.join(os.path.dirname(__file__), "..", "reports", "zoo.md")
    r = cli("list", "--format", "md")
    with open(path, encoding="utf-8") as f:
        committed = f.read()
    assert committed == r.out, "reports/zoo.md is out of date: run `archlab list --format md -o reports/zoo.md`"


# --- trace and rf ---------------------------------------------------------------------------

# The course's Table 1 (MobileNet body): type / stride, filter shape, input size.
MOBILENET_TABLE_1 = [
    ("Conv", 2, "3x3x3x32", "224x224x3"),
    ("Conv dw", 1, "3x3x32 dw", "112x112x32"),
    ("Conv", 1, "1x1x32x64", "112x112x32"),
    ("Conv dw", 2, "3x3x64 dw", "112x112x64"),
    ("Conv", 1, "1x1x64x128", "56x56x64"),
    ("Conv dw", 1, "3x3x128 dw", "56x56x128"),
    ("Conv", 1, "1x1x128x128", "56x56x128"),
    ("Conv dw", 2, "3x3x128 dw", "56x56x128"),
    ("Conv", 1, "1x1x128x256", "28x28x128"),
    ("Conv dw", 1, "3x3x256 dw", "28x28x256"),
    ("Conv", 1, "1x1x256x256", "28x28x256"),
    ("Conv dw", 2, "3x3x256 dw", "28x28x256"),
    ("Conv", 1, "1x1x256x512", "14x14x256"),
    *[("Conv dw", 1, "3x3x512 dw", "14x14x512"), ("Conv", 1, "1x1x512x512", "14x14x512")] * 5,
    ("Conv dw", 2, "3x3x512 dw", "14x14x512"),
    ("Conv", 1, "1x1x512x1024", "7x7x512"),
    # The table prints "Conv dw / s2" here, but its input and output are both 7x7: the paper's
    # erratum; the model (like the official TF-slim code) uses stride 1.
    ("Conv dw", 1, "3x3x1024 dw", "7x7x1024"),
    ("Conv", 1, "1x1x1024x1024", "7x7x1024"),
    ("FC", 1, "1024x1000", "1x1x1024"),
]


def test_trace_lines_up_with_mobilenet_table_1(cli):
    d = cli("trace", "mobilenet", "--depth", "4", "--format", "json").json()
    rows = [r for r in d["layers"] if r["type"] in ("Conv2d", "Linear")]
    got = []
    for r in rows:
        n, c, h, w = r["input_shapes"][0] if len(r["input_shapes"][0]) == 4 else (1, r["input_shapes"][0][1], 1, 1)
        kind = "FC" if r["type"] == "Linear" else ("Conv dw" if r["filter"].endswith("dw") else "Conv")
        got.append((kind, r["stride"][0] if r["stride"] else 1, r["filter"], f"{h}x{w}x{c}"))
    assert got == MOBILENET_TABLE_1
    first = rows[0]
    assert first["output_elements"] == 32 * 112 * 112 and first["output_bytes"] == 4 * 32 * 112 * 112
    assert first["kernel"] == [3, 3] and first["padding"] == [1, 1] and first["groups"] == 1


def test_trace_formats(cli):
    r = cli("trace", "lenet5", "--depth", "1")
    assert r.code == 0 and "out bytes" in r.out
    c1 = next(line for line in r.out.splitlines() if line.startswith("c1 "))
    assert c1.split()[1:5] == ["Conv2d", "1x1x32x32", "1x6x28x28", "5x5x1x6"] and "117,600" in c1
    # its csv and md output: tests/golden/trace-lenet5.* (tests/test_report_golden.py)


def test_rf_command(cli):
    r = cli("rf", "vgg16", "--depth", "3")
    assert r.code == 0
    assert "receptive field: 212 input pixels at 'features.block5.pool'" in r.out
    d = cli("rf", "resnet50", "--format", "json").json()
    assert d["rf"] == 483 and d["rf_layer"]["exceeds_input"] is True
    assert {"model", "input_shape", "layers", "rf"} <= set(d)
    r = cli("rf", "efficientnet_b0")
    assert "exceeds the 224x224 input" in r.out and "squeeze-and-excitation" in r.out
    # csv and md output: tests/golden/rf-*.* (tests/test_report_golden.py)


@pytest.mark.parametrize("args, needles", [
    (("trace", "nosuchnet"), ("unknown model",)),
    (("rf", "resnet50", "--res", "0"), ("resolution",)),
    (("rf", "vgg16", "--depth", "-2"), ("depth",)),
    (("trace", "mobilenet", "--alpha", "-1"), ("alpha",)),
])
def test_trace_and_rf_bad_input(cli, args, needles):
    assert_one_line_error(cli(*args), *needles)


# --- memory ---------------------------------------------------------------------------------


def test_memory_command_single_and_side_by_side(cli):
    r = cli("memory", "resnet18", "--res", "64")
    assert r.code == 0 and "M(G)" in r.out and "training activations" in r.out
    d = cli("memory", "mobilenet_v2", "--act-dtype", "fp16", "--format", "json").json()
    assert d["act_dtype"] == "fp16" and d["mg_fused_bytes"] < d["mg_bytes"]
    rows = cli("memory", "mobilenet", "mobilenet_v2", "resnet50", "--act-dtype", "fp16", "--format", "json").json()
    assert [x["model"] for x in rows] == ["mobilenet", "mobilenet_v2", "resnet50"]
    # several models' md and csv output: tests/golden/memory-mobilenet-mobilenet_v2.* (tests/test_report_golden.py)
    d = cli("memory", "lenet5", "--measure", "--format", "json").json()
    assert d["measured_peak_bytes"] > 0 and "measured_diff_percent" in d
    d = cli("memory", "mobilenet_v2", "--no-fuse", "--format", "json").json()
    assert "mg_fused_bytes" not in d
    d = cli("memory", "resnet18", "--fuse", "BasicBlock", "--format", "json").json()
    assert d["fused_types"] == ["BasicBlock"]


@pytest.mark.parametrize("args, needles", [
    (("memory", "resnet51"), ("unknown model", "resnet50")),
    (("memory", "resnet18", "--dtype", "fp8"), ("--dtype",)),
    (("memory", "resnet18", "--act-dtype", "int4"), ("--act-dtype",)),
    (("memory", "resnet18", "--fuse", "InvertedResidual"), ("no module of that type",)),
    (("memory", "resnet18", "--workspace", "winograd"), ("--workspace",)),
    (("memory", "resnet18", "--fuse", "BasicBlock", "--no-fuse"), ("not both",)),
    (("memory", "resnet18", "--measure", "--device", "cuda:9"), ("--device cuda:9",)),  # no GPU, or not 10
    (("memory", "resnet18", "--device", "tpu"), ("unknown device 'tpu'",)),  # checked without --measure too
])
def test_memory_bad_input(cli, args, needles):
    assert_one_line_error(cli(*args), *needles)


def test_a_specs_batch_is_kept_and_a_flag_that_disagrees_is_refused(cli):
    one = cli("count", "lenet5", "--format", "json").json()["macs"]
    assert cli("count", "lenet5@batch=3", "--format", "json").json()["macs"] == 3 * one
    assert cli("count", "lenet5@batch=3", "--batch", "3", "--format", "json").json()["macs"] == 3 * one
    assert_one_line_error(cli("count", "lenet5@batch=3", "--batch", "2"),
                          "batch is given twice with different values: batch=3 in 'lenet5@batch=3' and --batch 2")
    d = cli("memory", "lenet5@batch=3", "--format", "json").json()
    assert d["input_shape"][0] == 3
    assert cli("trace", "lenet5@batch=3", "--format", "json").json()["input_shape"][0] == 3


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["compare", "--help"], ["memory", "--help"]])
def test_version_and_help_without_importing_torch(args):
    import subprocess
    import sys

    import archlab

    code = (f"import sys; from archlab.cli import main; rc = main({args!r}); "
            "assert 'torch' not in sys.modules, 'imported torch'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    if args == ["--version"]:
        assert r.stdout == f"archlab {archlab.__version__}\n"


def test_set_res_batch_input_set_the_input_as_in_a_spec(cli):
    def shape(*args):
        return cli("count", *args, "--depth", "0", "--format", "json").json()["input_shape"]

    assert shape("resnet18", "--set", "res=64") == [1, 3, 64, 64] == shape("resnet18@res=64")
    assert shape("resnet18", "--set", "batch=2", "--set", "input=3x32x48") == [2, 3, 32, 48]
    assert shape("resnet18@res=64", "--set", "res=64", "--res", "64") == [1, 3, 64, 64], "the same value thrice"
    assert_one_line_error(cli("count", "resnet18@res=96", "--set", "res=64"),
                          "res is given twice with different values: res=96 in 'resnet18@res=96' and --set res=64")
    assert_one_line_error(cli("count", "resnet18", "--set", "res=64", "--res", "32"),
                          "res is given twice with different values: --set res=64 and --res 32")
    assert_one_line_error(cli("count", "resnet18", "--set", "res=0"), "res")
    assert_one_line_error(cli("count", "mobilenet@alpha=1,alpha=2"), "gives 'alpha' twice")
    assert_one_line_error(cli("count", "lenet5@input=1x32x32,res=64"), "not both")


def test_names_are_found_whatever_their_case(cli):
    assert_one_line_error(cli("count", "RESNET50"), "unknown model 'RESNET50'; did you mean resnet50")
    names = [x["name"] for x in cli("list", "ResNet5*", "--format", "json").json()]
    assert names == ["resnet50", "resnet50_v1_5"]
    word = [x["name"] for x in cli("list", "mobilenet_v", "--format", "json").json()]
    assert word == ["mobilenet_v2"], "a plain word lists the names that contain it"


def test_output_paths_that_cannot_be_a_file_are_refused(cli, tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "x")
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    assert_one_line_error(cli("count", "lenet5", "-o", ""), "-o needs a file name")
    assert_one_line_error(cli("count", "lenet5", "-o", str(tmp_path / "newdir") + "/"), "cannot end with '/'")
    assert_one_line_error(cli("count", "lenet5", "-o", str(tmp_path / "file") + "/"), "cannot end with '/'")
    assert_one_line_error(cli("count", "lenet5", "-o", str(tmp_path / "dangling")),
                          f"directory '{tmp_path / 'nowhere'}' does not exist")
    assert_one_line_error(cli("count", "lenet5", "-o", str(tmp_path / "loop1")), "symbolic links")
    assert (tmp_path / "file").read_text() == "x" and (tmp_path / "loop1").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "file", "loop1", "loop2"]


def test_standard_output_that_cannot_be_written_is_a_user_error(cli, monkeypatch):
    import errno
    import subprocess
    import sys

    class Full:
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", Full())
    from archlab.cli import main

    code = main(["count", "lenet5"])
    monkeypatch.undo()
    assert code == 2
    for redirect, where in ((">&-", "standard output is closed"), ("2>&-", None)):
        r = subprocess.run(["bash", "-c", f"{sys.executable} -m archlab count nope {redirect}"],
                           capture_output=True, text=True)
        assert r.returncode == 2
        if where:
            r = subprocess.run(["bash", "-c", f"{sys.executable} -m archlab count lenet5 {redirect}"],
                               capture_output=True, text=True)
            assert r.returncode == 2 and where in r.stderr and "Traceback" not in r.stderr
        else:
            assert r.stdout == "", "with stderr closed the error line must not land among the results"


NAMES = ["lenet", "lenet5", "mobilenet", "mobilenet_v2", "resnet18", "googlenet", "unet", "hourglass",
         "efficientnet_b0", "vgg11", "alexnet", "fcn8s", "densenet121", "nosuchnet", "resnet", "", "@", "mobilenet@",
         "lenet@res=0", "hourglass@stacks=1", "mobilenet@alpha=2", "../x.py:f", "torchvision:resnet18"]


COMMANDS = ["count", "trace", "rf", "memory"]


FORMATS = ["table", "json", "csv", "md", "xml"]


@st.composite
def command_lines(draw):
    cmd = draw(st.sampled_from(COMMANDS))
    args = [cmd, draw(st.sampled_from(NAMES))]
    if draw(st.booleans()):
        args += ["--res", str(draw(st.integers(-2, 300)))]
    elif draw(st.booleans()):
        args += ["--input-size", draw(st.sampled_from(["3,32,32", "1,16,16", "3,x,4", "0,3,3", "3,64", "2,7,7"]))]
    if draw(st.booleans()):
        args += ["--alpha", str(draw(st.sampled_from([-1, 0, 0.1, 0.25, 1.0, 1.4, 5, "nan", "abc"])))]
    if cmd != "rf" and draw(st.booleans()):
        args += ["--batch", str(draw(st.integers(-1, 3)))]
    if draw(st.booleans()):
        args += ["--set", draw(st.sampled_from(["stacks=2", "num_classes=5", "num_classes=0", "bogus", "x=1",
                                                 "aux_logits=true", "adaptive_pool=yes"]))]
    if cmd in ("count", "trace", "rf") and draw(st.booleans()):
        args += ["--depth", str(draw(st.integers(-1, 4)))]
    fmt = draw(st.sampled_from(FORMATS))
    args += ["--format", fmt]
    return args, fmt


@settings(max_examples=int(__import__("os").environ.get("ARCHLAB_FUZZ", 60)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command_lines())
def test_cli_never_crashes(cli, line):
    args, fmt = line
    r = cli(*args)
    assert r.code in (0, 2), (args, r.code, r.err)  # 1 would be an internal error: a bug
    assert "Traceback" not in r.err and "Traceback" not in r.out
    if r.code == 2:
        assert len(r.err.strip().splitlines()) == 1, (args, r.err)
    elif fmt == "json":
        json.loads(r.out)


def test_json_is_byte_identical_across_runs(cli):
    for args in (["count", "googlenet"], ["rf", "resnet50"], ["memory", "mobilenet_v2"], ["trace", "lenet5"],
                 ["dwsc"], ["compare", "alexnet", "googlenet"], ["efficientnet", "--phi", "2"]):
        a = cli(*args, "--format", "json").out
        assert a == cli(*args, "--format", "json").out, args


FAST = ("--min-time", "0.02")


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


def test_an_exception_only_under_the_per_op_clock_is_one_line(cli, models):
    # the warm-up and the timing pass; the forwards of --per-layer timed op by op raise
    assert cli("latency", models("profiled_keyerr"), *FAST).code == 0
    assert_one_line_error(cli("latency", models("profiled_keyerr"), *FAST, "--per-layer"),
                          "timing each op of ", "failed: KeyError: 'boom'")


def test_an_exception_in_archlabs_own_code_is_still_archlabs_bug(cli, monkeypatch):
    # the catch is for the user's forward: archlab's own analysis after it is not the user's
    def broken(*args, **kw):
        raise KeyError("archlab's own")

    monkeypatch.setattr(latency_mod, "layers_from_op_times", broken)
    r = cli("latency", "lenet5", *FAST, "--per-layer")
    assert r.code == 1 and "archlab: internal error: KeyError" in r.err


# --- B2: sys.exit() in the user's forward ---------------------------------------------------


@pytest.mark.parametrize("run", REAL_RUNS)
@pytest.mark.parametrize("factory,code", [("exit0", 0), ("exit3", 3)])
def test_sys_exit_in_the_users_forward_during_a_real_run_is_one_line(cli, models, run, factory, code):
    r = cli(*_command(run, models(factory)))
    assert_one_line_error(r, f"the forward pass called sys.exit({code})")


def test_sys_exit_under_the_per_op_clock_is_one_line(cli, models):
    assert_one_line_error(cli("latency", models("profiled_exit"), *FAST, "--per-layer"),
                          "timing each op of ", "the forward pass called sys.exit(3)")


# --- options that disagree (issue 15): the same setting given twice must agree ------------------

@pytest.mark.parametrize("args, needle", [
    (("mobilenet@alpha=0.5", "--alpha", "0.75"), "alpha=0.5 in 'mobilenet@alpha=0.5' and --alpha 0.75"),
    (("mobilenet@res=160", "--res", "192"), "res=160 in 'mobilenet@res=160' and --res 192"),
    (("mobilenet", "--set", "alpha=0.5", "--alpha", "0.75"), "--set alpha=0.5 and --alpha 0.75"),
    (("mobilenet", "--set", "num_classes=10", "--set", "num_classes=20"),
     "--set num_classes=10 and --set num_classes=20"),
    (("mobilenet@num_classes=10", "--set", "num_classes=20"), "num_classes=10 in 'mobilenet@num_classes=10' and "
                                                             "--set num_classes=20"),
    (("mobilenet@input=3x100x100", "--input-size", "3,120,120"), "input=3x100x100 in"),
    (("mobilenet", "--set", "input=3x100x100", "--input-size", "3,120,120"), "--set input=3x100x100 and"),
    (("mobilenet", "--set", "batch=2", "--batch", "3"), "--set batch=2 and --batch 3"),
    (("mobilenet", "--alpha", "0.5", "--alpha", "0.75"), "--alpha 0.5 and --alpha 0.75"),
    (("mobilenet", "--res", "128", "--res=160"), "--res 128 and --res 160"),
    (("mobilenet", "-f", "json", "--format=csv"), "-f json and --format csv"),
    (("mobilenet", "--depth", "1", "--depth", "2"), "--depth 1 and --depth 2"),
])
def test_a_setting_given_twice_with_different_values_is_refused(cli, args, needle):
    r = cli("count", *args)
    assert_one_line_error(r, "given twice with different values", needle, "give it once")
    assert r.out == ""


@pytest.mark.parametrize("args", [
    ("mobilenet@alpha=0.5", "--alpha", "0.5"),
    ("mobilenet@alpha=0.5", "--alpha", "0.50"),
    ("mobilenet@res=160", "--res", "160"),
    ("mobilenet", "--set", "alpha=0.5", "--alpha", "0.5"),
    ("mobilenet", "--set", "num_classes=10", "--set", "num_classes=10"),
    ("mobilenet", "--alpha", "0.5", "--alpha=0.5"),
    ("mobilenet", "-fjson", "--format", "json"),
    ("mobilenet@input=3x100x100", "--input-size", "3,100,100"),
])
def test_the_same_setting_twice_with_the_same_value_is_fine(cli, args):
    r = cli("count", *args, "--depth", "0", "--format", "json")
    assert r.code == 0, r.err
    assert r.json()["macs"] > 0


def test_every_command_refuses_a_setting_that_disagrees(cli):
    for command in ("count", "trace", "rf", "memory"):
        assert_one_line_error(cli(command, "mobilenet@alpha=0.5", "--alpha", "0.75"), "alpha is given twice")
        assert_one_line_error(cli(command, "mobilenet", "--res", "128", "--res", "160"), "--res is given twice")
    assert_one_line_error(cli("latency", "mobilenet@res=160", "--res", "192"), "res is given twice")
    assert_one_line_error(cli("compare", "mobilenet@alpha=0.5", "--alpha", "0.75"), "alpha is given twice")
    assert_one_line_error(cli("compare", "mobilenet@res=160", "--rho", "192"), "resolution is given twice")
    # the same value twice is fine in compare too
    same = [cli("compare", *args, "--format", "json").json()["variant"]["macs"]
            for args in (("mobilenet@alpha=0.5,res=160",), ("mobilenet@alpha=0.5,res=160", "--alpha", "0.5"),
                         ("mobilenet@alpha=0.5,res=160", "--rho", "160"))]
    assert same[0] == same[1] == same[2]
    assert_one_line_error(cli("list", "-f", "json", "-f", "md"), "-f is given twice")
    assert_one_line_error(cli("verify", "-o", "a.md", "-o", "b.md"), "-o is given twice")


def test_the_api_refuses_a_setting_that_disagrees_too():
    import archlab
    from archlab.errors import UserError

    with pytest.raises(UserError, match="alpha is given twice with different values"):
        archlab.count("mobilenet@alpha=0.5", alpha=0.75)
    assert archlab.count("mobilenet@alpha=0.5", alpha=0.5, depth=0).macs == archlab.count("mobilenet",
                                                                                       alpha=0.5, depth=0).macs


def test_dwsc_sweep_refuses_a_fixed_value_of_the_swept_key(cli):
    assert_one_line_error(cli("dwsc", "--sweep", "n=64..2048", "--n", "5"),
                          "--sweep n=64..2048 varies n, and --n 5 fixes it; give one of them")
    assert_one_line_error(cli("dwsc", "--sweep", "n=64..2048", "--n", "1024"), "varies n")  # even the default
    r = cli("dwsc", "--sweep", "n=64..128", "--m", "8", "--format", "json")
    assert r.code == 0, r.err
    d = r.json()
    assert [row["n"] for row in d["rows"]] == [64, 128] and {row["m"] for row in d["rows"]} == {8}
    assert "[default: 1024]" in cli("dwsc", "--help").out


def test_the_default_depths_are_explained_and_the_api_has_the_clis(cli):
    # count and rf show blocks (2); trace shows the layers inside them (3), and each --help says so
    count_help, rf_help, trace_help = (" ".join(cli(c, "--help").out.split()) for c in ("count", "rf", "trace"))
    for text in (count_help, rf_help):
        assert "2 = the blocks inside them" in text and "'archlab trace' defaults to 3" in text
        assert "[default: 2]" in text
    assert "'archlab trace' defaults to 3, one deeper than count's and rf's 2" in trace_help  # one --depth, declared once
    assert "[default: 3]" in trace_help
    import inspect

    from archlab.api.count import count
    from archlab.api.layers import trace_layers
    from archlab.api.layers import receptive_field

    defaults = {f.__name__: inspect.signature(f).parameters["depth"].default
                for f in (count, trace_layers, receptive_field)}
    assert defaults == {"count": 2, "trace_layers": 3, "receptive_field": 2}
    depth = lambda *args: max(r["depth"] for r in cli(*args, "resnet18", "--format", "json").json()["layers"])
    assert depth("count") == 2 and depth("trace") == 3


def test_dash_output_means_stdout(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("count", "lenet5", "-f", "json", "-o", "-")
    assert r.code == 0, r.err
    assert r.json()["params"] > 0
    assert not (tmp_path / "-").exists()


def test_a_mistyped_command_reads_as_one_clause(cli):
    r = cli("cuont")
    assert_one_line_error(r, "No such command 'cuont'; did you mean 'count'?")
    assert ".;" not in r.err


def test_a_newline_in_a_model_name_stays_on_the_errors_one_line(cli):
    assert_one_line_error(cli("count", "res\nnet"), "unknown model 'res\\nnet'")


def test_debug_shows_the_traceback_of_a_user_error_and_still_exits_2(cli):
    r = cli("--debug", "count", "nosuchnet")
    assert r.code == 2, (r.code, r.err)
    assert "Traceback" in r.err and "UserError" in r.err
    assert r.err.strip().splitlines()[-1].startswith("archlab: error: unknown model 'nosuchnet'")
    r = cli("--debug", "cuont")
    assert r.code == 2 and "Traceback" in r.err and r.err.strip().splitlines()[-1].startswith("archlab: error: No such")
