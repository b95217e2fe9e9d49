"""Refuse, before allocating, a real run that would not fit in memory (``--force`` overrides).

Counting never allocates activations (meta tensors), so ``archlab count vgg19 --res 4096``
is always safe. What runs the model for real (``memory --measure``, ``latency``) first
estimates what it needs (``archlab.analysis.memory.run_bytes``: the parameters plus the eager
inference peak of the activations, both from the meta trace) and asks ``check_fits``.
"""

from __future__ import annotations

import os

from archlab.errors import UserError
from archlab.measure.devices import is_cuda
from archlab.units import human_bytes


def available_bytes(device: str = "cpu") -> int | None:
    if is_cuda(device):
        import torch

        dev = torch.device(device)
        free, _total = torch.cuda.mem_get_info(dev)
        # blocks this process's caching allocator holds but does not use are free for the run too
        cached = torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
        return int(free + cached)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(needed: int, device: str = "cpu", force: bool = False, what: str = "this run") -> None:
    if force:
        return
    free = available_bytes(device)
    if free is not None and needed > 0.9 * free:
        raise UserError(f"{what} needs about {human_bytes(needed)} on {device} but only {human_bytes(free)} is "
                        "available; use a smaller --res/--batch, or --force to try anyway")
