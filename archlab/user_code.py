"""Running the user's code (a model file's import, its factory, its forward) apart from archlab's output.

* What the user's code prints goes to standard error, so that ``archlab count my.py:make -f json | jq``
  still reads JSON. This redirects Python's ``sys.stdout`` (``print``, ``sys.stdout.write``); a C
  extension that writes to file descriptor 1 itself is not redirected.
* A warning raised while it runs (a deprecated PyTorch call, the user's own ``warnings.warn``) is
  shown as one line, ``archlab: warning: ...``, instead of Python's two lines (message and source).
* Code that takes long (a factory that downloads, or hangs) gets one notice on stderr after
  ``WAIT_NOTICE_S`` seconds, so that a silent terminal is not mistaken for archlab hanging.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from typing import Any, Iterator, TextIO

from archlab.errors import stderr

WAIT_NOTICE_S = 5.0  # seconds before the "still waiting" notice; tests set it lower




def warning_line(message: Warning | str, category: type, filename: str, lineno: int) -> str:
    """One line for a warning: its category, the first line of its message and where it was raised."""
    text = str(message).strip().splitlines()
    first = text[0] if text else ""
    where = f" ({os.path.basename(filename)}:{lineno})" if filename else ""
    return f"archlab: warning: {category.__name__}: {first}{where}"


@contextlib.contextmanager
def user_code(what: str | None = None) -> Iterator[None]:
    """Run the body as the user's code: its standard output goes to standard error, each warning
    is one line there, and when ``what`` is given ("'my.py:make' to build"), a body still running
    after ``WAIT_NOTICE_S`` seconds gets one notice: ``archlab: still waiting for ...``."""
    err: TextIO | Any = stderr()

    def show(message, category, filename, lineno, file=None, line=None):
        try:
            print(warning_line(message, category, filename, lineno), file=err, flush=True)
        except (OSError, ValueError):  # stderr closed or broken: a warning is not worth failing for
            pass

    timer = None
    if what is not None and WAIT_NOTICE_S is not None and WAIT_NOTICE_S >= 0:
        delay = WAIT_NOTICE_S

        def notice() -> None:
            try:
                print(f"archlab: still waiting for {what} (the user's code has run {delay:g} s; Ctrl-C stops it)",
                      file=err, flush=True)
            except (OSError, ValueError):
                pass

        timer = threading.Timer(delay, notice)
        timer.daemon = True
    with warnings.catch_warnings(), contextlib.redirect_stdout(err):
        warnings.showwarning = show
        if timer is not None:
            timer.start()
        try:
            yield
        finally:
            if timer is not None:
                timer.cancel()
