"""``--device``: the names accepted, the errors for the others, and what a real run does with
the device (the user's model stays where it was; the named GPU is the current one).

Most of this needs no GPU: a machine with GPUs is simulated by replacing
``torch.cuda.is_available`` and ``torch.cuda.device_count``, which is all ``check_device``
asks. What needs real kernels is at the end, skipped without a GPU (two GPUs for ``cuda:1``).
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

import archlab
from archlab.errors import UserError
from archlab.measure.devices import check_device, is_cpu, is_cuda, on_device, run_failed
from archlab.measure.latency import setting_notes
from archlab.measure.memory_peak import measure_peak
from conftest import assert_one_line_error


@pytest.fixture
def two_gpus(monkeypatch):
    """check_device's view of a machine with cuda:0 and cuda:1 (no kernel runs)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("name", ["tpu", "mps", "", "CUDA", "cuda:x", "cuda:", "cuda:-1", "cuda 0", "meta", "gpu"])
def test_names_that_are_not_cpu_or_cuda(name, two_gpus):
    with pytest.raises(UserError, match=r"unknown device '.*' \(choose cpu, cuda or cuda:N\)"):
        check_device(name)


@pytest.mark.parametrize("name, kind", [("cpu", "cpu"), ("cpu:0", "cpu"), ("cuda", "cuda"), ("cuda:0", "cuda"),
                                        ("cuda:1", "cuda")])
def test_names_accepted_on_a_machine_with_two_gpus(name, kind, two_gpus):
    assert check_device(name) is None  # accepted: no error
    # and the runs take the name for what it is: the CPU or a GPU, never both
    assert (is_cpu(name), is_cuda(name)) == (kind == "cpu", kind == "cuda")


def test_a_second_gpu_is_refused_on_a_machine_with_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    check_device("cuda:0")
    with pytest.raises(UserError, match=r"this machine has 1 CUDA GPU \(cuda:0 to cuda:0\)$"):
        check_device("cuda:1")


def test_a_gpu_index_the_machine_does_not_have(two_gpus):
    with pytest.raises(UserError, match=r"^--device cuda:2: this machine has 2 CUDA GPUs \(cuda:0 to cuda:1\)$"):
        check_device("cuda:2")


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_quotes_the_name_given(name, no_gpu):
    with pytest.raises(UserError, match=f"^--device {name} was asked for, but no CUDA GPU is available"):
        check_device(name)


@pytest.mark.parametrize("command", [
    ("latency", "lenet5", "--min-time", "0.01"),
    ("count", "resnet18", "--engine", "fvcore"),
    ("count", "resnet18"),
    ("memory", "resnet18", "--measure"),
    ("memory", "resnet18"),
])
def test_every_command_that_takes_a_device_refuses_a_bad_one_in_one_line(cli, command, two_gpus):
    assert_one_line_error(cli(*command, "--device", "cuda:7"), "--device cuda:7", "has 2 CUDA GPUs")
    assert_one_line_error(cli(*command, "--device", "cuda:x"), "unknown device 'cuda:x'")


@pytest.mark.parametrize("name", ["cpu:1", "cpu:7", "cpu:99"])
def test_a_cpu_index_other_than_0_is_refused(name, two_gpus):
    # PyTorch has one CPU device: cpu:7 named nothing, and lost the fp16-on-CPU note
    with pytest.raises(UserError, match=f"^unknown device '{name}': PyTorch has one CPU device"):
        check_device(name)


@pytest.mark.parametrize("command", [
    ("latency", "lenet5", "--min-time", "0.01"),
    ("count", "lenet5", "--engine", "fvcore"),
    ("memory", "lenet5", "--measure"),
])
def test_every_command_refuses_cpu_n_in_one_line(cli, command):
    assert_one_line_error(cli(*command, "--device", "cpu:99"), "unknown device 'cpu:99'")


def test_cpu_0_is_the_cpu_in_notes_hints_and_results(cli):
    assert setting_notes("cpu:0", "fp16") == setting_notes("cpu", "fp16") != ()
    e = run_failed("timing", "cpu:0", "fp16", RuntimeError('"slow_conv2d_cpu" not implemented for \'Half\''))
    assert "no fp16 kernel on the CPU" in str(e)
    r = cli("latency", "lenet5", "--dtype", "fp16", "--min-time", "0.02", "--device", "cpu:0", "--format", "json")
    assert r.code == 0, r.err
    d = r.json()
    assert d["device"] == "cpu" and any("fp16 on the CPU" in n for n in d["notes"])


def test_on_device_is_nothing_for_the_cpu(monkeypatch):
    entered = []

    @contextlib.contextmanager
    def cuda_device(device):
        entered.append(device)
        yield

    monkeypatch.setattr(torch.cuda, "device", cuda_device)  # what on_device would switch with
    ran = []
    with on_device("cpu"):
        ran.append("cpu")
    with on_device("cpu:0"):
        ran.append("cpu:0")
    assert ran == ["cpu", "cpu:0"] and entered == [], "the block runs; no CUDA device is made current"
    with on_device("cuda:1"):
        ran.append("cuda:1")
    assert ran[-1] == "cuda:1" and entered == [torch.device("cuda:1")], "a GPU is made current for the block"


