"""What every command shares: the options (``--res``, ``--format``, ``-o`` ...), their choices,
and the steps around a command's body: parse the common options, settle the garbage collector,
emit the rendered text (to stdout, or atomically to ``-o``), and where error lines go.

Commands import from here; ``archlab.cli`` imports the commands and registers them on the app.
Nothing here imports torch, so ``archlab --help`` stays fast."""

from __future__ import annotations

import os
import sys
from enum import Enum
from typing import Annotated, Any, List, Optional, Sequence

import typer

from archlab.errors import UserError, stderr  # noqa: F401  (re-exported for the commands)
from archlab.report.formats import FORMATS
from archlab.units import DTYPE_BYTES, FLOAT_DTYPES, OPTIMIZERS


def choices(name: str, values: Sequence[str]) -> type:
    """A str Enum whose members are ``values`` (name = value), for typer's choices."""
    return Enum(name, [(v, v) for v in values], type=str)


# one vocabulary each: the formats the report layer renders, the dtypes units.py knows
Format = choices("Format", FORMATS)
DType = choices("DType", tuple(DTYPE_BYTES))  # sizes of stored tensors (memory)
TimeDType = choices("TimeDType", FLOAT_DTYPES)  # what a real forward runs in (latency)
PageFormat = choices("PageFormat", (*FORMATS, "html"))  # the commands that also draw an html page


class Engine(str, Enum):
    archlab = "archlab"
    fvcore = "fvcore"
    real = "real"


class OutputPath(str):
    """An ``-o`` path as given, remembering where it pointed when the command line was read: a
    user's factory that calls ``os.chdir`` must not move the output (``-o out.txt`` written to /)."""

    absolute: str

    def __new__(cls, text: str) -> "OutputPath":
        self = super().__new__(cls, text)
        self.absolute = os.path.abspath(text) if text else text
        return self


def anchor_output(value: Optional[str]) -> Optional[str]:
    """The OUTPUT option's callback: runs as the command line is parsed, before any user code."""
    if not value:
        return value
    try:
        return OutputPath(value)
    except OSError:  # the working directory was removed: a relative path has no anchor
        return value


def output_path(output: str) -> str:
    """Where ``-o`` writes: the path as given while the working directory is still the one it was
    given in (error lines then name it as the user wrote it), else its absolute form."""
    absolute = getattr(output, "absolute", None)
    if not absolute or os.path.isabs(output):
        return str(output)
    try:
        same = os.path.abspath(str(output)) == absolute
    except OSError:  # the user's code removed the working directory
        same = False
    return str(output) if same else absolute


# --- every option, declared once (typer's Annotated form); a command names its default ----------

ModelArg = Annotated[str, typer.Argument(help="Model name or spec, e.g. resnet50 or mobilenet@alpha=0.5,res=160.")]
Res = Annotated[Optional[int], typer.Option("--res", help="Input resolution H = W in pixels (default: the model's own).")]
InputSize = Annotated[Optional[str], typer.Option(
    "--input-size", help="Input size C,H,W (instead of --res); any rank (64, 3,16,112,112), a dtype (int64:128), "
    "several inputs (';'), keywords (input_ids=int64:128).")]
ForwardKw = Annotated[Optional[List[str]], typer.Option(
    "--forward-kw", help="A non-tensor keyword option of the forward, name=value with value true, false, none or a "
    "number (repeatable, or ';'-separated), e.g. use_cache=true.")]
Batch = Annotated[Optional[int], typer.Option(
    "--batch", help="Batch size (default 1, or the spec's batch=); counts are for the whole batch.")]
Alpha = Annotated[Optional[float], typer.Option("--alpha", help="Width multiplier, for models that have one (MobileNet).")]
Sets = Annotated[Optional[List[str]], typer.Option("--set", help="Builder option key=value (repeatable), e.g. stacks=2.")]
Depth = Annotated[int, typer.Option(
    "--depth", help="Depth of the per-layer table: 1 = the model's children, 2 = the blocks inside them (a ResNet's "
    "bottlenecks), 0 = the summary only. 'archlab trace' defaults to 3, one deeper than count's and rf's 2: kernels, "
    "strides and padding belong to the layers inside the blocks (a ResNet's layer1.0.conv1).")]
Fmt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
PageFmt = Annotated[PageFormat, typer.Option(
    "--format", "-f", help="Output format; html: a self-contained page with its figures (compare: the models side by "
    "side as bars; list: the zoo page).")]
Output = Annotated[Optional[str], typer.Option(
    "-o", "--output", callback=anchor_output, help="Write to this file (atomically) instead of stdout.")]
Device = Annotated[str, typer.Option(
    "--device", help="cpu, cuda or cuda:N: where the model runs for real (count --engine fvcore|real, memory "
    "--measure, latency, roofline --measure, calibrate).")]
Force = Annotated[bool, typer.Option(
    "--force", help="Run the model for real even if it looks too big for the device's free memory.")]
Training = Annotated[bool, typer.Option(
    "--training", help="One training step, the forward and autograd's backward: count: its input- and "
    "weight-gradient MACs per layer; memory: its memory bill (parameters, gradients, optimizer state, saved "
    "activations, peak over the step); compare: both, per model, at its batch.")]
Optimizer = Annotated[str, typer.Option(
    "--optimizer", help=f"With --training: the optimizer whose state the memory bill holds ({', '.join(OPTIMIZERS)}).")]
Freeze = Annotated[Optional[List[str]], typer.Option(
    "--freeze", help="With --training: module-name glob whose parameters get no gradient (repeatable), e.g. 'layer*'.")]
