"""The guards of a trace: the user's model is left as it was found, whatever its forward does,
and a model the trace cannot follow is refused in one line before anything runs.

The runner (``archlab.trace.run``) applies every guard to every trace it makes, forward or
training step, by construction: ``guarded(model)`` is the one context they all enter.
"""

from __future__ import annotations

import contextlib
import dis
import inspect
import re
from typing import Iterator

import torch
from torch import nn

from archlab.errors import UserError
from archlab.user_code import user_code

@contextlib.contextmanager
def modes_restored(model: nn.Module) -> Iterator[None]:
    """Every module's ``training`` flag is put back as it was after the body, even when it raises."""
    modes = {m: m.training for m in model.modules()}
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.training = mode


_MISSING = object()
_INNER = ("_parameters", "_buffers", "_modules", "_non_persistent_buffers_set")


def _put_back(live, saved) -> None:
    """Make the dict (or set) ``live`` hold again exactly what ``saved`` held, touching only
    what differs."""
    if isinstance(live, set):
        live.intersection_update(saved)
        live.update(saved)
        return
    for key in [k for k in live if k not in saved]:
        del live[key]
    for key, value in saved.items():
        if live.get(key, _MISSING) is not value:
            live[key] = value


@contextlib.contextmanager
def left_as_found(model: nn.Module) -> Iterator[None]:
    """Whatever a forward does to the modules' attributes (``self.counter = self.counter + 1``
    replaces a buffer with the meta result; ``self.cache = y`` keeps a meta tensor; a lazy
    module materializes) is undone afterwards: every module's attributes, parameters, buffers
    and children are put back as they were, the same objects."""
    grads = [(p, p.requires_grad) for p in model.parameters()]
    saved = []
    for m in model.modules():
        if isinstance(m, torch.jit.ScriptModule):
            continue  # its attributes live in TorchScript's object (wrappers here), which Python code cannot replace
        inner = {k: (m.__dict__[k], set(m.__dict__[k]) if isinstance(m.__dict__[k], set) else dict(m.__dict__[k]))
                 for k in _INNER if k in m.__dict__}
        saved.append((m, dict(m.__dict__), inner))
    try:
        yield
    finally:
        for m, attrs, inner in saved:
            for live, content in inner.values():
                _put_back(live, content)
            _put_back(m.__dict__, attrs)
        for p, flag in grads:  # a forward that calls requires_grad_ (freezing a layer)
            if p.requires_grad != flag:
                p.requires_grad_(flag)


@contextlib.contextmanager
def no_mha_fastpath() -> Iterator[None]:
    """nn.MultiheadAttention and nn.TransformerEncoder without their inference fast path (fused
    kernels on nested tensors, which have no meta kernels and no plain shapes): the standard
    path's ops, the same attention, are traced instead. Restored after."""
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    saved = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(saved)


