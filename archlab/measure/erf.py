"""The effective receptive field measured: real forwards and backwards of a model on random inputs.

``gradient_maps`` runs one forward of a batch with every tap hooked, then one backward per tap
(``retain_graph``): the gradient of the tap's centre unit, summed over its channels, with respect to the
input. In eval mode the samples of a batch do not mix (batch norm uses its running statistics), so the
batch's summed unit gives each sample its own gradient in one backward; |gradient| is summed over the
input's channels and averaged over the samples. The parameters get no gradient (only the input's is
computed), and the model is left as found: its modes, its parameters' ``requires_grad``, no hook left.

``measure_erf`` makes the models the weights mode asks for (``WEIGHTS`` in ``archlab.analysis.erf``):

* ``init``: the model's own initialization, built anew for each of a few seeds (seed, seed + 1, ...): the
  samples are split evenly among ``INIT_BUILDS`` builds (fewer when there are fewer samples);
* ``uniform``: one build whose convolution and linear weights are all one constant per layer, 1/fan_in
  (fan_in: input channels per group x kernel area; Luo et al.'s first experiment sets them equal, and
  1/fan_in keeps the activations' scale through fifty layers), biases zero;
* ``given``: the weights the factory returns (or the ``nn.Module`` as given), as they are.

Batch norm runs in eval mode. The inputs are standard normal noise from a generator seeded with ``seed``.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import ExitStack
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from archlab.analysis.erf import ERF_MASS, WEIGHTS, ERFLayer, ERFResult, erf_metrics, erf_taps, square_sides
from archlab.errors import UserError
from archlab.spec import check_depth
from archlab.trace.guards import left_as_found, modes_restored
from archlab.trace.inputs import check_seed, seeded

DEFAULT_SAMPLES = 32  # the default --samples: the header says whether ERF95 is the same from half of them
INIT_BUILDS = 4  # seeded builds the ``init`` mode averages over
BATCH = 8  # samples per forward

Step = Callable[[float, "float | None", str], None]


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        return next((t for t in out if isinstance(t, torch.Tensor)), None)
    if isinstance(out, dict):
        return next((t for t in out.values() if isinstance(t, torch.Tensor)), None)
    return None


def model_device(model: nn.Module) -> torch.device:
    return next(iter(model.parameters()), next(iter(model.buffers()), torch.empty(0))).device


def gradient_maps(model: nn.Module, inputs: torch.Tensor, taps: dict[str, nn.Module], *, device: Any = None,
                  kwargs: dict[str, Any] | None = None, step: Callable[[str], None] | None = None,
                  per_sample: bool = False, channels_last: bool = False,
                  timings: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Per tap (a module whose output is (N, C, H, W)): |d(sum over channels of the output's centre unit
    (H // 2, W // 2))/d input|, summed over the input's channels and averaged over the N samples: an
    (H_in, W_in) float64 map. ``device``: where the inputs go (default: the model's); ``step(name)`` is
    called after each tap's backward. ``per_sample``: (N, H_in, W_in) maps, not averaged. ``channels_last``:
    the input in that memory format (a model converted to it runs its convolutions faster on the CPU).
    ``timings``: seconds added up under 'forward' and 'backward TAP' (the benchmark's breakdown)."""
    clock = timings if timings is not None else {}
    dev = torch.device(device) if device is not None else model_device(model)
    x = inputs.detach().to(dev)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    units: dict[str, torch.Tensor] = {}
    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name):
        def capture(_module, _args, out):
            if name in shapes:  # a module called several times: its first call
                return
            t = _first_tensor(out)
            if t is None:
                return
            shapes[name] = tuple(t.shape)
            if t.dim() == 4:
                # the unit is taken now: an in-place op after the module (ReLU(inplace=True)) would change it
                units[name] = t[:, :, t.shape[2] // 2, t.shape[3] // 2].sum()
        return capture

    maps: dict[str, np.ndarray] = {}
    with ExitStack() as stack:
        stack.enter_context(left_as_found(model))
        stack.enter_context(modes_restored(model))
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        for name, module in taps.items():
            stack.callback(module.register_forward_hook(hook(name)).remove)
        with torch.enable_grad():
            began = time.perf_counter()
            model(x, **(kwargs or {}))
            _add(clock, "forward", began)
            names = list(taps)
            for name in names:
                if name not in shapes:
                    raise UserError(f"layer '{name}' did not run in the forward (no output to take the gradient of)")
                if name not in units:
                    raise UserError(f"layer '{name}' has no spatial output (its output is "
                                    f"{'x'.join(map(str, shapes[name]))}, not N x C x H x W)")
            for i, name in enumerate(names):
                unit = units.pop(name)
                began = time.perf_counter()
                grad = None
                if unit.requires_grad:
                    (grad,) = torch.autograd.grad(unit, x, retain_graph=i < len(names) - 1, allow_unused=True)
                g = torch.zeros(x.shape[0], *x.shape[2:], dtype=torch.float64) if grad is None else (
                    grad.abs().sum(1).double().cpu())
                maps[name] = (g if per_sample else g.mean(0)).numpy()
                _add(clock, f"backward {name}", began)
                if step is not None:
                    step(name)
        units.clear()
    return maps


def _add(clock: dict[str, float], key: str, began: float) -> None:
    clock[key] = clock.get(key, 0.0) + time.perf_counter() - began


# --- the models each weights mode runs -----------------------------------------------------------------


def set_uniform(model: nn.Module) -> None:
    """Every convolution's and linear layer's weights one constant, 1/fan_in; their biases zero."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
                w = m.weight
                if isinstance(m, nn.modules.conv._ConvNd) and m.transposed:
                    fan_in = w.numel() // (w.shape[1] * m.groups) if w.numel() else 1
                else:
                    fan_in = w[0].numel() if w.numel() else 1
                w.fill_(1.0 / max(fan_in, 1))
                if m.bias is not None:
                    m.bias.zero_()


def _reset(model: nn.Module) -> None:
    """An ``nn.Module``'s own initialization drawn anew: ``reset_parameters`` of every module with one."""
    for m in model.modules():
        if hasattr(m, "reset_parameters") and callable(m.reset_parameters):
            m.reset_parameters()


def builds(source: Any, resolved: Any, weights: str, seed: int, device: str,
           n: int) -> Iterator[tuple[int, nn.Module, bool]]:
    """The (seed, model, whether it is archlab's own copy) a weights mode runs, one at a time (a generator: one
    model held at once).
    ``resolved``: the registered spec's resolution (None for an ``nn.Module`` given as such, ``source``)."""
    seeds = [seed + i for i in range(n)] if weights == "init" else [seed]
    for s in seeds:
        ours = True
        if resolved is not None:
            with seeded(s, device):
                model = resolved.build(device=device)
        else:
            model, ours = source, weights != "given" or model_device(source) != torch.device(device)
            if ours:
                model = copy.deepcopy(source).to(device)
            if weights == "init":
                with seeded(s, device):
                    _reset(model)
        if weights == "uniform":
            set_uniform(model)
        if ours:  # a copy of our own: its 4-D weights channels-last, for faster convolutions on the CPU
            model = model.to(memory_format=torch.channels_last)
        yield s, model, ours


def split(samples: int, parts: int) -> list[int]:
    """``samples`` split as evenly as possible into ``parts`` (the first ones larger)."""
    q, r = divmod(samples, parts)
    return [q + (1 if i < r else 0) for i in range(parts)]


def measure_erf(source: Any, resolved: Any, input_shape: tuple[int, ...], taps: list[str], *, weights: str,
                samples: int, seed: int, device: str, kwargs: dict[str, Any] | None = None,
                progress: Step | None = None, timings: dict[str, float] | None = None
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[int]]:
    """(maps over all samples, maps over the samples of even index (the stability check), the seeds built): the
    gradient maps of the layers named in ``taps`` under ``weights``, from ``samples`` random inputs of shape
    ``input_shape`` (batch first, taken as one sample's shape) in batches of ``BATCH``; ``timings``: seconds
    per phase ('build', 'forward', 'backward TAP')."""
    clock = timings if timings is not None else {}
    n_builds = min(INIT_BUILDS, samples) if weights == "init" else 1
    per_build = split(samples, n_builds)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    sample_shape = tuple(input_shape[1:])
    total = {t: np.zeros(input_shape[-2:]) for t in taps}
    half = {t: np.zeros(input_shape[-2:]) for t in taps}
    n_half, done, index, seeds = 0, 0, 0, []
    steps = sum(math.ceil(k / BATCH) for k in per_build) * len(taps)
    made = builds(source, resolved, weights, seed, device, n_builds)
    for count in per_build:
        began = time.perf_counter()
        s, model, ours = next(made)
        _add(clock, "build", began)
        seeds.append(s)
        modules = dict(model.named_modules())
        tap_modules = {t: modules[t] for t in taps}
        for start in range(0, count, BATCH):
            b = min(BATCH, count - start)
            x = torch.randn((b, *sample_shape), generator=generator)

            def step(name):
                nonlocal done
                done += 1
                if progress is not None:
                    progress(done, steps, f"ERF: {name}")

            maps = gradient_maps(model, x, tap_modules, device=device, kwargs=kwargs, step=step, per_sample=True,
                                 channels_last=ours, timings=clock)
            evens = slice(index % 2, None, 2)  # the samples with an even index over the whole run
            for t, m in maps.items():
                total[t] += m.sum(0)
                half[t] += m[evens].sum(0)
            n_half += len(range(index % 2, b, 2))
            index += b
        del model, modules, tap_modules
    return ({t: v / samples for t, v in total.items()}, {t: v / max(n_half, 1) for t, v in half.items()}, seeds)


# --- the whole measurement of a model ------------------------------------------------------------------


def check_erf_options(samples: Any, weights: Any, seed: Any) -> None:
    """``--samples`` (1 or more), ``--weights`` (init, uniform, given) and ``--seed`` checked, in one line each."""
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise UserError(f"--samples must be a whole number of random inputs, 1 or more, got {samples!r}")
    if weights not in WEIGHTS:
        raise UserError(f"unknown --weights '{weights}' (choose {', '.join(WEIGHTS)})")
    check_seed(seed)


def _per_sample_bytes(trace: Any) -> int:
    """What one sample keeps for the backwards: every tensor the forward makes (an upper bound of what
    autograd saves), with its gradient while the backward runs."""
    batch = max(trace.input_shape[0], 1) if trace.input_shape else 1
    made = sum(v.numel * v.itemsize for v in trace.values if v.producer >= 0 and v.alias_of is None)
    return 2 * made // batch


def effective_of(model: Any, *, depth: int = 2, layer: str | None = None, samples: int | None = None,
                 weights: str = "init", seed: int = 0, device: str | None = None, force: bool = False,
                 progress: Callable[[float, float | None, str], None] | None = None) -> ERFResult:
    """The ``ERFResult`` of an ``archlab.Model`` (its ``built``, ``trace``, ``fields`` and ``label``): the layers
    and their exact windows from the meta trace, the maps from real runs guarded by what the trace says they need
    (``archlab.effective_receptive_field``)."""
    from archlab.measure.devices import check_device, on_device
    from archlab.measure.guard import check_fits

    check_depth(depth)
    check_erf_options(samples, weights, seed)
    device = device or "cpu"
    check_device(device)
    n = DEFAULT_SAMPLES if samples is None else samples
    began = time.perf_counter()
    built, trace = model.built, model.trace
    timings = {"trace": time.perf_counter() - began}
    if len([a for a in built.args if hasattr(a, "shape")]) != 1:
        raise UserError("the effective receptive field needs a model with one image input (N, C, H, W)")
    taps = erf_taps(trace, model.fields, depth, layer)
    needed = trace.stored_params_bytes + min(n, BATCH) * _per_sample_bytes(trace)
    check_fits(needed, device, force, what="rf --effective (forwards and backwards on real tensors)")
    kwargs = {k: v for k, v in built.kwargs.items() if not hasattr(v, "shape")}
    began = time.perf_counter()
    first = {}  # a container returns its last child's output: the same value, measured once
    for t in taps:
        first.setdefault(t.value, t.name)
    with on_device(device):
        source = built.module if built.resolved is None else None
        full, half, seeds = measure_erf(source, built.resolved, tuple(trace.input_shape), list(first.values()),
                                        weights=weights, samples=n, seed=seed, device=device, kwargs=kwargs,
                                        progress=progress, timings=timings)
    seconds = time.perf_counter() - began
    began = time.perf_counter()
    layers = []
    for t in taps:
        m = full[first[t.value]]
        half_side = square_sides(half[first[t.value]], t.centre, [ERF_MASS])[0] if n >= 2 else None
        layers.append(ERFLayer(t.name, t.type, t.depth, t.out_shape, t.rf, t.window, t.centre,
                               erf_metrics(m, t.centre), m, t.unit, half_side))
    timings["metrics"] = time.perf_counter() - began
    notes = []
    if weights == "init":
        notes.append(f"init: the model's own initialization, {len(seeds)} builds (seeds {seeds[0]}.."
                     f"{seeds[-1]}), the samples split evenly among them")
        if built.resolved is None:
            notes.append("init of a model given as an nn.Module: a copy of it with every layer's reset_parameters() "
                         "(PyTorch's default initialization; archlab cannot call its constructor again)")
    elif weights == "uniform":
        notes.append("uniform: every conv/linear weight 1/fan_in (fan_in = input channels per group x kernel area), "
                     "biases zero")
    return ERFResult(model.label, tuple(trace.input_shape), n, weights, tuple(seeds), device, layers, notes, seconds,
                     timings)
