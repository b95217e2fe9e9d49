"""The registry of quantities a claim can name, the per-run context that traces each model once,
and the arithmetic evaluator of stated formulas. A data row names its quantity and gives its
keyword arguments (see ``archlab.verify``). The quantities themselves live in ``readings`` (read
from a real model's meta trace) and ``formulas`` (real layers counted by archlab, the compound
rule, ratios, stated formulas); importing ``archlab.verify`` registers both."""

from __future__ import annotations

import ast
import inspect
import math
import operator
from dataclasses import dataclass
from typing import Any, Callable

from archlab.errors import UserError


@dataclass(frozen=True)
class Quantity:
    name: str
    fn: Callable[..., Any]
    exact: bool  # an integer count, a shape or a string: compared exactly
    params: dict[str, inspect.Parameter]

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.fn) or ""


QUANTITIES: dict[str, Quantity] = {}


def quantity(exact: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a computation: ``fn(ctx, *, arg=...)``; its keyword-only arguments are the
    keys a data row may give (those without default are required)."""

    def register(fn):
        params = {n: p for n, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY}
        QUANTITIES[fn.__name__] = Quantity(fn.__name__, fn, exact, params)
        return fn

    return register


class TracedModel:
    """One registered model, built on the meta device and traced once; module-level lookups."""

    def __init__(self, spec: str) -> None:
        from archlab.analysis.costs import OpCosts
        from archlab.spec import Inputs
        from archlab.trace.run import build, trace_built

        built = build(spec, Inputs())
        self.spec = spec
        self.label = built.label
        self.input_shape = built.resolved.input_shape
        self.module = built.module
        self.trace = trace_built(built)
        self.calls = {}
        for call in self.trace.calls:
            self.calls.setdefault(call.name, call)
        self.costs = OpCosts(self.trace)
        # ops of conv and linear layers (the papers' "weight layers")
        self.weight_op = [kind in ("conv", "linear") and macs > 0
                          for kind, macs in zip(self.costs.kinds, self.costs.macs)]
        self._rf = None

    def call(self, name: str) -> Any:
        call = self.calls.get(name)
        if call is None or not name:
            raise UserError(f"{self.label} has no module '{name}' (see 'archlab trace {self.spec} --depth 4')")
        return call

    def submodule(self, name: str) -> Any:
        self.call(name)
        return self.module.get_submodule(name)

    def macs_of(self, call: Any) -> int:
        return self.costs.by_call(call)

    def shape(self, vid: int) -> tuple[int, ...]:
        return self.trace.values[vid].shape

    def children(self, call: Any) -> list:
        return [c for c in self.trace.calls if c.parent == call.index]

    @property
    def rf(self) -> Any:
        if self._rf is None:
            from archlab.analysis.receptive_field import receptive_fields

            self._rf = receptive_fields(self.trace)
        return self._rf


class Context:
    """Traces cached per model spec for one run (each model is traced once)."""

    def __init__(self) -> None:
        self._models: dict[str, TracedModel] = {}
        self.memo: dict[Any, Any] = {}  # other computations run once per run (the measured ERF experiments)

    def model(self, spec: str) -> TracedModel:
        if spec not in self._models:
            self._models[spec] = TracedModel(spec)
        return self._models[spec]

    def compute(self, spec: dict[str, Any], vars: dict[str, Any] | None = None) -> Any:
        q = QUANTITIES[spec["quantity"]]
        kwargs = {k: v for k, v in spec.items() if k != "quantity"}
        if "vars" in q.params and "vars" not in kwargs:
            kwargs["vars"] = vars or {}
        return q.fn(self, **kwargs)


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}


_MAX_INT = 10**308  # what a float can still hold
_MAX_EXPONENT = 64  # a claims file is data: 9 ** 9 ** 9 must not hang the run


def evaluate(expr: str, vars: dict[str, Any]) -> float:
    """Arithmetic (+ - * / ** and parentheses) over numbers and the names in ``vars``."""

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value,
                                                                                                      bool):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in vars:
                raise UserError(f"formula '{expr}': unknown name '{node.id}'")
            return vars[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
                raise UserError(f"formula '{expr}': exponent {right} is out of range (at most {_MAX_EXPONENT})")
            result = _OPS[type(node.op)](left, right)
            if isinstance(result, int) and abs(result) > _MAX_INT:  # exact ints grow without bound: stop now
                raise OverflowError
            return result
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.operand))
        raise UserError(f"formula '{expr}': only numbers, names and + - * / ** are allowed")

    try:
        tree = ast.parse(str(expr), mode="eval")
    except SyntaxError:
        raise UserError(f"formula '{expr}' is not an arithmetic expression") from None
    try:
        value = walk(tree)
    except ZeroDivisionError:
        raise UserError(f"formula '{expr}' divides by zero") from None
    except OverflowError:
        raise UserError(f"formula '{expr}' overflows") from None
    if not math.isfinite(value):
        raise UserError(f"formula '{expr}' overflows (its value is not finite)")
    return value
