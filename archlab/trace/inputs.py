"""The forward's arguments: meta (or, for ``--engine real``, real) tensors made from an ``Inputs``
(``archlab.spec``) for a resolved spec or for an ``nn.Module``, and how reports name them."""

from __future__ import annotations

from typing import Any, Callable

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


def tensor_maker(real: bool = False, device: str = "cpu") -> Empty:
    """``empty(shape, dtype)``: a meta tensor; with ``real``, one on ``device`` holding values
    (floats: normal noise from a generator seeded once per maker; integers: zeros)."""
    generator = torch.Generator(device="cpu").manual_seed(0)

    def empty(shape: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        try:
            if not real:
                return torch.empty(tuple(shape), device="meta", dtype=dtype)
            if dtype.is_floating_point or dtype.is_complex:
                return torch.randn(tuple(shape), dtype=dtype, generator=generator).to(device)
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
        t = empty(tuple(s), input_dtype(getattr(s, "dtype", None)) or dtype)
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

