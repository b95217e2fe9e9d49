"""Refuse, before allocating, a real run that would not fit in memory (``--force`` overrides).

Counting never allocates activations (meta tensors), so ``archlab count vgg19 --res 4096``
is always safe. What runs the model for real (``memory --measure``, ``latency``) first
estimates what it needs (``archlab.analysis.memory.run_bytes``: the parameters plus the eager
inference peak of the activations, both from the meta trace; for ``memory --training --measure``
the training bill's predicted peak) and asks ``check_fits``.

A run that cannot be estimated first (``count --engine real`` of a model whose builder or forward
reads values, so that its meta trace fails) is guarded while it runs: ``memory_budget`` says what
it may allocate, the same 90% of the free memory that ``check_fits`` allows, and the run stops
with ``MemoryBudget.refuse``'s one line once its tensors exceed it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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


@dataclass(frozen=True)
class MemoryBudget:
    """What a real run may allocate on ``device``: 90% of the memory free when it was asked."""

    free: int
    device: str

    @property
    def limit(self) -> int:
        return int(0.9 * self.free)

    def refuse(self, needed: int, what: str = "this run", so_far: bool = False) -> UserError:
        """The one-line error of a run that needs ``needed`` bytes (``so_far``: has reached them while
        running, and was stopped there)."""
        verb = "has allocated" if so_far else "needs about"
        stopped = ", so it was stopped" if so_far else ""
        return UserError(f"{what} {verb} {human_bytes(needed)} on {self.device} but only {human_bytes(self.free)} "
                         f"is available{stopped}; use a smaller --res/--batch/--input-size, or --force to try anyway")


def memory_budget(device: str = "cpu", force: bool = False) -> MemoryBudget | None:
    """The budget of a real run on ``device``; None with ``force`` or where the free memory is unknown."""
    if force:
        return None
    free = available_bytes(device)
    return None if free is None else MemoryBudget(int(free), device)


def check_fits(needed: int, device: str = "cpu", force: bool = False, what: str = "this run") -> None:
    budget = memory_budget(device, force)
    if budget is not None and needed > budget.limit:
        raise budget.refuse(needed, what)
