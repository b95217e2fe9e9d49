"""One mechanism for the per-op tables of the analyses: cost rules, shape rules, the attributes
the trace records, the receptive-field walker's dispatch, memory's per-op workspace.

An ``OpRules`` table maps an ATen op to a value (a function, usually). An op may be named

* ``"aten::cos"`` or ``"cos"`` (the namespace defaults to ``aten``), or ``torch.ops.aten.cos``
  (an ``OpOverloadPacket``): every overload of the op;
* ``"aten::upsample_nearest2d.vec"``, ``"aten.upsample_nearest2d.vec"`` (a traced op's
  ``target``) or ``torch.ops.aten.upsample_nearest2d.vec`` (an ``OpOverload``): that overload only.

All of these are normalised to one key, ``"ns::name"`` or ``"ns::name.overload"``. Registering
a key twice raises (as PyTorch's ``register_flop_formula`` does) unless ``replace=True``. A
lookup (``get``) takes a traced op (its ``target``), a target string or an ``OpOverload`` and
answers the overload's entry first, then the op's; lookups are cached until the table changes.
"""

from __future__ import annotations

from typing import Any, Callable, Generic, Iterator, TypeVar

from archlab.errors import UserError

R = TypeVar("R")
_MISSING = object()


def op_key(op: Any) -> str:
    """The one key of an op named as a string, an ``OpOverloadPacket`` or an ``OpOverload``."""
    if isinstance(op, str):
        text = op.strip()
        if "::" in text:
            ns, _, rest = text.partition("::")
        elif text.count(".") == 2:  # a traced op's target, "aten.cos.default"
            ns, _, rest = text.partition(".")
        else:
            ns, rest = "aten", text
        if not ns or not rest or not all(part.isidentifier() for part in (ns, *rest.split("."))) \
                or rest.count(".") > 1:
            raise UserError(f"'{op}' does not name an ATen op (write it as 'aten::cos', 'cos' or "
                            f"'aten::upsample_nearest2d.vec')")
        return f"{ns}::{rest}"
    overload = getattr(op, "_overloadname", None)
    packet = getattr(op, "_overloadpacket", None)
    if overload is not None and packet is not None:  # an OpOverload
        return f"{op.namespace}::{packet.__name__}.{overload}"
    qualified = getattr(op, "_qualified_op_name", None)  # an OpOverloadPacket: "aten::cos"
    if isinstance(qualified, str):
        return qualified
    raise UserError(f"{op!r} is not an op: name it as 'aten::cos', torch.ops.aten.cos or "
                    f"torch.ops.aten.cos.default")


def _lookup_keys(target: str) -> tuple[str, str]:
    """(overload key, op key) of a traced op's target, ``aten.cos.default``."""
    ns, _, rest = target.partition(".")
    name, _, overload = rest.partition(".")
    return f"{ns}::{name}.{overload}", f"{ns}::{name}"


class OpRules(Generic[R]):
    """A table from ATen ops to rules, with one key per op, a duplicate check and cached lookup."""

    def __init__(self, what: str) -> None:
        self.what = what  # "cost rule", "shape rule": for messages
        self._rules: dict[str, R] = {}
        self._cache: dict[Any, Any] = {}

    def register(self, op: Any, rule: R, *, replace: bool = False) -> None:
        """Map ``op`` to ``rule``; an op that already has one raises unless ``replace``."""
        key = op_key(op)
        if key in self._rules and not replace:
            raise UserError(f"{key} already has a {self.what} (pass replace=True to replace it)")
        self._rules[key] = rule
        self._cache.clear()

    def add(self, ops: Any, rule: R, *, replace: bool = False) -> None:
        """Register ``rule`` for each op of an iterable (strings or ops)."""
        for op in ops:
            self.register(op, rule, replace=replace)

    def unregister(self, op: Any) -> R | None:
        """Remove ``op``'s entry; returns it (None when it had none)."""
        rule = self._rules.pop(op_key(op), None)
        self._cache.clear()
        return rule

    def rule(self, *ops: Any, replace: bool = False) -> Callable[[R], R]:
        """Decorator: register the decorated function for every op in ``ops``."""
        def register(fn: R) -> R:
            self.add(ops, fn, replace=replace)
            return fn

        return register

    def get(self, op: Any, default: Any = None) -> Any:
        """The entry of a traced op (anything with a ``target``), a target string (``aten.cos.default``)
        or an ``OpOverload``: its overload's first, then its op's; ``default`` when neither has one."""
        target = getattr(op, "target", op)
        hit = self._cache.get(target, _MISSING)
        if hit is _MISSING:
            text = target if isinstance(target, str) else str(target)
            overload, packet = _lookup_keys(text)
            hit = self._rules.get(overload, self._rules.get(packet, _MISSING))
            self._cache[target] = hit
        return default if hit is _MISSING else hit

    def __contains__(self, op: Any) -> bool:
        return op_key(op) in self._rules

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._rules))

    def __len__(self) -> int:
        return len(self._rules)

    def snapshot(self) -> dict[str, R]:
        """The entries as they are now (for ``restore``)."""
        return dict(self._rules)

    def restore(self, entries: dict[str, R]) -> None:
        """Put the table back as ``snapshot`` found it."""
        self._rules = dict(entries)
        self._cache.clear()
