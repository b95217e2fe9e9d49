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
from typing import Iterator

from archlab.errors import UserError

KINDS = ("cpu", "cuda")


def check_device(device: str) -> None:
    """One line for a name that is not ``cpu``/``cuda``/``cuda:N``, for CUDA without a GPU, and
    for a GPU index this machine does not have."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.type not in KINDS:
        raise UserError(f"unknown device '{device}' (choose cpu, cuda or cuda:N)")
    if parsed.type != "cuda":
        return
    if not torch.cuda.is_available():
        raise UserError(f"--device {device} was asked for, but no CUDA GPU is available to PyTorch on this machine")
    count = torch.cuda.device_count()
    if parsed.index is not None and parsed.index >= count:
        raise UserError(f"--device {device}: this machine has {count} CUDA GPU{'s' if count != 1 else ''} "
                        f"(cuda:0 to cuda:{count - 1})")


def is_cuda(device: str) -> bool:
    return device.startswith("cuda")


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


def run_failed(what: str, device: str, dtype: str, e: Exception) -> UserError:
    """A real run that failed in PyTorch (out of memory, an operator without a kernel for this
    dtype, a CUDA error) as one line, with a hint where one is known."""
    import torch

    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, torch.OutOfMemoryError):
        return UserError(f"{what} on {device} ran out of memory ({msg}); use a smaller --batch or --res")
    hint = ""
    if device == "cpu" and dtype in ("fp16", "bf16") and ("Half" in msg or "BFloat16" in msg):
        other = "bf16" if dtype == "fp16" else "fp16"
        hint = (f" (an operator has no {dtype} kernel on the CPU; --dtype {other} may have one, "
                "--device cuda has both)")
    return UserError(f"{what} on {device} at {dtype} failed: {msg}{hint}")

