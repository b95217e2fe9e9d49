"""A progress display on stderr for a command's long steps (``efficientnet --search``, ``count
--engine fvcore``): rich, transient, and only when stderr is a terminal (elsewhere rich would
leave an empty line in a captured stderr, and nobody is watching)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

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
        if task is None:
            bar.start()
            task = bar.add_task(description, total=total)
        bar.update(task, total=total, completed=done, description=what)

    try:
        yield step
    finally:
        if task is not None:
            bar.stop()
