"""The trace's graph: values (tensors as they flow), ops (ATen operations), calls (module
``forward`` calls), and the trace of a forward or of a training step that holds them.

Every analysis reads these types and nothing else of the tracer; a trace made by a user's own
``Tracer`` (``archlab.trace.recorder``) is enough to call any analysis on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

# Producers of values that no traced operation made.
INPUT = -1  # an input of the model
PARAM = -2  # a parameter or buffer of the model
CONST = -3  # any other tensor the forward found (a constant, a captured tensor)


@dataclass
class Value:
    """A tensor as it flows through the trace."""

    id: int
    shape: tuple[int, ...]
    dtype: torch.dtype
    producer: int  # op index, or INPUT / PARAM / CONST
    alias_of: int | None = None  # the value whose storage this one shares (views, in-place results)
    name: str = ""  # parameter name for PARAM values

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize


@dataclass
class Op:
    """One ATen operation."""

    index: int
    target: str  # e.g. "aten.convolution.default"
    name: str  # overload packet, e.g. "convolution"
    call: int  # innermost module call, -1 when outside every module
    inputs: list[int]  # value ids, in argument order (tensors only)
    outputs: list[int]
    attrs: dict[str, Any] = field(default_factory=dict)  # geometry of conv/pool ops


@dataclass
class Call:
    """One call of a module's ``forward``."""

    index: int
    name: str  # qualified name in the model ("" for the model itself)
    type: str  # class name
    parent: int  # -1 for the root call
    depth: int
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    first_op: int = 0
    end_op: int = 0  # one past the last op inside this call
    params: int = 0  # parameters of the module, its children included
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Uncalled:
    """A registered module that the (eval-mode) forward did not call, nor any module inside it
    (GoogLeNet's auxiliary heads run only in training); only the outermost such module is kept."""

    name: str
    type: str
    depth: int  # the depth a call would have had: its nearest called ancestor's plus one
    params: int  # its parameters that no called module also holds


@dataclass
class Trace:
    input_shape: tuple[int, ...]
    values: list[Value]
    ops: list[Op]
    calls: list[Call]
    inputs: list[int]
    outputs: list[int]
    params: int
    trainable_params: int
    uncalled: list[Uncalled] = field(default_factory=list)
    params_bytes: int | None = None  # the parameters at their own dtypes (None: at fp32, 4 bytes each)
    float_dtype: str = "fp32"  # the model's floating dtype (its parameters'): what its float tensors run in

    @property
    def stored_params_bytes(self) -> int:
        """The parameters' bytes as the model holds them (each at its own dtype)."""
        return self.params_bytes if self.params_bytes is not None else 4 * self.params


@dataclass(frozen=True)
class Param:
    """One parameter of a traced training step, as the model registers it (first name of a shared one)."""

    name: str
    shape: tuple[int, ...]
    itemsize: int
    trainable: bool  # gets a gradient (requires_grad, and not frozen)
    grad: int | None = None  # value id of its gradient in the trace (None: no gradient)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def bytes(self) -> int:
        return self.numel * self.itemsize


@dataclass
class TrainingTrace:
    """A trace of one training step: ``trace.ops[:backward_start]`` are the forward (and the
    loss), the rest the backward; a backward op's ``call`` is the module call whose forward it
    differentiates (-1: none)."""

    trace: Trace
    backward_start: int
    param_grads: list[int]  # value ids of the parameters' gradients, as autograd left them
    frozen: tuple[str, ...]  # parameter names that got no gradient because --freeze named their module
    freeze: tuple[str, ...] = ()  # the --freeze patterns
    frozen_params: int = 0  # parameters (elements) that --freeze left without a gradient
    parameters: tuple[Param, ...] = ()  # every parameter, in the model's order (what sharding divides)
    modules: tuple[tuple[str, str], ...] = ()  # (qualified name, class name) of every module, the model's first