def check_keywords(model: nn.Module, names: list[str]) -> list[str]:
    """Every keyword input must be a parameter of the model's forward; returns those that only a
    ``**kwargs`` takes (the trace then checks that the forward used them)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # a builtin or scripted forward: the call itself will say
        return []
    taken = [n for n, p in params.items() if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                         inspect.Parameter.KEYWORD_ONLY)]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return [n for n in names if n not in taken]
    for name in names:
        if name not in taken:
            raise UserError(f"the forward of {type(model).__name__} takes no keyword '{name}' "
                            f"(it takes: {', '.join(taken) or 'no keywords'})")
    return []


_KEYED = {"get", "pop", "setdefault", "__getitem__", "__contains__"}  # dict methods that read one key


def check_options_read(model: nn.Module, names: list[str]) -> None:
    """Refuse a non-tensor forward option that only ``**kwargs`` takes and the forward never reads.

    Read from the forward's bytecode (the option changes nothing the trace could see): the forward
    reads a key it names as a string (``kwargs["t"]``, ``kwargs.get("t")``, ``"t" in kwargs``), in
    its own code or a function nested in it. A forward that uses its ``kwargs`` otherwise (hands it
    on, ``**kwargs`` to a submodule; iterates it; captures it in a closure) may read any key: every
    option is then taken as read."""
    if not names:
        return
    forward = getattr(model, "forward", None)  # the instance's own, where one was set on it
    fn = inspect.unwrap(getattr(forward, "__func__", forward))
    code = getattr(fn, "__code__", None)
    if code is None or not code.co_flags & inspect.CO_VARKEYWORDS:
        return
    kw = code.co_varnames[code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & inspect.CO_VARARGS)]
    if kw in code.co_cellvars:
        return  # captured by a nested function
    ins = list(dis.get_instructions(code))

    def constant(k: int) -> bool:
        return 0 <= k < len(ins) and ins[k].opname == "LOAD_CONST" and isinstance(ins[k].argval, str)

    for i, op in enumerate(ins):
        loads_kw = op.opname.startswith("LOAD_FAST") and (op.argval == kw or
                                                          (isinstance(op.argval, tuple) and kw in op.argval))
        if not loads_kw:
            continue
        nxt = ins[i + 1].opname if i + 1 < len(ins) else ""
        # read by a key written in the code: kwargs["t"], kwargs.get("t"), "t" in kwargs; a key held in a
        # variable or an attribute (kwargs.get(self.name)) could be any key, as could kwargs handed on whole
        keyed = (nxt in ("LOAD_ATTR", "LOAD_METHOD") and ins[i + 1].argval in _KEYED and constant(i + 2)
                 or constant(i + 1) and i + 2 < len(ins) and ins[i + 2].opname == "BINARY_SUBSCR"
                 or nxt == "CONTAINS_OP" and constant(i - 1))
        if not keyed:
            return  # handed on whole, iterated, or read by a key the code does not spell: any key may be read

    def strings(c) -> set[str]:
        out = {k for k in c.co_consts if isinstance(k, str)}
        for k in c.co_consts:
            if inspect.iscode(k):
                out |= strings(k)
        return out

    named = strings(code)
    for name in names:
        if name not in named:
            raise UserError(f"the forward of {type(model).__name__} never reads '{name}' (its **kwargs takes it, "
                            f"and nothing in the forward looks it up): a misspelt or unknown option?")


def check_traceable(model: nn.Module, real: bool = False) -> None:
    """Refuse, in one line, a model whose shapes the trace cannot know or whose forward it cannot
    follow: a lazy module not yet run, a TorchScript module, an uninitialized parameter."""
    lazy = [name for name, m in model.named_modules() if isinstance(m, nn.modules.lazy.LazyModuleMixin)
            and m.has_uninitialized_params()]
    if lazy:
        raise UserError(f"'{lazy[0] or type(model).__name__}' is a lazy module whose shapes are not known yet: "
                        "run one forward on a real input first, then analyse the model")
    scripted = [name for name, m in model.named_modules() if isinstance(m, torch.jit.ScriptModule)]
    if scripted and not real:  # a real run records the ops its interpreter dispatches
        raise UserError(f"'{scripted[0] or type(model).__name__}' is a torch.jit.script module: TorchScript runs "
                        "its own interpreter, which archlab's meta trace cannot follow; count it with --engine real "
                        "(it runs for real), or count the nn.Module before scripting it")
    uninitialized = [name for name, t in (*model.named_parameters(), *model.named_buffers())
                     if isinstance(t, nn.parameter.UninitializedTensorMixin)]
    if uninitialized and not real:  # a real run lets a forward that makes its parameter make it
        raise UserError(f"'{uninitialized[0]}' is an uninitialized parameter (its shape is not known yet): "
                        "initialize it (or run one forward on a real input) first, then analyse the model; "
                        "a forward that creates it is counted with --engine real")


@contextlib.contextmanager
def guarded(model: nn.Module) -> Iterator[None]:
    """The context of every run of the user's forward: the modules' modes and attributes put back
    as found, the attention fast path off, the user's output on stderr."""
    with modes_restored(model), left_as_found(model), no_mha_fastpath(), user_code():
        yield


def without_torch_config_advice(msg: str) -> str:
    """PyTorch's message without its sentences that advise setting one of its private flags
    (``torch.fx.experimental._config.meta_nonzero_assume_all_nonzero``), and the sentence about
    what the flag would do: archlab's own explanation follows, and the flag is no advice for a
    user of archlab."""
    sentences = re.split(r"(?<=\.)\s+", msg)
    kept = [s for s in sentences if "_config." not in s and "returns a fake value" not in s]
    return " ".join(kept) if kept else msg
