"""Model specs: ``name@key=value,...`` names a model and its options in one word.

``res``, ``batch`` and ``input`` (``CxHxW``) set the input; every other key is a
builder option of the model (``alpha``, ``stacks``, ``aux_logits`` ...), parsed
to the type of that option's default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence, Union

from archlab.errors import UserError, shorten
from archlab.units import shape_str


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


# The dtypes an input may be given (``int64:128``): PyTorch's names, and the short ones it accepts too.
INPUT_DTYPES = ("float32", "float", "float16", "half", "bfloat16", "float64", "double", "int64", "long", "int32",
                "int", "int16", "short", "int8", "uint8", "bool", "complex64", "complex128")
_OPTION_WORDS = ("true", "false", "none")


class InputShape(tuple):
    """One input of a model: its shape (one sample's, or batch first once resolved) as a tuple of
    ints, and, where given, its dtype (``int64``; none: the model's floating dtype) and the keyword
    that passes it to the forward (``input_ids``; none: positional)."""

    dtype: str | None
    name: str | None

    def __new__(cls, dims: Any, dtype: str | None = None, name: str | None = None) -> InputShape:
        self = super().__new__(cls, tuple(dims))
        self.dtype = dtype
        self.name = name
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return InputShape, (tuple(self), self.dtype, self.name)

    def batched(self, batch: int) -> InputShape:
        """This input with the batch prepended."""
        return InputShape((batch, *self), self.dtype, self.name)

    @property
    def described(self) -> bool:
        """Whether a dtype or a keyword was given (then the header shows them)."""
        return self.dtype is not None or self.name is not None


@dataclass(frozen=True)
class ForwardOption:
    """A non-tensor keyword argument of the forward (``use_cache=false`` in ``--input-size``)."""

    name: str
    value: Any

    def __str__(self) -> str:
        shown = str(self.value).lower() if isinstance(self.value, bool) or self.value is None else self.value
        return f"{self.name}={shown}"


def input_text(shape: Any) -> str:
    """One input as the user writes it: ``3x224x224``, ``int64:1x128``, ``input_ids=int64:1x128``
    (``units.shape_str``, which every report uses; an empty shape is '')."""
    return shape_str(shape) if len(shape) else ""


def _torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def input_dtype(name: str | None) -> Any:
    """The ``torch.dtype`` of an input's dtype name (None stays None)."""
    return None if name is None else _torch_dtype(name)


def _parse_one_input(chunk: str, text: str) -> InputShape | ForwardOption:
    name = None
    body = chunk.strip()
    if "=" in body:
        name, _, body = body.partition("=")
        name, body = name.strip(), body.strip()
        if not name.isidentifier():
            raise UserError(f"--input-size: '{shorten(name)}' is not a keyword argument name (in '{shorten(text)}')")
        if not body:
            raise UserError(f"--input-size: the input '{name}=' has no shape (write {name}=128, or "
                            f"{name}=int64:128 for token ids)")
        if body.lower() in _OPTION_WORDS:  # a non-tensor option of the forward: use_cache=false
            return ForwardOption(name, {"true": True, "false": False, "none": None}[body.lower()])
    dtype = None
    if ":" in body:
        dtype, _, body = body.partition(":")
        dtype = dtype.strip()
        if dtype not in INPUT_DTYPES:
            raise UserError(f"--input-size: unknown dtype '{shorten(dtype)}' (choose one of {', '.join(INPUT_DTYPES)})")
    parts = body.replace("x", ",").replace("×", ",").split(",")
    if not body.strip() or not all(p.strip() for p in parts):
        raise UserError(f"--input-size takes each input's shape as positive integers (C,H,W, or any rank: 64, "
                        f"3,16,112,112), with an optional dtype (int64:128) and keyword (input_ids=int64:128), "
                        f"several separated by ';', got '{shorten(text)}'")
    return InputShape((parse_positive_int(p, "each --input-size value") for p in parts), dtype, name)


def parse_input_size(text: str) -> tuple[int, ...] | list[Any]:
    """``C,H,W`` (or ``CxHxW``, or any rank: ``64``, ``3,16,112,112``) -> a tuple of positive
    ints; an input may carry a dtype (``int64:128``) and a keyword (``input_ids=int64:128``), and
    several are separated by ``;`` (``3,224,224;10``) -> a list; a keyword whose value is
    ``true``, ``false`` or ``none`` is a non-tensor option of the forward (``use_cache=false``).
    Each shape is one sample's: the batch is prepended."""
    items = [_parse_one_input(chunk, str(text)) for chunk in str(text).split(";")]
    names = [i.name for i in items if i.name]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"--input-size gives the keyword '{twice[0]}' twice")
    if len(items) == 1 and isinstance(items[0], InputShape):
        only = items[0]
        return only if only.described else tuple(only)
    if not any(isinstance(i, InputShape) for i in items):
        raise UserError(f"--input-size gives no tensor input, only options of the forward: '{shorten(text)}'")
    return [i if isinstance(i, ForwardOption) or i.described else tuple(i) for i in items]


def _forward_value(name: str, raw: str, text: str) -> Any:
    """A ``--forward-kw`` value: true, false, none (any case), a whole number or a number."""
    low = raw.strip().lower()
    if low in _OPTION_WORDS:
        return {"true": True, "false": False, "none": None}[low]
    for cast in (int, float):
        try:
            value = cast(raw.strip())
        except ValueError:
            continue
        if value == value and value not in (float("inf"), float("-inf")):  # not nan or inf
            return value
    raise UserError(f"--forward-kw {shorten(name)}={shorten(raw)}: a forward option's value is true, false, "
                    f"none, a whole number or a number (tensor inputs go in --input-size), in '{shorten(text)}'")


def parse_forward_kw(texts: Any) -> list[ForwardOption]:
    """``--forward-kw`` (repeatable, or several separated by ``;``) -> the non-tensor keyword options
    of the forward, ``use_cache=true`` -> ``ForwardOption("use_cache", True)``. The API's
    ``forward_kw`` may also be a dict (any non-tensor value)."""
    if texts is None:
        return []
    if isinstance(texts, dict):
        out = []
        for name, value in texts.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise UserError(f"forward_kw: {name!r} is not a keyword argument name")
            if type(value).__name__ in ("Tensor", "Parameter") or hasattr(value, "__torch_function__"):
                raise UserError(f"forward_kw: '{name}' is a tensor; tensor inputs go in input_size "
                                f"('{name}=int64:128')")
            out.append(ForwardOption(name, value))
        return out
    if isinstance(texts, str):
        texts = [texts]
    out = []
    seen: dict[str, Any] = {}
    for text in texts:
        for chunk in str(text).split(";"):
            if not chunk.strip():
                raise UserError(f"--forward-kw expects name=value (use_cache=true), got '{shorten(text)}'")
            name, sep, raw = chunk.partition("=")
            name = name.strip()
            if not sep or not name or not raw.strip():
                raise UserError(f"--forward-kw expects name=value (use_cache=true), got '{shorten(chunk.strip())}'")
            if not name.isidentifier():
                raise UserError(f"--forward-kw: '{shorten(name)}' is not a keyword argument name")
            value = _forward_value(name, raw, str(text))
            if name in seen:
                if seen[name] != value or type(seen[name]) is not type(value):
                    raise UserError(f"--forward-kw gives '{name}' twice with different values; give it once")
                continue
            seen[name] = value
            out.append(ForwardOption(name, value))
    return out


def with_forward_kw(input_size: Any, forward_kw: Any) -> Any:
    """``input_size`` (a string, a shape, a list of inputs, or None) with the forward options of
    ``forward_kw`` (``--forward-kw`` texts or a dict) after its inputs, in the list form that
    ``parse_input_size`` returns. Without an input size, the list holds the options only: the
    model's own (default or declared) inputs, with these options. A keyword given both ways must
    have the same value (given once, it is kept once); one naming a tensor input is refused."""
    options = parse_forward_kw(forward_kw)
    if not options:
        return input_size
    if isinstance(input_size, str):
        input_size = parse_input_size(input_size)
    if input_size is None:
        items: list[Any] = []
    elif isinstance(input_size, list) or (isinstance(input_size, tuple) and input_size
                                          and isinstance(input_size[0], (tuple, list, ForwardOption))):
        items = list(input_size)
    else:
        items = [input_size]
    given = {i.name: i for i in items if isinstance(i, ForwardOption)}
    tensors = {getattr(i, "name", None) for i in items if not isinstance(i, ForwardOption)}
    for option in options:
        if option.name in tensors:
            raise UserError(f"--forward-kw {option}: '{option.name}' is a tensor input of --input-size already")
        before = given.get(option.name)
        if before is None:
            items.append(option)
        elif before.value != option.value or type(before.value) is not type(option.value):
            raise UserError(f"the forward option '{option.name}' is given twice with different values: "
                            f"{before} in --input-size and --forward-kw {option}; give it once")
    return items


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


def check_batch(batch: Any) -> int | None:
    """A batch size as the API and the CLI take it: None (the default, 1) or a whole number >= 1."""
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise UserError(f"batch must be a whole number of at least 1, got {batch!r}")
    return batch


def check_depth(depth: Any) -> int:
    """The depth of a per-layer table: a whole number >= 0."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise UserError(f"depth must be a whole number of at least 0, got {depth!r}")
    return depth


# Every form an input size is given in, at the edge (the CLI, the API): a text ("3,224,224",
# "input_ids=int64:128;use_cache=false"), one shape, several shapes and forward options, or an
# Inputs made already. Below the edge, only Inputs.
InputSize = Union[str, Sequence[int], Sequence[Any], "Inputs", None]


def _is_shape(x: Any) -> bool:
    return isinstance(x, (tuple, list)) and bool(x) and all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in x)


@dataclass(frozen=True)
class Inputs:
    """What the forward is fed, as the user gave it, parsed and checked once at the edge (the CLI's
    ``--input-size``/``--forward-kw``, the API's ``input_size=``/``forward_kw=``): the tensor inputs,
    one sample's shape each (the batch is prepended when the tensors are made), with a dtype and a
    keyword where given, and the forward's non-tensor keyword options.

    ``Inputs.of`` takes every accepted form: ``"3,224,224"``, ``(3, 224, 224)``, ``"int64:128"``,
    several (``"3,16,16;10"``, ``[(3, 16, 16), (10,)]``), keywords (``"input_ids=int64:128"``),
    options (``"use_cache=false"`` in the size, or ``forward_kw``), or an ``Inputs`` already made.
    No shape means the model's own inputs (with the options, if any)."""

    shapes: tuple[tuple[int, ...], ...] = ()  # a tuple, or an InputShape where a dtype or keyword is given
    options: tuple[ForwardOption, ...] = ()

    @classmethod
    def of(cls, input_size: InputSize = None, forward_kw: Any = None) -> Inputs:
        if isinstance(input_size, Inputs):
            made = input_size
        else:
            if isinstance(input_size, str):
                input_size = parse_input_size(input_size)
            made = cls._of_size(input_size)
        if forward_kw is None:
            return made
        merged = with_forward_kw(made.size, forward_kw)
        return cls._of_size(merged)

    @classmethod
    def _of_size(cls, size: Any, check: bool = True) -> Inputs:
        if size is None:
            return cls()
        several = isinstance(size, list) or (isinstance(size, tuple) and bool(size) and all(
            isinstance(s, (tuple, list, ForwardOption)) for s in size))
        items = list(size) if several else [size]
        shapes = [s for s in items if not isinstance(s, ForwardOption)]
        for shape in shapes:
            if check and not _is_shape(shape):
                raise UserError(f"input_size must be positive whole numbers (C,H,W), or a list of such, got {size!r}")
        return cls(tuple(s if isinstance(s, InputShape) and s.described else tuple(s) for s in shapes),
                   tuple(s for s in items if isinstance(s, ForwardOption)))

    @classmethod
    def declared(cls, size: Any) -> Inputs:
        """The inputs a model declares (a factory's ``input_size`` or ``example_inputs``), as they are."""
        return cls._of_size(size, check=False)

    @property
    def text(self) -> str:
        """The inputs as ``--input-size`` writes them: ``3x224x224``, ``input_ids=int64:128;use_cache=false``."""
        return ";".join([input_text(s) for s in self.shapes] + [str(o) for o in self.options])

    @property
    def given(self) -> bool:
        """Whether anything was given (else: the model's own inputs, as they are)."""
        return bool(self.shapes or self.options)

    @property
    def size(self) -> Any:
        """The input size in ``parse_input_size``'s form: one shape; a list of the inputs and options;
        the options alone (the model's own inputs, with them); None when nothing was given."""
        if len(self.shapes) == 1 and not self.options:
            return self.shapes[0]
        return [*self.shapes, *self.options] if self.given else None
