"""Model specs: ``name@key=value,...`` names a model and its options in one word.

``res``, ``batch`` and ``input`` (``CxHxW``) set the input; every other key is a
builder option of the model (``alpha``, ``stacks``, ``aux_logits`` ...), parsed
to the type of that option's default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archlab.errors import UserError, shorten


@dataclass(frozen=True)
class ModelSpec:
    name: str
    options: dict[str, str] = field(default_factory=dict)  # raw strings, typed by resolve()
    res: int | None = None
    batch: int | None = None
    input_size: tuple[int, ...] | None = None

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.options.items()]
        if self.res is not None:
            parts.append(f"res={self.res}")
        if self.input_size is not None:
            parts.append("input=" + "x".join(map(str, self.input_size)))
        if self.batch is not None:
            parts.append(f"batch={self.batch}")
        return self.name + ("@" + ",".join(parts) if parts else "")


def parse_positive_int(text: str, what: str, minimum: int = 1) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise UserError(f"{what} must be an integer, got '{text}'") from None
    if value < minimum:
        raise UserError(f"{what} must be at least {minimum}, got {value}")
    return value


def parse_input_size(text: str) -> tuple[int, ...] | list[tuple[int, ...]]:
    """``C,H,W`` (or ``CxHxW``) -> a tuple of positive ints; several inputs separated by ``;``
    (``3,224,224;10``, for a model whose forward takes two tensors) -> a list of tuples.
    Each shape is one sample's: the batch is prepended."""
    chunks = str(text).split(";")
    shapes = []
    for chunk in chunks:
        parts = chunk.replace("x", ",").replace("×", ",").split(",")
        if not chunk.strip() or not all(p.strip() for p in parts) or (len(chunks) == 1 and len(parts) != 3):
            raise UserError(f"--input-size must be C,H,W (three positive integers; several inputs separated by ';'), "
                            f"got '{text}'")
        shapes.append(tuple(parse_positive_int(p, "each --input-size value") for p in parts))
    return shapes[0] if len(shapes) == 1 else shapes


def parse_assignment(text: str, flag: str = "--set") -> tuple[str, str]:
    key, sep, value = str(text).partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
        raise UserError(f"{flag} expects key=value, got '{shorten(text)}'")
    return key, value


def parse_spec(text: str) -> ModelSpec:
    text = str(text).strip()
    name, sep, rest = text.partition("@")
    name = name.strip()
    if not name:
        raise UserError(f"empty model name in '{shorten(text)}'")
    options: dict[str, str] = {}
    res = batch = None
    input_size = None
    if sep:
        if not rest.strip():
            raise UserError(f"model spec '{shorten(text)}' has '@' but no key=value options after it")
        seen: set[str] = set()
        for item in rest.split(","):
            key, value = parse_assignment(item, flag=f"model spec '{shorten(text)}'")
            if key in seen:
                raise UserError(f"model spec '{shorten(text)}' gives '{shorten(key)}' twice")
            seen.add(key)
            if key == "res":
                res = parse_positive_int(value, "res")
            elif key == "batch":
                batch = parse_positive_int(value, "batch")
            elif key == "input":
                input_size = parse_input_size(value)
            else:
                options[key] = value
    return ModelSpec(name, options, res, batch, input_size)


class Required:
    """The "default" of a factory's parameter that has none: the spec must give it."""

    def __repr__(self) -> str:
        return "(required)"


REQUIRED = Required()


def literal(raw: Any) -> Any:
    """An option of a factory that declares no default: true/false, an int, a float, else the string."""
    if not isinstance(raw, str):
        return raw
    low = raw.lower()
    if low in _TRUE - {"1"}:
        return True
    if low in _FALSE - {"0"}:
        return False
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false"}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce(key: str, raw: Any, default: Any) -> Any:
    """Parse ``raw`` to the type of ``default`` (an option's default value); an option whose
    default says nothing of its type (None, or a required option) is read as a literal."""
    if not isinstance(raw, str):
        return raw
    if default is None or isinstance(default, Required):
        return literal(raw)
    try:
        if isinstance(default, bool):
            low = raw.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        kind = type(default).__name__
        raise UserError(f"option '{key}' must be {_TYPE_WORDS.get(kind, kind)}, got '{raw}'") from None
    return raw
