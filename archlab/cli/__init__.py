"""The ``archlab`` command line: a thin layer over the Python API.

Each command parses its options, calls the library, renders and writes. This
module imports no torch at import time, so ``archlab --help`` stays fast.

Error contract: a user error prints one line on stderr and exits with 2; an
internal error exits with 1 and asks for a bug report; ``--debug`` shows the
traceback of either (before the line; the exit code stays 2 or 1).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, List, Optional

import typer

from archlab.cli import (compare, count, diagram, laws, latency, memory, page, per_layer, receptive_field, roofline,
                         verify, zoo)
from archlab.cli.options import repeated_option
from archlab.cli.options import stderr as _stderr
from archlab.errors import UserError, first_line

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="archlab: build the course's CNN architectures and say exactly what they cost.\n\n"
    "MACs are multiply-accumulates (the papers' mult-adds); FLOPs = 2 x MACs.",
    epilog="\b\nManual: docs/README.md (in archlab's repository)",
)

def _version(value: bool) -> None:
    if value:
        from archlab import __version__

        print(f"archlab {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_version,
                                 help="Print archlab's version and exit.")] = False,
) -> None:
    # --debug is read by main() before click parses anything, so that it covers click's own errors too
    return None


# The commands, in the order ``archlab --help`` lists them; each is a plain function of its own
# module, and its --help ends with the page of the manual that documents it (tests/test_docs.py).
COMMANDS = (
    ("count", count.count, "docs/counting.md; --training: docs/training.md"),
    ("trace", per_layer.trace_cmd, "docs/layers.md"),
    ("rf", receptive_field.rf_cmd, "docs/layers.md"),
    ("memory", memory.memory_cmd, "docs/memory.md"),
    ("report", page.report_cmd, "docs/pictures.md"),
    ("diagram", diagram.diagram_cmd, "docs/pictures.md"),
    ("list", zoo.list_cmd, "docs/zoo.md"),
    ("latency", latency.latency_cmd, "docs/latency.md"),
    ("calibrate", roofline.calibrate_cmd, "docs/latency.md"),
    ("roofline", roofline.roofline_cmd, "docs/latency.md"),
    ("dwsc", laws.dwsc_cmd, "docs/laws.md"),
    ("compare", compare.compare_cmd, "docs/laws.md"),
    ("efficientnet", laws.efficientnet_cmd, "docs/laws.md"),
    ("verify", verify.verify_cmd, "docs/verify.md"),
)
for _name, _function, _page in COMMANDS:
    app.command(_name, epilog=f"\b\nManual: {_page} (in archlab's repository)")(_function)


def _click_message(text: str) -> str:
    """click's usage message on one line, without what typer adds for options that have no
    environment variable ("(env var: 'None')") and with the suggestion as its own clause."""
    text = " ".join(text.replace(" (env var: 'None')", "").split())
    return text.replace(". Did you mean ", "; did you mean ").replace(" Did you mean ", "; did you mean ")


def _one_line(text: str) -> str:
    """A message as one line: a newline or other control character (in a model name the user typed)
    is shown escaped, as Python writes it in a string, so that the error stays on its one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _user_error(message: str, debug: bool) -> None:
    """The one line of a user error; with --debug after the traceback (the exit code stays 2)."""
    if debug:
        import traceback

        traceback.print_exc(file=_stderr())
    print(f"archlab: error: {_one_line(message)}", file=_stderr())


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: runs the app under the error contract and returns the exit code."""
    try:  # typer >= 0.20 vendors click; its exceptions live in two places
        from typer import _click as click
        from typer.exceptions import Abort, Exit
    except ImportError:  # pragma: no cover - older typer depends on click
        import click
        from click.exceptions import Abort, Exit

    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    command = typer.main.get_command(app)
    try:
        repeated_option(command, args)
        from archlab import status
        from archlab.cli.progress import watch

        status.doing("")
        with watch():  # a step that runs long is named on a terminal: a forward that hangs, a search
            rv = command.main(args=args, prog_name="archlab", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except Exit as e:
        return e.exit_code
    except click.exceptions.NoArgsIsHelpError as e:
        print(e.format_message() if hasattr(e, "format_message") else str(e), file=_stderr())
        return 2
    except click.exceptions.ClickException as e:
        _user_error(_click_message(e.format_message()), debug)
        return 2
    except Abort:
        print("archlab: aborted", file=_stderr())
        return 130
    except UserError as e:
        _user_error(str(e), debug)
        return e.exit_code
    except KeyboardInterrupt:
        print("archlab: interrupted", file=_stderr())
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - the contract: one line, exit 1, unless --debug
        if debug:
            raise
        first = first_line(e, "")
        print(
            f"archlab: internal error: {type(e).__name__}: {first} "
            "(this is a bug in archlab: please report it with the command you ran; --debug shows the traceback)",
            file=_stderr(),
        )
        return 1


def run() -> None:
    """The console script. Exits without the interpreter's teardown: after ``import torch``
    that teardown takes about 0.5 s and does nothing for a finished command (every file
    archlab writes is closed and renamed into place before this point)."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a broken pipe, a full device: the code already says what happened
            pass
    os._exit(code)
