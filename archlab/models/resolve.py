"""Resolving a model spec against the zoo (or an external factory): what to build, with which
options, and the inputs to feed it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from archlab.errors import UserError
from archlab.models._registry import ModelInfo
from archlab.models.catalog import get_model_info
from archlab.spec import ModelSpec, coerce, literal, parse_input_size, parse_positive_int, parse_spec

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Resolved:
    """A model spec resolved against the registry: what to build and what to feed it."""

    info: ModelInfo
    options: dict[str, Any]  # typed builder options (only those given)
    input_shape: tuple[int, ...]  # N, C, H, W (of the first input)
    label: str  # the spec as the user should read it
    extra_inputs: tuple[tuple[int, ...], ...] = ()  # further inputs, batch first, for multi-input models

    @property
    def input_shapes(self) -> tuple[tuple[int, ...], ...]:
        return (self.input_shape, *self.extra_inputs)

    def build(self, device: str | None = None) -> nn.Module:
        import torch

        if device is None:
            return self.info.build(**self.options)
        with torch.device(device):
            return self.info.build(**self.options)


def resolve(
    spec: str | ModelSpec,
    *,
    res: int | None = None,
    input_size: tuple[int, ...] | None = None,
    batch: int | None = None,
    alpha: float | None = None,
    options: dict[str, Any] | Iterable[tuple[str, Any]] | None = None,
) -> Resolved:
    """Resolve a model name or spec and command-line style overrides.

    Explicit arguments override the spec's own ``@key=value`` settings.
    """
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    info = get_model_info(spec.name)
    known = info.options
    raw: dict[str, Any] = dict(spec.options)
    extra_options = dict(options or {})
    # --set res=/batch=/input= set the input, as they do in a spec; an explicit argument still wins
    if "res" in extra_options:
        value = extra_options.pop("res")
        res = res if res is not None else (parse_positive_int(value, "res") if isinstance(value, str) else value)
    if "batch" in extra_options:
        value = extra_options.pop("batch")
        batch = batch if batch is not None else (parse_positive_int(value, "batch") if isinstance(value, str)
                                                 else value)
    if "input" in extra_options:
        value = extra_options.pop("input")
        input_size = input_size if input_size is not None else (parse_input_size(value) if isinstance(value, str)
                                                                else value)
    raw.update(extra_options)
    if alpha is not None:
        if "alpha" not in known:
            raise UserError(f"model '{info.name}' has no width multiplier (--alpha)")
        raw["alpha"] = alpha
    typed: dict[str, Any] = {}
    for key, value in raw.items():
        info.check_option(key)
        typed[key] = coerce(key, value, known[key]) if key in known else literal(value)
    if "alpha" in typed and not (isinstance(typed["alpha"], (int, float)) and typed["alpha"] > 0):
        raise UserError(f"alpha must be greater than 0, got {typed['alpha']}")
    res = res if res is not None else spec.res
    input_size = input_size if input_size is not None else spec.input_size
    batch = batch if batch is not None else (spec.batch or 1)
    if batch < 1:
        raise UserError(f"batch must be at least 1, got {batch}")
    if res is not None and input_size is not None:
        raise UserError("give either a resolution (--res, res=) or an input size (--input-size, input=), not both")
    extra: tuple[tuple[int, ...], ...] = ()
    if input_size is not None and input_size and isinstance(input_size[0], (tuple, list)):
        input_size, *rest = [tuple(s) for s in input_size]
        extra = tuple((batch, *s) for s in rest)
    parts = [f"{k}={v}" for k, v in typed.items()]
    if input_size is not None:
        shape = tuple(input_size)
        try:
            default = tuple(info.input_shape(**typed))
        except UserError:
            default = None
        if shape != default:
            parts.append("input=" + ";".join("x".join(map(str, s)) for s in (shape, *[e[1:] for e in extra])))
    else:
        shape = tuple(info.input_shape(**typed))
        if res is not None:
            if res < 1:
                raise UserError(f"resolution must be at least 1, got {res}")
            if len(shape) != 3:
                raise UserError(f"--res sets H = W of a C,H,W input; '{info.name}' takes {len(shape)}-d inputs")
            if res != shape[1] or res != shape[2]:
                parts.append(f"res={res}")
            shape = (shape[0], res, res)
    label = info.name + ("@" + ",".join(parts) if parts else "")
    return Resolved(info, typed, (batch, *shape), label, extra)


def build(name: str, **options: Any) -> nn.Module:
    """Build a registered model (a real ``nn.Module`` with initialised weights)."""
    spec = parse_spec(name)
    return resolve(spec, options=options).build()
