"""Resolving a model spec against the zoo (or an external factory): what to build, with which
options, and the inputs to feed it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from archlab.errors import UserError, shorten
from archlab.models._registry import ModelInfo
from archlab.models.catalog import get_model_info
from archlab.spec import (ForwardOption, Inputs, InputShape, InputSize, ModelSpec, check_batch, coerce, input_text,
                          literal, parse_positive_int, parse_spec)

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
    forward_options: tuple[ForwardOption, ...] = ()  # non-tensor keyword arguments of the forward

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
    input_size: InputSize = None,
    batch: int | None = None,
    alpha: float | None = None,
    options: dict[str, Any] | Iterable[tuple[str, Any]] | None = None,
    forward_kw: Any = None,
    inputs: Inputs | None = None,
) -> Resolved:
    """Resolve a model name or spec and command-line style settings.

    A setting may come from the spec (``mobilenet@alpha=0.5``), from ``options`` (``--set``) and
    from its own argument (``alpha=``, ``res=``, ``batch=``, ``input_size=``); given in more than
    one place, it must have the same value there (else a ``UserError``: nothing is silently
    overridden). ``forward_kw``: non-tensor keyword options of the forward (``--forward-kw``), with the
    input size's or, without one, the model's own inputs. ``inputs``: the input size and forward
    options as one ``archlab.spec.Inputs`` (else ``input_size`` and ``forward_kw`` are read into one).
    """
    given = Inputs.of(input_size if inputs is None else inputs, forward_kw)
    text = str(spec)
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    # options without an input (--forward-kw alone): the model's own inputs, with these options
    forward_extra = given.options if not given.shapes else ()
    info = get_model_info(spec.name)
    extra_options = dict(options or {})
    where = f"in '{shorten(text)}'"
    res = _agreed("res", [(f"res={spec.res} {where}", spec.res),
                          (f"--set res={extra_options.get('res')}", _typed_res(extra_options.pop("res", None), "res")),
                          (f"--res {res}", res)])
    batch = _agreed("batch", [(f"batch={spec.batch} {where}", spec.batch),
                              (f"--set batch={extra_options.get('batch')}",
                               _typed_res(extra_options.pop("batch", None), "batch")),
                              (f"--batch {batch}", batch)])
    chosen: Inputs | None = _agreed("the input size", [
        (f"input={_text(spec.input_size)} {where}", _inputs(spec.input_size)),
        (f"--set input={extra_options.get('input')}", _inputs(extra_options.pop("input", None))),
        (f"--input-size {given.text}", given if given.shapes else None)])
    typed = _typed_options(info, spec, extra_options, alpha, where)
    batch = check_batch(batch) or 1
    if res is not None and chosen is not None:
        raise UserError("give either a resolution (--res, res=) or an input size (--input-size, input=), not both")
    declared = None
    user_input = chosen is not None
    if chosen is None and info.external:
        declared = info.input_shape(**typed)  # a factory's or model's declared inputs, several or of a dtype
        if res is None and (isinstance(declared, list) or getattr(declared, "described", False)):
            chosen = Inputs.declared(declared)
    extra: tuple[tuple[int, ...], ...] = ()
    forward_options: tuple[ForwardOption, ...] = ()
    if chosen is not None:
        first, *rest = chosen.shapes
        extra = tuple(_batched(s, batch) for s in rest)
        forward_options = chosen.options
    parts = [f"{k}={v}" for k, v in typed.items()]
    if chosen is not None:
        shape = first
        try:
            # a default read from the built model is not looked for when an input is given (no second build)
            default = declared if declared is not None else None if reads_the_model(info) \
                else tuple(info.input_shape(**typed))
        except UserError:
            default = None
        if default is not None and all(isinstance(d, int) for d in default) and not extra and not forward_options and not getattr(shape, "described", False) \
                and len(shape) != len(default):
            form = "C,H,W" if len(default) == 3 else f"{len(default)} numbers"
            raise UserError(f"--input-size must be {form} for '{shorten(info.name)}' (its default input is "
                            f"{'x'.join(map(str, default))}), got {'x'.join(map(str, shape))}")
        if shape != default or forward_options or any(getattr(x, "described", False) for x in chosen.shapes):
            parts.append("input=" + chosen.text)
    else:
        shape = declared if declared is not None else tuple(info.input_shape(**typed))
        shape = shape if isinstance(shape, InputShape) else tuple(shape)
        if res is not None:
            if res < 1:
                raise UserError(f"resolution must be at least 1, got {res}")
            if len(shape) != 3:
                raise UserError(f"--res sets H = W of a C,H,W input; '{info.name}' takes {len(shape)}-d inputs")
            if res != shape[1] or res != shape[2]:
                parts.append(f"res={res}")
            shape = (shape[0], res, res)
    if forward_extra:
        forward_options = _with_options(forward_options, forward_extra, overrides=not user_input)
        # the label names every input with the options, so that it reads back as the same spec
        parts = [p for p in parts if not p.startswith(("input=", "res="))]
        parts.append("input=" + ";".join([input_text(s) for s in (shape, *[_unbatched(e) for e in extra])]
                                         + [str(o) for o in forward_options]))
    label = info.name + ("@" + ",".join(parts) if parts else "")
    return Resolved(info, typed, _batched(shape, batch), label, extra, forward_options)


def _typed_options(info: ModelInfo, spec: ModelSpec, extra: dict[str, Any], alpha: float | None,
                   where: str) -> dict[str, Any]:
    """The builder options of the spec and of ``extra`` (``--set``, whose input keys are taken
    already) and ``alpha``, agreed where given twice, checked against the model and typed."""
    known = info.options
    raw: dict[str, Any] = dict(spec.options)
    for key, value in extra.items():
        if key in raw:
            _agreed(key, [(f"{key}={raw[key]} {where}", raw[key]), (f"--set {key}={value}", value)])
        raw[key] = value
    if alpha is not None:
        if "alpha" not in known:
            raise UserError(f"model '{shorten(info.name)}' has no width multiplier (--alpha)")
        if "alpha" in raw:
            source = f"alpha={raw['alpha']} {where}" if "alpha" not in extra else f"--set alpha={raw['alpha']}"
            shown = f"{alpha:g}" if isinstance(alpha, float) else alpha
            _agreed("alpha", [(source, raw["alpha"]), (f"--alpha {shown}", alpha)])
        raw["alpha"] = alpha
    typed: dict[str, Any] = {}
    for key, value in raw.items():
        info.check_option(key)
        typed[key] = coerce(key, value, known[key]) if key in known else literal(value)
    if "alpha" in typed and not (isinstance(typed["alpha"], (int, float)) and typed["alpha"] > 0):
        raise UserError(f"alpha must be greater than 0, got {typed['alpha']}")
    return typed


def _with_options(given: tuple[ForwardOption, ...], extra: tuple[ForwardOption, ...],
                  overrides: bool) -> tuple[ForwardOption, ...]:
    """The forward options ``given`` with ``extra`` (``--forward-kw``): an option of both is refused
    when its values differ, unless ``overrides`` (``given`` is only what the model declares)."""
    mine = {o.name: o for o in extra}
    for o in given:
        other = mine.get(o.name)
        if other is not None and not overrides and (other.value != o.value or type(other.value) is not type(o.value)):
            raise UserError(f"the forward option '{o.name}' is given twice with different values: {o} in the "
                            f"input size and --forward-kw {other}; give it once")
    return tuple(o for o in given if o.name not in mine) + extra


def _batched(shape: tuple[int, ...], batch: int) -> tuple[int, ...]:
    return shape.batched(batch) if isinstance(shape, InputShape) else (batch, *shape)


def _unbatched(shape: tuple[int, ...]) -> tuple[int, ...]:
    return InputShape(shape[1:], shape.dtype, shape.name) if isinstance(shape, InputShape) else shape[1:]


def reads_the_model(info: ModelInfo) -> bool:
    """Whether the model's default input is read from the built model (its ``input_size`` or
    ``example_inputs`` attribute): finding it builds the model."""
    return bool(getattr(info.input_spec, "builds_the_model", False))


def _same(a: Any, b: Any) -> bool:
    """Two settings of one option are the same value: '0.5' and 0.5 are, '10' and '20' are not;
    a shape as a tuple or a list of tuples compares by its numbers."""
    def norm(v: Any) -> Any:
        if isinstance(v, str):
            return literal(v)
        if isinstance(v, (tuple, list)):
            return tuple(norm(x) for x in v)
        return v

    return norm(a) == norm(b)


def _agreed(what: str, given: list[tuple[str, Any]]) -> Any:
    """The one value of a setting given in several places (``(how it was given, value)``, value
    None where it was not): the value, or None; a ``UserError`` when two places disagree."""
    present = [(how, value) for how, value in given if value is not None]
    for how, value in present[1:]:
        if not _same(value, present[0][1]):
            raise UserError(f"{what} is given twice with different values: {present[0][0]} and {how}; give it once")
    return present[0][1] if present else None


def _typed_res(value: Any, what: str) -> Any:
    return parse_positive_int(value, what) if isinstance(value, str) else value


def _inputs(value: Any) -> Inputs | None:
    """An input size given in a spec or by ``--set input=`` (a text, or parsed already), or None."""
    return None if value is None else Inputs.of(value)


def _text(size: Any) -> str:
    return "" if size is None else Inputs.of(size).text


def build(name: str, **options: Any) -> nn.Module:
    """Build a registered model (a real ``nn.Module`` with initialised weights)."""
    spec = parse_spec(name)
    return resolve(spec, options=options).build()
