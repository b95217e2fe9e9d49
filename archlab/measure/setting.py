"""The setting of a real run on the CPU or a GPU: options checked before anything is built, the
device's name, and the C allocator held steady while timing (``archlab latency``, ``archlab
calibrate``)."""

from __future__ import annotations

import contextlib
import math
import os
from typing import Iterator

from archlab.errors import UserError
from archlab.measure.devices import check_device, is_cuda
from archlab.units import FLOAT_DTYPES

DTYPES = FLOAT_DTYPES  # the dtypes a timed forward runs in
MAX_THREADS_PER_CPU = 4  # --threads beyond this many per CPU is refused
MAX_MIN_TIME = 3600.0  # --min-time beyond an hour per model is refused (1e308 would run forever)


def check_options(device: str, dtype: str, threads: int | None, min_time: float) -> None:
    """The errors a measurement can meet before it starts, raised before any model is built."""
    check_device(device)
    if dtype not in DTYPES:
        raise UserError(f"unknown --dtype '{dtype}' (choose {', '.join(DTYPES)})")
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")
    cpus = os.cpu_count() or 1
    if threads is not None and threads > max(MAX_THREADS_PER_CPU * cpus, 64):
        # OpenMP cannot start tens of thousands of threads: it fails, or the process crashes
        raise UserError(f"--threads {threads} is more than {max(MAX_THREADS_PER_CPU * cpus, 64)} "
                        f"(this machine has {cpus} CPUs)")
    check_min_time(min_time)


def check_min_time(min_time: float) -> None:
    """Seconds of timed forwards: a positive number, at most ``MAX_MIN_TIME``."""
    if not (min_time > 0 and math.isfinite(min_time)):
        raise UserError(f"--min-time must be a positive number of seconds, got {min_time}")
    if min_time > MAX_MIN_TIME:
        raise UserError(f"--min-time {min_time:g} is more than {MAX_MIN_TIME:g} seconds (an hour of timed "
                        "forwards per model)")


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_DEFAULT_THRESHOLD = 128 * 1024
FIXED_THRESHOLD = 1 << 30  # 1 GiB: activations come from the heap, and the heap keeps what is freed
FALLBACK_THRESHOLD = 32 << 20  # what older glibc accepts at most (HEAP_MAX / 2 on 64 bits)
_allocator_depth = 0


def _libc():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version") else None
    except OSError:
        return None


def _users_setting() -> bool:
    """Whether the user set glibc's thresholds for this process (environment or tunables)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")) or \
        "threshold" in tunables


_steady = [False]  # whether the outermost allocator_fixed applied its setting


@contextlib.contextmanager
def allocator_fixed() -> Iterator[bool]:
    """The C allocator held steady while timing (glibc): activations of every size are served from
    the heap, and freed memory stays in the process for the next forward. Without this, glibc
    returns a freed activation's pages to the system and faults them in again on the next forward
    (hundreds of page faults per forward), unless an earlier, bigger model happened to raise its
    dynamic threshold: a model's latency then depends on which models ran before it.

    Yields whether the setting applies: glibc, no threshold of the user's (``MALLOC_*_THRESHOLD_``
    or ``GLIBC_TUNABLES``, left as they are), and glibc accepted it (1 GiB, else 32 MiB, the most
    older glibc takes). Afterwards the thresholds are glibc's initial 128 KiB again and the heap's
    free memory is given back; glibc's *dynamic* raising of the mmap threshold stays off in this
    process from then on (setting it at all turns it off, and nothing turns it back on)."""
    global _allocator_depth
    if _allocator_depth:  # nested: the outer one holds the allocator
        _allocator_depth += 1
        try:
            yield _steady[0]
        finally:
            _allocator_depth -= 1
        return
    libc = None if _users_setting() else _libc()
    applied = False
    if libc is not None:
        applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, FIXED_THRESHOLD)) or \
            bool(libc.mallopt(_M_MMAP_THRESHOLD, FALLBACK_THRESHOLD))
        applied = applied and (bool(libc.mallopt(_M_TRIM_THRESHOLD, FIXED_THRESHOLD)) or
                               bool(libc.mallopt(_M_TRIM_THRESHOLD, FALLBACK_THRESHOLD)))
    _allocator_depth, _steady[0] = 1, applied
    try:
        yield applied
    finally:
        _allocator_depth, _steady[0] = 0, False
        if libc is not None:
            libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
            libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
            libc.malloc_trim(0)


def page_faults() -> int:
    """Minor page faults of this process so far (0 where the system does not say)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    except (ImportError, OSError):
        return 0


def device_name(device: str) -> str:
    import torch

    if is_cuda(device):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "cpu"
