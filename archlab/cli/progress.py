"""A progress display on stderr for a command's long steps (``efficientnet --search``, ``count
--engine fvcore``): rich, transient, and only when stderr is a terminal (elsewhere rich would
leave an empty line in a captured stderr, and nobody is watching). Where no bar shows, ``watch``
says once which step (``archlab.status``) has been running for ``NOTICE_AFTER`` seconds: a
forward that hangs, a big model's search for the largest batch, a calibration."""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

NOTICE_AFTER = 10.0  # seconds one step may run, with no progress bar showing, before the notice
_bars = 0  # progress bars showing now: a notice would break into one

# step(done, total, what): ``done`` of ``total`` units, the step under way; total None: unknown
Step = Callable[[float, Optional[float], str], None]


def stderr_is_terminal() -> bool:
    """Whether a person is watching stderr."""
    return sys.stderr is not None and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


@contextmanager
def progress(description: str) -> Iterator[Step | None]:
    """A progress bar with the elapsed time, gone once the block ends; yields its ``Step``, or None
    when stderr is not a terminal (then nothing is printed). The bar appears at the first step, so
    an error raised before it (a bad spec) stays one line on stderr."""
    global _bars
    if not stderr_is_terminal():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    bar = Progress(*columns, console=Console(stderr=True), transient=True)
    task = None

    def step(done: float, total: float | None, what: str) -> None:
        nonlocal task
        global _bars
        if task is None:
            bar.start()
            _bars += 1
            task = bar.add_task(description, total=total)
        bar.update(task, total=total, completed=done, description=what)

    try:
        yield step
    finally:
        if task is not None:
            bar.stop()
            _bars -= 1


@contextmanager
def watch() -> Iterator[None]:
    """While a command runs, and only when stderr is a terminal: once a step (``archlab.status``)
    has run for ``NOTICE_AFTER`` seconds with no progress bar showing, one line on stderr naming it
    and how to stop it; again for each later step that runs as long. Stopped with the command."""
    if not stderr_is_terminal():
        yield
        return
    from archlab import status

    done = threading.Event()

    def loop() -> None:
        step, since, told = status.now(), time.monotonic(), False
        while not done.wait(min(0.5, NOTICE_AFTER / 4)):
            if status.now() != step:
                step, since, told = status.now(), time.monotonic(), False
            elapsed = time.monotonic() - since
            if step and not told and not _bars and elapsed >= NOTICE_AFTER:
                print(f"archlab: still {step} after {elapsed:.0f} s (Ctrl-C stops it)", file=sys.stderr, flush=True)
                told = True

    watcher = threading.Thread(target=loop, name="archlab-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
