"""The ``archlab`` command line: a thin layer over the Python API.

Each command parses its options, calls the library, renders and writes. This
module imports no torch at import time, so ``archlab --help`` stays fast.

Error contract: a user error prints one line on stderr and exits with 2; an
internal error exits with 1 and asks for a bug report; ``--debug`` shows the
traceback of either.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from typing import List, Optional

import typer

from archlab.errors import UserError, first_line

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="archlab: build the course's CNN architectures and say exactly what they cost.\n\n"
    "MACs are multiply-accumulates (the papers' mult-adds); FLOPs = 2 x MACs.",
)

_state = {"debug": False}


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    md = "md"


class Engine(str, Enum):
    archlab = "archlab"
    fvcore = "fvcore"


def _version(value: bool) -> None:
    if value:
        from archlab import __version__

        print(f"archlab {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                 help="Print archlab's version and exit."),
) -> None:
    _state["debug"] = debug


# --- shared options -------------------------------------------------------------

RES = typer.Option(None, "--res", help="Input resolution H = W in pixels (default: the model's own).")
INPUT_SIZE = typer.Option(None, "--input-size", help="Input size C,H,W (instead of --res).")
BATCH = typer.Option(None, "--batch", help="Batch size (default 1, or the spec's batch=); counts are for the whole batch.")
ALPHA = typer.Option(None, "--alpha", help="Width multiplier, for models that have one (MobileNet).")
SET = typer.Option(None, "--set", help="Builder option key=value (repeatable), e.g. stacks=2.")
DEPTH = typer.Option(2, "--depth", help="Depth of the per-layer table (1 = the model's children).")
FORMAT = typer.Option(Format.table, "--format", "-f", help="Output format.")
OUTPUT = typer.Option(None, "-o", "--output", help="Write to this file (atomically) instead of stdout.")


def _settle() -> None:
    """Call once torch and the library are imported: moves every object that exists now
    out of the garbage collector's reach. A full collection over torch's import-time
    objects costs about 0.1 s and finds nothing; a command is short-lived."""
    import gc

    gc.freeze()


def _parse_common(input_size: Optional[str], sets: Optional[List[str]]):
    from archlab.spec import parse_assignment, parse_input_size

    size = parse_input_size(input_size) if input_size is not None else None
    options = dict(parse_assignment(s) for s in (sets or []))
    return size, options


def _emit(text: str, output: Optional[str]) -> None:
    from archlab.report.formats import write_atomic

    if output is not None:
        write_atomic(output, text)
        return
    if sys.stdout is None:  # started with standard output closed ('>&-')
        raise UserError("standard output is closed: use -o FILE")
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise  # 'archlab ... | head': the reader has what it wanted
    except OSError as e:
        raise UserError(f"cannot write to standard output: {e.strerror or e}") from None


# --- commands -------------------------------------------------------------------


@app.command()
def count(
    model: str = typer.Argument(..., help="Model name or spec, e.g. resnet50 or mobilenet@alpha=0.5,res=160."),
    res: Optional[int] = RES,
    input_size: Optional[str] = INPUT_SIZE,
    batch: Optional[int] = BATCH,
    alpha: Optional[float] = ALPHA,
    sets: Optional[List[str]] = SET,
    depth: int = DEPTH,
    fmt: Format = FORMAT,
    output: Optional[str] = OUTPUT,
    engine: Engine = typer.Option(Engine.archlab, "--engine", help="archlab (meta trace, nothing runs) or fvcore."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N (where --engine fvcore runs the model)."),
    force: bool = typer.Option(False, "--force", help="Run --engine fvcore even if it looks too big for memory."),
) -> None:
    """Parameters, MACs, FLOPs and the other operations of a model, per layer."""
    from archlab.api import count as count_api
    from archlab.devices import check_device
    from archlab.report import count_report

    _settle()
    check_device(device)
    size, options = _parse_common(input_size, sets)
    result = count_api(model, res=res, input_size=size, batch=batch, alpha=alpha, options=options,
                       depth=depth, engine=engine.value, device=device, force=force)
    _emit(count_report.render(result, fmt.value), output)


@app.command("trace")
def trace_cmd(
    model: str = typer.Argument(..., help="Model name or spec."),
    res: Optional[int] = RES,
    input_size: Optional[str] = INPUT_SIZE,
    batch: Optional[int] = BATCH,
    alpha: Optional[float] = ALPHA,
    sets: Optional[List[str]] = SET,
    depth: int = typer.Option(3, "--depth", help="Depth of the per-layer table (1 = the model's children)."),
    fmt: Format = FORMAT,
    output: Optional[str] = OUTPUT,
) -> None:
    """Per layer: input/output shapes, kernel/stride/padding/dilation/groups, params, MACs, receptive field,
    output activation size."""
    from archlab import views
    from archlab.report import views_report

    _settle()
    size, options = _parse_common(input_size, sets)
    result = views.trace_layers(model, res=res, input_size=size, batch=batch, alpha=alpha, options=options,
                                depth=depth)
    _emit(views_report.render_trace(result, fmt.value), output)


@app.command("rf")
def rf_cmd(
    model: str = typer.Argument(..., help="Model name or spec."),
    res: Optional[int] = RES,
    input_size: Optional[str] = INPUT_SIZE,
    alpha: Optional[float] = ALPHA,
    sets: Optional[List[str]] = SET,
    depth: int = DEPTH,
    fmt: Format = FORMAT,
    output: Optional[str] = OUTPUT,
) -> None:
    """Receptive field, effective stride (jump) and first-unit centre per layer, on the data-flow graph."""
    from archlab import views
    from archlab.report import views_report

    _settle()
    size, options = _parse_common(input_size, sets)
    result = views.receptive_field(model, res=res, input_size=size, alpha=alpha, options=options, depth=depth)
    _emit(views_report.render_rf(result, fmt.value), output)


class DType(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"
    int8 = "int8"


@app.command("memory")
def memory_cmd(
    models: List[str] = typer.Argument(..., help="One or more model names or specs (several: side by side)."),
    res: Optional[int] = RES,
    input_size: Optional[str] = INPUT_SIZE,
    batch: Optional[int] = BATCH,
    alpha: Optional[float] = ALPHA,
    sets: Optional[List[str]] = SET,
    dtype: DType = typer.Option(DType.fp32, "--dtype", help="Parameter dtype."),
    act_dtype: DType = typer.Option(DType.fp32, "--act-dtype", help="Activation dtype."),
    fuse: Optional[List[str]] = typer.Option(
        None, "--fuse", help="Module type to treat as one op in M(G) (repeatable); default InvertedResidual."),
    no_fuse: bool = typer.Option(False, "--no-fuse", help="Fuse nothing."),
    workspace: str = typer.Option("none", "--workspace", help="|op| of M(G): none or im2col."),
    measure: bool = typer.Option(False, "--measure", help="Also run a real forward and measure its peak."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda, for --measure."),
    force: bool = typer.Option(False, "--force", help="Run --measure even if it looks too big for memory."),
    fmt: Format = FORMAT,
    output: Optional[str] = OUTPUT,
) -> None:
    """Parameter memory, inference peak, training activations and M(G) (the MobileNetV2 paper's model)."""
    from archlab.memory_api import memory
    from archlab.report import memory_report

    _settle()
    size, options = _parse_common(input_size, sets)
    if no_fuse and fuse:
        raise UserError("give either --fuse or --no-fuse, not both")
    fuse_types = () if no_fuse else (tuple(fuse) if fuse else None)
    results = [memory(m, dtype=dtype.value, act_dtype=act_dtype.value, fuse=fuse_types, workspace=workspace,
                      measure=measure, device=device, force=force, res=res, input_size=size, batch=batch, alpha=alpha,
                      options=options) for m in models]
    _emit(memory_report.render(results, fmt.value), output)


@app.command("list")
def list_cmd(
    pattern: Optional[str] = typer.Argument(None, help="Glob over model names, e.g. 'resnet*', or a word they contain."),
    fmt: Format = FORMAT,
    output: Optional[str] = OUTPUT,
) -> None:
    """Every registered model: family, paper, default input, params and MACs."""
    from archlab.report import zoo

    _settle()
    rows = zoo.zoo_rows(pattern)
    if not rows:
        raise UserError(f"no model matches '{pattern}'; see 'archlab list'")
    _emit(zoo.render(rows, fmt.value), output)


import archlab.commands  # noqa: E402,F401  (registers the commands defined in their own modules)


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _stderr():
    """Where error lines go: stderr, or nowhere when it was closed ('2>&-'); print(file=None)
    would otherwise put them on stdout, among the results."""
    return sys.stderr if sys.stderr is not None else _Discard()


def _click_message(text: str) -> str:
    """click's usage message on one line, without what typer adds for options that have no
    environment variable ("(env var: 'None')") and with the suggestion as its own clause."""
    text = " ".join(text.replace(" (env var: 'None')", "").split())
    return text.replace(" Did you mean ", "; did you mean ")


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
        rv = command.main(args=args, prog_name="archlab", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except Exit as e:
        return e.exit_code
    except click.exceptions.NoArgsIsHelpError as e:
        print(e.format_message() if hasattr(e, "format_message") else str(e), file=_stderr())
        return 2
    except click.exceptions.ClickException as e:
        if debug:
            raise
        print(f"archlab: error: {_click_message(e.format_message())}", file=_stderr())
        return 2
    except Abort:
        print("archlab: aborted", file=_stderr())
        return 130
    except UserError as e:
        if debug:
            raise
        print(f"archlab: error: {e}", file=_stderr())
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
