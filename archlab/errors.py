"""The error contract: a ``UserError`` is the user's mistake (exit code 2, one
line on stderr); anything else escaping the CLI is archlab's bug (exit code 1,
with a request for a bug report; ``--debug`` shows the traceback)."""

from __future__ import annotations

import sys
from typing import TextIO


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""

    exit_code = 2


def first_line(e: BaseException, empty: str | None = None) -> str:
    """The first line of an exception's message, for a one-line error; an exception without a
    message gives ``empty``, or its type's name when ``empty`` is None."""
    text = str(e).strip()
    if text:
        return text.splitlines()[0]
    return type(e).__name__ if empty is None else empty


def shorten(text: str, limit: int = 100) -> str:
    """``text`` as an error line echoes it: whole up to ``limit`` characters, else its first 60 and
    its last ``limit - 61`` around "…" (a 10,000-character model name must not fill the terminal;
    a long path keeps its file name)."""
    text = str(text)
    return text if len(text) <= limit else text[:60] + "…" + text[len(text) - (limit - 61):]


class _Discard:
    """A stream that drops what is written to it."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def stderr() -> TextIO:
    """Where error and warning lines go: stderr, or nowhere when it was closed ('2>&-');
    print(file=None) would otherwise put them on stdout, among the results."""
    return sys.stderr if sys.stderr is not None else _Discard()  # type: ignore[return-value]
