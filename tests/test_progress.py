"""archlab/cli/progress.py: long steps say they are running, a rich progress bar on stderr for
``efficientnet --search`` and ``count --engine fvcore``, only when stderr is a terminal; elsewhere
nothing extra."""

import sys

import pytest

from archlab.analysis import laws

SMALL = {"limits": (1.2, 1.1, 1.15)}  # a corner of the grid: a few networks, not the 9-11 s search


@pytest.fixture
def small_search(monkeypatch):
    """``grid_search`` over a corner of the grid, recording the progress callback the CLI passed."""
    passed = []
    real = laws.grid_search

    def search(progress=None):
        passed.append(progress)
        return real(progress=progress, **SMALL)

    monkeypatch.setattr(laws, "grid_search", search)
    return passed


@pytest.fixture
def updates(monkeypatch):
    """The descriptions rich's progress bar is given."""
    from rich.progress import Progress

    seen = []
    real = Progress.update

    def update(self, task, **kw):
        seen.append(kw.get("description"))
        return real(self, task, **kw)

    monkeypatch.setattr(Progress, "update", update)
    return seen


def _terminal(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)


def test_grid_search_reports_every_network_and_the_end():
    calls = []
    rows = laws.grid_search(progress=lambda done, total, what: calls.append((done, total, what)), **SMALL)
    assert len(calls) == len(rows) + 1 and rows
    assert [c[0] for c in calls] == list(range(len(rows) + 1)) and {c[1] for c in calls} == {len(rows)}
    assert calls[0][2].startswith("counting α = ") and calls[-1][2] == "done"
    assert laws.grid_search(**SMALL) == rows  # the same rows without a callback


def test_search_off_a_terminal_prints_nothing_extra(cli, small_search, updates):
    r = cli("efficientnet", "--search")
    assert r.code == 0 and r.err == "" and small_search == [None] and updates == []


def test_search_on_a_terminal_shows_its_progress(cli, small_search, updates, monkeypatch):
    plain = cli("efficientnet", "--search").out
    _terminal(monkeypatch)
    r = cli("efficientnet", "--search")
    assert r.code == 0 and r.out == plain  # stdout unchanged: the bar is on stderr, and gone when done
    assert callable(small_search[-1])
    assert any(d and d.startswith("counting α = ") for d in updates) and updates[-1] == "done"


def test_fvcore_count_shows_its_progress_only_on_a_terminal(cli, updates, monkeypatch):
    pytest.importorskip("fvcore")
    plain = cli("count", "lenet5", "--engine", "fvcore", "--depth", "0")
    assert plain.code == 0 and plain.err == "" and updates == []
    _terminal(monkeypatch)
    r = cli("count", "lenet5", "--engine", "fvcore", "--depth", "0")
    assert r.code == 0 and r.out == plain.out
    assert any(d and d.startswith("fvcore: running the model on real tensors") for d in updates)
    assert updates[-1] == "done"
    # the default engine is quick: no bar even on a terminal
    updates.clear()
    assert cli("count", "lenet5", "--depth", "0").code == 0 and updates == []


def test_an_error_under_the_bar_is_still_one_line(cli, monkeypatch):
    from conftest import assert_one_line_error

    _terminal(monkeypatch)
    assert_one_line_error(cli("count", "lenet5", "--engine", "fvcore", "--res", "2"), "input is too small")


# --- issue 24 (low): a step that runs long is named, once, on a terminal ------------------------------

SLEEPY = '''
import time
from torch import nn


class Sleepy(nn.Linear):
    def forward(self, x):
        time.sleep(1.5)  # a forward that takes its time (or hangs)
        return super().forward(x)


def make():
    return Sleepy(4, 4)
'''


@pytest.fixture
def sleepy(tmp_path, monkeypatch):
    from archlab.cli import progress

    monkeypatch.setattr(progress, "NOTICE_AFTER", 0.1)  # the forward takes 15 times as long
    path = tmp_path / "sleepy.py"
    path.write_text(SLEEPY)
    return f"{path}:make"


def test_a_long_forward_is_named_once_on_a_terminal(cli, sleepy, monkeypatch):
    plain = cli("count", sleepy, "--input-size", "4", "--depth", "0")
    assert plain.code == 0 and plain.err == ""  # off a terminal: nothing extra
    _terminal(monkeypatch)
    r = cli("count", sleepy, "--input-size", "4", "--depth", "0")
    assert r.code == 0 and r.out == plain.out
    notices = r.err.splitlines()
    assert notices == [notices[0]] and notices[0].startswith("archlab: still tracing the forward of Sleepy after ")
    assert notices[0].endswith(" s (Ctrl-C stops it)")


def test_the_largest_batch_search_is_named_as_it_goes(cli, monkeypatch):
    # each batch the search traces is a step of its own: a notice names the one that runs long
    from archlab import status

    steps = []
    original = status.doing
    monkeypatch.setattr(status, "doing", lambda what: (steps.append(what), original(what)))
    r = cli("memory", "lenet5", "--training", "--budget", "4MiB")
    assert r.code == 0, r.err
    tried = [s for s in steps if s.startswith("looking for the largest batch within the budget (tracing batch ")]
    assert len(tried) >= 3
