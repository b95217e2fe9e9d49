"""Units and the vocabulary every layer shares: human-readable numbers (k = 1000), byte sizes
(KiB = 1024), shapes, dtype sizes, and the version of the JSON outputs' schema."""

from __future__ import annotations

from typing import Sequence

SCHEMA_VERSION = 1  # of every JSON output; additions keep it, a change of meaning bumps it

# bytes per element of the dtypes archlab speaks of (parameters, activations)
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp64": 8, "int8": 1}
# torch's floating dtypes by the names above (str(torch.float32) == "torch.float32": no torch import here)
_TORCH_NAMES = {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16", "torch.float64": "fp64"}


def dtype_name(dtype: object) -> str:
    """archlab's name of a torch floating dtype (``torch.bfloat16`` -> ``bf16``); fp32 for any other."""
    return _TORCH_NAMES.get(str(dtype), "fp32")

# the dtypes a real forward can run in (latency, memory --measure)
FLOAT_DTYPES = ("fp32", "fp16", "bf16")


def human(n: float, unit: str = "") -> str:
    """12_345_678 -> '12.35 M' (SI prefixes, powers of 1000)."""
    for factor, prefix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {prefix}{unit}"
    return f"{n:,.0f} {unit}".rstrip() if float(n).is_integer() else f"{n:.3g} {unit}".rstrip()


BINARY_UNITS = ((2**60, "EiB"), (2**50, "PiB"), (2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def binary_unit(n: float) -> tuple[int, str]:
    """The binary unit ``human_bytes`` writes ``n`` bytes in: (bytes per unit, its name)."""
    return next(((f, p) for f, p in BINARY_UNITS if abs(n) >= f), (1, "B"))


def human_bytes(n: float) -> str:
    """Binary units, each rolling over to the next at 1024 of it: 1023.00 MiB, then 1.00 GiB; up to EiB."""
    factor, prefix = binary_unit(n)
    return f"{n:,.0f} B" if factor == 1 else f"{n / factor:.2f} {prefix}"


def shape_str(shape: Sequence[int] | None) -> str:
    """``3x224x224``; an input given with a dtype or a keyword shows them: ``input_ids=int64:1x128``."""
    if not shape:
        return "-"
    text = "x".join(map(str, shape))
    if getattr(shape, "dtype", None):
        text = f"{shape.dtype}:{text}"
    if getattr(shape, "name", None):
        text = f"{shape.name}={text}"
    return text


def pair(value: int | Sequence[int], n: int = 2) -> tuple[int, ...]:
    """A per-axis tuple of ``n``: 3 -> (3, 3); [3] -> (3, 3); (1, 7) stays (1, 7)."""
    if isinstance(value, (list, tuple)):
        value = list(value)
        return tuple(value * n) if len(value) == 1 else tuple(value)
    return (value,) * n


# The optimizers and mixed-precision modes the training-step memory bill knows (analysis/training_memory.py);
# here, apart from torch, so that the CLI's --help lists them without importing it.
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
AMP = ("bf16", "fp16")
