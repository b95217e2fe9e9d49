"""Where a real run happens: ``--device`` checked once, and the CUDA context every real run enters.

Counting never needs a device (meta tensors). What runs the model for real (``latency``,
``memory --measure``, ``count --engine fvcore``) names a device, ``cpu``, ``cuda`` or
``cuda:N``; this module turns a bad name or a missing GPU into one clear error, and makes
the named GPU the *current* one while the run lasts. The latter matters: ``torch.cuda``'s
device-less calls (``synchronize``, ``max_memory_allocated``, ``reset_peak_memory_stats``,
and the synchronization inside ``torch.utils.benchmark``'s timer and the profiler) act on
the current GPU, so without it a model on ``cuda:1`` would be timed by a clock that waits for
``cuda:0`` (kernel launches only: latency too low) and measured on the wrong allocator.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

from archlab.errors import UserError, first_line

KINDS = ("cpu", "cuda")


def check_device(device: str) -> None:
    """One line for a name that is not ``cpu``/``cuda``/``cuda:N``, for CUDA without a GPU, and
    for a GPU index this machine does not have. ``cpu:0`` is the CPU too (torch's name for it);
    ``cpu:N`` with N > 0 names nothing: PyTorch has one CPU device."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.type not in KINDS:
        raise UserError(f"unknown device '{device}' (choose cpu, cuda or cuda:N)")
    if parsed.type == "cpu":
        if parsed.index not in (None, 0):
            raise UserError(f"unknown device '{device}': PyTorch has one CPU device (choose cpu, cuda or cuda:N)")
        return
    if not torch.cuda.is_available():
        raise UserError(f"--device {device} was asked for, but no CUDA GPU is available to PyTorch on this machine")
    count = torch.cuda.device_count()
    if parsed.index is not None and parsed.index >= count:
        raise UserError(f"--device {device}: this machine has {count} CUDA GPU{'s' if count != 1 else ''} "
                        f"(cuda:0 to cuda:{count - 1})")


def is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def is_cpu(device: str) -> bool:
    """``cpu`` and ``cpu:0`` alike (what check_device accepts)."""
    return device == "cpu" or device.startswith("cpu:")


@contextlib.contextmanager
def on_device(device: str) -> Iterator[None]:
    """Make ``device`` the current CUDA device for the block (nothing for the CPU)."""
    if not is_cuda(device):
        yield
        return
    import torch

    with torch.cuda.device(torch.device(device)):
        yield


def synchronize(device: str) -> None:
    """Wait for the GPU's queued work (nothing for the CPU)."""
    if is_cuda(device):
        import torch

        torch.cuda.synchronize(torch.device(device))


def run_failed(what: str, device: str, dtype: str, e: BaseException) -> UserError:
    """A real run that failed as one line, with a hint where one is known: in PyTorch (out of
    memory, an operator without a kernel for this dtype, a CUDA error) or in the user's own
    forward (an assert, a KeyError, ``sys.exit()``: the exception's type is named, except for
    PyTorch's RuntimeErrors, which speak for themselves). An archlab ``UserError`` is returned
    as it is."""
    import torch

    if isinstance(e, UserError):
        return e
    if isinstance(e, SystemExit):  # the user's forward must not end archlab without a word
        return UserError(f"{what} on {device}: the forward pass called sys.exit({e.code!r})")
    msg = first_line(e, "")
    if not isinstance(e, RuntimeError):  # a KeyError('x') alone does not say what happened
        msg = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    msg = msg or type(e).__name__
    if isinstance(e, torch.OutOfMemoryError):
        return UserError(f"{what} on {device} ran out of memory ({msg}); use a smaller --batch or --res")
    hint = ""
    if is_cpu(device) and dtype in ("fp16", "bf16") and ("Half" in msg or "BFloat16" in msg):
        other = "bf16" if dtype == "fp16" else "fp16"
        hint = (f" (an operator has no {dtype} kernel on the CPU; --dtype {other} may have one, "
                "--device cuda has both)")
    return UserError(f"{what} on {device} at {dtype} failed: {msg}{hint}")


# What a real run catches from the user's forward: every Exception and sys.exit(), never
# KeyboardInterrupt (Ctrl-C stays Ctrl-C). Report it with run_failed.
FORWARD_ERRORS = (Exception, SystemExit)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """The profiler's C++ side prints start/stop lines on file descriptor 2; hide them."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