def test_run_failed_says_what_failed_with_a_hint_in_one_line():
    oom = run_failed("the forward pass of vgg16", "cuda:0", "fp32",
                     torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore lines"))
    assert str(oom) == ("the forward pass of vgg16 on cuda:0 ran out of memory (CUDA out of memory. Tried to "
                        "allocate 2.00 GiB); use a smaller --batch or --res")
    half = run_failed("x", "cpu", "fp16", RuntimeError('"avg_pool3d_out_frame" not implemented for \'Half\''))
    assert "no fp16 kernel on the CPU; --dtype bf16 may have one, --device cuda has both" in str(half)
    bf16 = run_failed("x", "cpu", "bf16", RuntimeError('"foo" not implemented for \'BFloat16\''))
    assert "no bf16 kernel on the CPU; --dtype fp16 may have one" in str(bf16)
    plain = run_failed("x", "cuda", "fp32", RuntimeError("CUDA error: an illegal memory access\nstack"))
    assert str(plain) == "x on cuda at fp32 failed: CUDA error: an illegal memory access"


def test_setting_notes_say_what_tf32_and_fp16_on_the_cpu_mean():
    assert setting_notes("cpu", "fp32") == ()
    assert "fp16 on the CPU" in setting_notes("cpu", "fp16")[0]
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
        (note,) = setting_notes("cuda", "fp32")
        assert "TF32 allowed (cuDNN convolutions True, matmul False)" in note
        torch.backends.cudnn.allow_tf32 = False
        assert setting_notes("cuda", "fp32") == ()
        assert setting_notes("cuda", "fp16") == ()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_fp16_on_the_cpu_is_said_beside_the_numbers(cli):
    r = cli("latency", "lenet5", "--dtype", "fp16", "--min-time", "0.02", "--format", "json")
    assert r.code == 0, r.err
    assert any("fp16 on the CPU" in n for n in r.json()["notes"])
    r = cli("latency", "lenet5", "--dtype", "fp16", "--min-time", "0.02")
    assert "note" in r.out and "fp16 on the CPU" in r.out


class _Bf16Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(x)


def test_fvcore_and_measure_leave_a_users_model_as_found():
    model = _Bf16Net().to(torch.bfloat16).train()
    weight = model.fc.weight
    r = archlab.count(model, input_size=(6,), engine="fvcore", depth=0)
    assert r.fvcore["macs"] == r.macs == 24  # fvcore ran it: its input took the model's dtype
    m = archlab.memory(model, input_size=(6,), measure=True)
    assert m.measured_peak_bytes > 0
    assert model.training and model.fc.weight is weight and weight.dtype == torch.bfloat16
    assert weight.device.type == "cpu"


# --- real GPUs --------------------------------------------------------------------------------

cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
two_gpus_only = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")


@cuda_only
def test_on_device_makes_the_named_gpu_current():
    before = torch.cuda.current_device()
    with on_device(f"cuda:{torch.cuda.device_count() - 1}"):
        assert torch.cuda.current_device() == torch.cuda.device_count() - 1
    assert torch.cuda.current_device() == before


@two_gpus_only
def test_the_second_gpu_is_measured_on_its_own_allocator():
    # before archlab entered the named GPU, cuda:1's peak was read from cuda:0's allocator (about 0)
    on0 = archlab.memory("resnet18", res=64, measure=True, device="cuda:0").measured_peak_bytes
    on1 = archlab.memory("resnet18", res=64, measure=True, device="cuda:1").measured_peak_bytes
    assert on1 > 0 and abs(on1 - on0) <= 0.25 * on0, (on0, on1)


def test_fvcore_engine_is_refused_when_too_big_unless_forced(cli, monkeypatch):
    import archlab.measure.guard

    monkeypatch.setattr(archlab.measure.guard, "available_bytes", lambda device="cpu": 1 << 20)  # 1 MiB free
    assert_one_line_error(cli("count", "resnet18", "--engine", "fvcore"), "--engine fvcore (a real forward) needs",
                          "--force")
    r = cli("count", "lenet5", "--engine", "fvcore", "--force", "--format", "json")
    assert r.code == 0 and r.json()["fvcore"]["agrees_with_archlab_macs"]


def test_the_python_api_raises_user_error_too(models):
    with pytest.raises(UserError, match="failed: ZeroDivisionError: division by zero"):
        archlab.measure.latency.latency(models("zerodiv"), min_time=0.02)
    with pytest.raises(UserError, match="failed: AttributeError: .*nope"):
        archlab.memory(models("attrerr"), measure=True)


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
