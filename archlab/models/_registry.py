"""The one registry of models: ``register_model``, ``ModelInfo`` and ``Reference``.

Every model of the zoo is registered here once, by a decorator on its builder
function (the family modules import this module and nothing above it). Lookups over the
whole zoo, which import every family first, are in ``archlab.models.catalog``: ``archlab
list``, the CLI's name checks, ``reports/zoo.md`` and the registry-parametrized tests all
read this registry through it; no second list of names exists anywhere.
"""

from __future__ import annotations

import functools
import fnmatch
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from archlab.errors import UserError, first_line, shorten
from archlab.spec import Required


@dataclass(frozen=True)
class Reference:
    """A published number that the model must reproduce exactly.

    ``params`` is the parameter count of a reference implementation that has
    the same layers (torchvision, timm, ...); ``options`` are the builder
    options under which the equality holds (e.g. auxiliary heads on).
    """

    params: int
    source: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    paper: str
    builder: Callable[..., Any]
    input_spec: tuple[int, int, int] | Callable[..., tuple[int, int, int]] | None
    reference: Reference | None = None
    note: str = ""
    # External models (archlab.models.external): their options with defaults, or None when the
    # factory takes **kwargs and any option must be passed through.
    open_options: dict[str, Any] | None = field(default=None)

    @property
    def external(self) -> bool:
        return self.note == "external"

    def input_shape(self, **options: Any) -> tuple[int, int, int]:
        """C, H, W of the default input; a callable spec receives the builder options
        (EfficientNet's compound builder derives its resolution from phi)."""
        if callable(self.input_spec):
            merged = {**self.options, **options}
            found = self.input_spec(**merged)
            return found if isinstance(found, list) or hasattr(found, "dtype") else tuple(found)
        if self.input_spec is None:
            raise UserError(f"'{self.name}' has no default input size: give --input-size C,H,W")
        return self.input_spec

    @property
    def options(self) -> dict[str, Any]:
        """The builder's keyword options and their defaults."""
        if self.external:
            return dict(self.open_options or {})
        return dict(_builder_options(self.builder))

    def check_option(self, key: str) -> None:
        """Refuse an option the builder does not take (an external factory taking **kwargs
        takes any); the one place of that message, for resolve() and build()."""
        if self.external and self.open_options is None:
            return
        known = self.options
        if key not in known:
            choices = ", ".join(sorted(known)) or "none"
            raise UserError(f"model '{shorten(self.name)}' has no option '{shorten(key)}' (its options: {choices})")

    def build(self, **options: Any) -> Any:
        if self.external and self.open_options is None:
            return self.builder(**options)
        known = self.options
        for key in options:
            self.check_option(key)
        missing = [key for key, default in known.items() if isinstance(default, Required) and key not in options]
        if missing:
            given = ",".join(f"{key}=..." for key in missing)
            raise UserError(f"model '{self.name}' needs option{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(repr(k) for k in missing)}: give {self.name}@{given}")
        if self.external or not options:
            return self.builder(**options)  # an external builder reports its own failures
        try:
            return self.builder(**options)
        except (TypeError, ValueError, OverflowError, RuntimeError) as e:  # an option the layers refuse
            given = ",".join(f"{k}={v}" for k, v in options.items())
            first = first_line(e)
            raise UserError(f"building {self.name}@{given} failed: {first}") from None


@functools.lru_cache(maxsize=None)
def _builder_options(builder: Callable[..., Any]) -> tuple[tuple[str, Any], ...]:
    sig = inspect.signature(builder)
    return tuple(
        (p.name, p.default)
        for p in sig.parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is not p.empty
    )


MODELS: dict[str, ModelInfo] = {}


def register_model(
    *,
    family: str,
    paper: str,
    input_shape: tuple[int, int, int] | Callable[..., tuple[int, int, int]] = (3, 224, 224),
    reference: Reference | None = None,
    note: str = "",
    name: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a model builder under its function name (or ``name``)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        key = name or fn.__name__
        if key in MODELS:
            raise ValueError(f"model '{key}' is registered twice")
        MODELS[key] = ModelInfo(key, family, paper, fn, input_shape if callable(input_shape) else tuple(input_shape), reference, note)
        return fn

    return decorate


def natural_key(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def match_names(names: list[str], pattern: str | None) -> list[str]:
    """``names`` that ``pattern`` selects (see ``list_models``), in their order."""
    if not pattern:
        return list(names)
    pattern = pattern.lower()  # the zoo's names are lower case
    if not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"  # a plain word: the names that contain it
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]