Checkpoint = Annotated[Optional[List[str]], typer.Option(
    "--checkpoint", help="With --training: module-name globs recomputed in the backward (activation checkpointing; "
    "repeatable or comma-separated), e.g. 'layer*.*'; memory: auto with --budget plans the set of least recompute "
    "that fits.")]
Latency = Annotated[bool, typer.Option(
    "--latency", help="Also measure the latency (CPU): compare: each model's median forward, batch 1; report: each "
    "op of a forward timed and attributed to its module, a figure of time per layer kind beside its MACs.")]
MinTime = Annotated[Optional[float], typer.Option(
    "--min-time", help="Seconds of timed forwards per model, at least (default 1); report and compare: with --latency.")]
Threads = Annotated[Optional[int], typer.Option(
    "--threads", help="torch intra-op threads while timing (default: torch's current setting).")]
Measure = Annotated[bool, typer.Option(
    "--measure", help="Also run the model for real: memory: its peak (a forward, or with --training a step); "
    "roofline: each op timed beside its prediction.")]
StoredDType = Annotated[Optional[DType], typer.Option("--dtype", help="Parameter dtype (default: the model's own).")]
TimedDType = Annotated[TimeDType, typer.Option("--dtype", help="Weights and input dtype of the real run.")]
Seed = Annotated[Optional[int], typer.Option(
    "--seed", help="With --engine real: the seed of the weights' initialisation, the inputs' values and the forward's "
    "random draws (default 0): the same seed, the same count.")]


def seed_of(seed: Optional[int], engine: str) -> int:
    """The seed of an ``--engine real`` run (0 when not given); ``--seed`` with another engine is an error:
    nothing it would seed runs."""
    if seed is not None and engine != "real":
        raise UserError("--seed seeds the weights and inputs of a real run: add --engine real")
    return 0 if seed is None else seed

def min_time_of(min_time: Optional[float], latency: Optional[bool] = None) -> float:
    """``--min-time`` checked once: a positive number of seconds (``measure.setting``'s check), and
    where a ``--latency`` flag decides whether anything is timed, only with it; None: 1 s."""
    if min_time is None:
        return 1.0
    from archlab.measure.setting import check_min_time

    check_min_time(min_time)
    if latency is False:
        raise UserError("--min-time sets how long --latency times each model; add --latency or drop --min-time")
    return min_time


def settle() -> None:
    """Call once torch and the library are imported: moves every object that exists now
    out of the garbage collector's reach. A full collection over torch's import-time
    objects costs about 0.1 s and finds nothing; a command is short-lived."""
    import gc

    gc.freeze()


def parse_common(input_size: Optional[str], sets: Optional[List[str]],
                 forward_kw: Optional[List[str]] = None) -> tuple:
    """``--input-size``, ``--forward-kw`` and ``--set`` parsed: (the inputs, an ``archlab.spec.Inputs``
    -- empty: the model's own --, the builder options dict)."""
    from archlab.spec import Inputs, literal, parse_assignment

    size = Inputs.of(input_size, forward_kw)
    options: dict = {}
    for text in sets or []:
        key, value = parse_assignment(text)
        if key in options and literal(options[key]) != literal(value):  # the same value twice is fine
            raise UserError(f"{key} is given twice with different values: --set {key}={options[key]} and "
                            f"--set {key}={value}; give it once")
        options[key] = value
    return size, options


def repeated_option(command: Any, args: Sequence[str]) -> None:
    """Refuse an option of ``command`` (a click command, or a group whose subcommand the
    arguments name) given twice with different values, ``--alpha 0.5 --alpha 0.75``: click would
    silently take the last. Repeatable options (``--set``) and flags are not concerned; the same
    value twice is fine."""
    from archlab.spec import literal

    args = list(args)
    subcommands = getattr(command, "commands", None)
    if subcommands is not None:
        i = 0
        while i < len(args) and args[i].startswith("-") and args[i] != "--":
            i += 1
        if i >= len(args) or args[i] not in subcommands:
            return
        command, args = subcommands[args[i]], args[i + 1:]
    takes_value: dict[str, Any] = {}
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False) or getattr(param, "count", False) or param.param_type_name != "option":
            continue
        for opt in (*param.opts, *param.secondary_opts):
            takes_value[opt] = param
    seen: dict[str, tuple[str, str]] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            break
        if arg.startswith("--") and "=" in arg:
            opt, _, value = arg.partition("=")
        elif arg in takes_value:
            if i >= len(args):
                break  # click says the value is missing
            opt, value = arg, args[i]
            i += 1
        elif arg.startswith("-") and not arg.startswith("--") and arg[:2] in takes_value:
            opt, value = arg[:2], arg[2:]  # -fjson
        else:
            continue
        param = takes_value.get(opt)
        if param is None or param.multiple:
            continue
        if param.name in seen and literal(seen[param.name][1]) != literal(value):  # 0.5 and 0.50 agree
            first_opt, first_value = seen[param.name]
            raise UserError(f"{opt} is given twice with different values: {first_opt} {first_value} and "
                            f"{opt} {value}; give it once")
        seen.setdefault(param.name, (opt, value))


def warn_if_busy(machine: Any) -> None:
    """A calibration measured just now on a busy machine (``calibrate.busy_note``) is kept, with a
    warning on stderr: never cached without a word."""
    if machine is None or machine.cached:
        return
    for note in machine.notes:
        if note.startswith("measured while other processes"):
            print(f"archlab: warning: calibration {note}", file=stderr())


def emit(text: str, output: Optional[str]) -> None:
    from archlab.report.files import write_atomic

    if output == "-":  # the usual spelling of standard output
        output = None
    if output is not None:
        write_atomic(output_path(output), text)
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
