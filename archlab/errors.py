"""The error contract: a ``UserError`` is the user's mistake (exit code 2, one
line on stderr); anything else escaping the CLI is archlab's bug (exit code 1,
with a request for a bug report; ``--debug`` shows the traceback)."""


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""

    exit_code = 2
