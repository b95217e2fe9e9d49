"""measure/guard.py: a real run that would not fit is refused unless forced; one that cannot be estimated
(count --engine real of a model whose meta trace fails) is stopped as it runs."""

import pytest
import torch
from torch import nn

import archlab
from archlab.trace.run import trace
from archlab.measure.guard import MemoryBudget
from conftest import assert_one_line_error


def test_a_real_run_that_cannot_fit_is_refused_unless_forced(cli):
    assert_one_line_error(cli("memory", "vgg19@adaptive_pool=true", "--res", "16384", "--measure"),
                          "--force", "available")


# --engine real of a model whose meta trace fails (its builder or forward reads values) cannot be
# estimated before it runs: its weights are checked once built, and the run is stopped, in one line,
# once the tensors it made exceed what check_fits allows (90% of the free memory)
REAL = '''
import torch
from torch import nn


class Reads(nn.Module):
    """A forward that reads a value (no meta trace), then makes `steps` tensors of 64 KiB each."""

    def __init__(self, steps=10):
        super().__init__()
        self.steps = steps
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        if x.sum().item() > -1e9:  # a value: only a real run can go on
            for _ in range(self.steps):
                x = self.fc(x)
        return x


def reads(steps: int = 10):
    return Reads(steps)


def catches(steps: int = 10):
    class Catches(Reads):
        def forward(self, x):
            try:
                return super().forward(x)
            except Exception:  # a forward that swallows every error still does not get past the guard
                return x
    return Catches(steps)


def big_builder():
    n = int(torch.tensor(512).item())  # the builder reads a value: no meta build
    return nn.Linear(n, n)  # 1 MiB of weights
'''
KIB = 1024


@pytest.fixture
def real_file(tmp_path):
    path = tmp_path / "reads.py"
    path.write_text(REAL)
    return str(path)


def free_memory(monkeypatch, nbytes):
    import archlab.measure.guard

    monkeypatch.setattr(archlab.measure.guard, "available_bytes", lambda device="cpu": nbytes)


@pytest.mark.parametrize("factory", ["reads", "catches"])
def test_a_real_run_that_cannot_be_estimated_is_stopped_as_it_grows(cli, real_file, monkeypatch, factory):
    # 1024 x 16 floats = 64 KiB per step; 40 steps are 2.5 MiB, more than 90% of 1 MiB
    spec = f"{real_file}:{factory}@steps=40"
    if factory == "reads":  # (catches' forward swallows the meta trace's error: its estimate is too small)
        assert_one_line_error(cli("count", spec, "--input-size", "16", "--batch", "1024"), "--engine real")
    free_memory(monkeypatch, 1 << 20)
    assert_one_line_error(cli("count", spec, "--input-size", "16", "--batch", "1024", "--engine", "real"),
                          "--engine real", "has allocated", "so it was stopped", "--force")
    r = cli("count", spec, "--input-size", "16", "--batch", "1024", "--engine", "real", "--force", "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["macs"] == 40 * 1024 * 16 * 16


def test_a_small_real_run_under_the_same_budget_runs(cli, real_file, monkeypatch):
    free_memory(monkeypatch, 1 << 20)
    # 4 steps of 64 KiB, the input and the weights: well under 90% of 1 MiB
    r = cli("count", f"{real_file}:reads@steps=4", "--input-size", "16", "--batch", "1024", "--engine", "real",
            "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["macs"] == 4 * 1024 * 16 * 16


def test_the_weights_of_a_builder_that_reads_values_are_checked_once_built(cli, real_file, monkeypatch):
    free_memory(monkeypatch, 1 << 20)  # the weights alone are 1 MiB + 2 KiB
    assert_one_line_error(cli("count", f"{real_file}:big_builder", "--input-size", "512", "--engine", "real"),
                          "the weights of", "--force")
    r = cli("count", f"{real_file}:big_builder", "--input-size", "512", "--engine", "real", "--force")
    assert r.code == 0, r.err


def test_the_budget_counts_new_tensors_not_views():
    class Views(nn.Module):
        def forward(self, x):
            for _ in range(100):
                x = x.view(-1).view(x.shape)  # no new storage
            return x + 1  # one new tensor

    x = torch.zeros(64, 64)  # 16 KiB
    budget = MemoryBudget(free=40 * KIB, device="cpu")  # limit 36 KiB: the input and one more fit
    trace(Views(), (x,), real=True, budget=budget)
    with pytest.raises(archlab.UserError, match="has allocated 48.*--force"):
        trace(Views(), (x,), real=True, budget=budget, allocated=16 * KIB)


def test_a_measured_training_step_that_cannot_fit_is_refused_unless_forced(cli, monkeypatch):
    # the guard reads the training bill's own predicted peak: with a free memory just under it
    # (90% of free < peak) the step is refused in one line; --force runs it
    args = ("memory", "mobilenet_v2", "--alpha", "0.25", "--res", "32", "--batch", "2", "--training")
    peak = cli(*args, "-f", "json").json()["training_peak_bytes"]
    free_memory(monkeypatch, int(peak / 0.9) - 1)
    assert_one_line_error(cli(*args, "--measure"),
                          "--measure --training (a real training step)", "--force", "available")
    free_memory(monkeypatch, int(peak / 0.9) + 16)
    assert cli(*args, "--measure").code == 0
    free_memory(monkeypatch, 1)
    assert cli(*args, "--measure", "--force").code == 0
