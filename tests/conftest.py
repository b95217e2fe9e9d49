import json
import textwrap

import pytest

from archlab.cli import main


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--overwrite", action="store_true", default=False,
                     help="write the outputs to the golden files under tests/golden/ instead of comparing "
                          "(tests/test_report_golden.py)")


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self):
        return json.loads(self.out)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """The tests' `archlab list` cache lives in a folder of their own, not the user's."""
    import os

    saved = os.environ.get("ARCHLAB_CACHE_DIR")
    os.environ["ARCHLAB_CACHE_DIR"] = str(tmp_path_factory.mktemp("archlab-cache"))
    yield
    if saved is None:
        os.environ.pop("ARCHLAB_CACHE_DIR", None)
    else:
        os.environ["ARCHLAB_CACHE_DIR"] = saved


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: ``cli("count", "resnet18")`` -> CliResult(code, out, err)."""

    def run(*args: str) -> CliResult:
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def assert_one_line_error(result: CliResult, *needles: str) -> None:
    assert result.code == 2, (result.code, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("archlab: error: ")
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


MODELS = '''
import sys

import torch
from torch import nn


def _real(x):
    return x.device.type != "meta"


def _profiled():
    """Under archlab's per-op clock (latency --per-layer/--per-op/--predict): a dispatch mode on real tensors."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode

    return _get_current_dispatch_mode() is not None


class Fails(nn.Module):
    """Raises ``exc`` on real tensors only; with ``profiled``, only while its ops are timed one by one."""

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
    """lgamma has no cost rule: the count is partial (the factory kept its name from when cumsum had none)."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.lgamma(self.c(x))


def cumsum(): return Cumsum()
cumsum.input_size = (3, 8, 8)


def half(): return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).half()
'''


@pytest.fixture
def models(tmp_path):
    path = tmp_path / "usermodels.py"
    path.write_text(textwrap.dedent(MODELS))
    return lambda name: f"{path}:{name}"


# --- external models --------------------------------------------------------------------------

USER_FILE = textwrap.dedent('''
    import torch
    from torch import nn
    import torch.nn.functional as F

    class TwoInputs(nn.Module):
        def __init__(self, width=8):
            super().__init__()
            self.conv = nn.Conv2d(3, width, 3, padding=1)
            self.fc = nn.Linear(10, width)

        def forward(self, image, vector):
            x = F.relu(self.conv(image))            # functional ops are counted too
            x = F.interpolate(x, scale_factor=2.0)
            g = x.mean((2, 3))
            return {"logits": g + self.fc(vector), "gram": torch.matmul(g.t(), g)}

    def make(width: int = 8):
        return TwoInputs(width)

    def small():
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    small.input_size = (3, 16, 16)

    def not_a_model():
        return 42

    def needs(width, *, k):
        return nn.Conv2d(3, width, k)

    def quits():
        import sys
        sys.exit(3)

    def quits_in_forward():
        class Quit(nn.Module):
            def forward(self, x):
                import sys
                sys.exit(0)
        return Quit()

    instance = nn.Conv2d(3, 4, 3)  # a module instance, not a factory

    def reads_values():
        class Branchy(nn.Module):
            def forward(self, x):
                return x * 2 if x.mean().item() > 0 else x
        return Branchy()

    def explodes():
        class Boom(nn.Module):
            def forward(self, x):
                raise ValueError("forward exploded")
        return Boom()
''')


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "mynet.py"
    path.write_text(USER_FILE)
    return str(path)


def fake_machine(**over):
    """A calibrated machine of round numbers (archlab/measure/calibrate.py's ``Machine``); ``over``
    replaces any of its fields."""
    import torch

    from archlab.measure import calibrate as cal
    from archlab.measure.calibrate import Machine

    kw = dict(key={"machine": "test", "device": "cpu", "threads": 1, "dtype": "fp32", "torch": torch.__version__,
                   "version": cal.VERSION},
              peak_gflops=100.0, bandwidth_gbs=10.0, op_overhead_us=2.0, module_overhead_us=3.0,
              fixed_us={**{k: 20.0 for k in cal.CONV_BENCHMARKS}, **{k: 1.0 for k in cal.MEMORY_KINDS},
                        **{f"{k} pooling": 4.0 for k in cal.POOL_KINDS}},
              conv_gflops={k: 100.0 * (0.1 if k.startswith("depthwise") else 1.0) for k in cal.CONV_BENCHMARKS},
              memory_gbs={k: 5.0 for k in cal.MEMORY_KINDS}, pool_rate={k: 1.0 for k in cal.POOL_KINDS},
              measured_at="fixed")
    kw.update(over)
    return Machine(**kw)


@pytest.fixture
def counted_calibrations(monkeypatch, tmp_path):
    """The calibrations asked for, (device, threads, dtype) each: archlab/measure/calibrate.py's
    ``calibrate`` replaced by ``fake_machine``, the cache in a folder of the test's own."""
    from archlab.measure import calibrate as cal

    monkeypatch.setenv("ARCHLAB_CACHE_DIR", str(tmp_path))
    calls = []

    def fake(device="cpu", threads=1, dtype="fp32", progress=None):
        calls.append((device, threads, dtype))
        return fake_machine(key=cal.machine_key(device, threads, dtype))

    monkeypatch.setattr(cal, "calibrate", fake)
    return calls
