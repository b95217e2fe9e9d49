"""The forward's arguments: meta (or, for ``--engine real``, real) tensors made from an ``Inputs``
(``archlab.spec``) for a resolved spec or for an ``nn.Module``, and how reports name them."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import nn

from archlab.errors import UserError
from archlab.spec import Inputs, InputShape, input_dtype

Empty = Callable[..., torch.Tensor]  # (shape, dtype) -> a tensor


def described_shape(shape: tuple[int, ...], dtype: torch.dtype, name: str = "") -> tuple[int, ...]:
    """An input's shape as reports show it: with its dtype where it is not fp32 (token ids:
    ``int64:1x128``; a half input: ``float16:1x4``) and the keyword that passed it (``input_ids=...``)."""
    shown = None if dtype == torch.float32 else str(dtype).removeprefix("torch.")
    return InputShape(shape, shown, name or None) if shown or name else tuple(shape)


def check_seed(seed: Any) -> None:
    """A seed is a whole number from 0 to 2**63 - 1 (what torch's generators take)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 63:
        raise UserError(f"seed must be a whole number from 0 to {2 ** 63 - 1}, got {seed!r}")


@contextmanager
def seeded(seed: int, device: str = "cpu") -> Iterator[None]:
    """Within: the global RNG (the CPU's, and ``device``'s where it is a CUDA one) seeded with ``seed``, so that
    weights a real build initialises and a forward's random draws are the same run to run; after: the
    caller's RNG state as it was found."""
    dev = torch.device(device)
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def vocabulary(model: nn.Module | None) -> int | None:
    """How many token ids a model reads: its ``config.vocab_size`` where it has one, else the smallest
    ``num_embeddings`` of its ``nn.Embedding`` layers; None when nothing says."""
    if model is None:
        return None
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    sizes = [m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding) and m.num_embeddings > 0]
    return min(sizes) if sizes else None


def tensor_maker(real: bool = False, device: str = "cpu", seed: int = 0, vocab: int | None = None) -> Empty:
    """``empty(shape, dtype, name)``: a meta tensor; with ``real``, one on ``device`` holding values drawn
    from a generator seeded once per maker with ``seed`` (the global RNG is not touched): floats, normal
    noise; integers named ``...mask``, ones (no token is padding); other integers (token ids), random ids
    in [0, ``vocab``), zeros when the vocabulary is not known."""
    check_seed(seed)
    generator = torch.Generator(device="cpu").manual_seed(seed)

    def empty(shape: Any, dtype: torch.dtype = torch.float32, name: str = "") -> torch.Tensor:
        try:
            if not real:
                return torch.empty(tuple(shape), device="meta", dtype=dtype)
            if dtype.is_floating_point or dtype.is_complex:
                return torch.randn(tuple(shape), dtype=dtype, generator=generator).to(device)
            if (name or "").lower().endswith("mask"):
                return torch.ones(tuple(shape), dtype=dtype, device=device)
            if vocab and dtype != torch.bool:  # ids the dtype holds: a uint8 input reads ids 0..255 at most
                high = min(vocab, torch.iinfo(dtype).max + 1)
                return torch.randint(0, high, tuple(shape), dtype=dtype, generator=generator).to(device)
            return torch.zeros(tuple(shape), dtype=dtype, device=device)
        except (RuntimeError, TypeError, OverflowError):  # a size or an element count beyond int64
            raise UserError(f"input {'x'.join(map(str, shape))} is too large to describe") from None

    return empty


def model_inputs(shapes: Any, options: Any, empty: Empty,
                 dtype: torch.dtype) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
    """The positional and keyword arguments of the forward: a tensor per input (batch first), of
    its own dtype where one is given (token ids: int64, id 0), else ``dtype``; the keyword ones and
    the forward's options by name."""
    args: list[torch.Tensor] = []
    kwargs: dict[str, Any] = {}
    for s in shapes:
        t = empty(tuple(s), input_dtype(getattr(s, "dtype", None)) or dtype, getattr(s, "name", None) or "")
        if getattr(s, "name", None):
            kwargs[s.name] = t
        else:
            args.append(t)
    for o in options:
        kwargs[o.name] = o.value
    return tuple(args), kwargs


def real_inputs(shapes: Any, options: Any, device: str,
                dtype: torch.dtype) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
    """The forward's arguments for a real run on ``device`` (``model_inputs`` on real tensors): every
    real run (``memory --measure``, a measured training step, ``--engine fvcore``) makes them so, the
    inputs' own dtypes (token ids: int64), keywords and forward options included."""
    return model_inputs(shapes, options, tensor_maker(real=True, device=device), dtype)


def floating_dtype(model: nn.Module) -> torch.dtype:
    """The dtype a model's float inputs take: its parameters' (or buffers') floating dtype, fp32 if none."""
    return next((t.dtype for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()), torch.float32)


def module_inputs(model: nn.Module, inputs: Inputs, batch: int | None,
                  empty: Empty) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
    """The forward's arguments for an ``nn.Module`` given as such: float inputs take the model's
    floating dtype (an fp16 or bf16 model gets fp16 or bf16 inputs), the batch goes first."""
    if not inputs.shapes:
        if inputs.options:
            raise UserError("input_size (C,H,W) is required for a model that is not registered (forward options "
                            "alone do not say its inputs)")
        raise UserError("input_size (C,H,W) is required for a model that is not registered")
    dtype = floating_dtype(model)
    shapes = [s.batched(batch or 1) if isinstance(s, InputShape) else (batch or 1, *s) for s in inputs.shapes]
    return model_inputs(shapes, inputs.options, empty, dtype)

