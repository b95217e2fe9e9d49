"""``--engine fvcore``: fvcore's FlopCountAnalysis beside archlab's count.

fvcore runs a real forward under the JIT tracer (it cannot run on the meta
device), counts one "flop" per multiply-accumulate for conv/linear/matmul, and
adds terms for batch norm, adaptive pooling and upsampling into the same
total. The reconciliation splits its total into the multiply-accumulate terms,
which must equal archlab's MACs, and the rest.
"""

from __future__ import annotations

import logging
from typing import Any

from archlab.errors import UserError
from archlab.user_code import user_code

# fvcore's operator names whose counts are multiply-accumulates
FVCORE_MAC_OPS = ("conv", "linear", "addmm", "matmul", "mm", "bmm", "einsum")


def fvcore_count(model_or_spec: Any, input_shapes: tuple[tuple[int, ...], ...], *, forward_options: Any = (),
                 device: str = "cpu", alpha: float | None = None, options: dict[str, Any] | None = None,
                 archlab_macs: int | None = None) -> dict[str, Any]:
    """fvcore's count of one forward on real inputs of ``input_shapes`` (batch included; an
    ``InputShape`` keeps its dtype and keyword) and the forward's ``forward_options``, split into its
    multiply-accumulate terms and the rest."""
    import copy

    import torch

    from archlab.measure.devices import FORWARD_ERRORS, check_device, on_device, run_failed

    check_device(device)
    try:
        from fvcore.nn import FlopCountAnalysis
    except ImportError:  # pragma: no cover - fvcore is a dependency
        raise UserError("--engine fvcore needs fvcore: pip install fvcore") from None
    from archlab.models.resolve import resolve
    from archlab.trace.inputs import real_inputs

    if isinstance(model_or_spec, torch.nn.Module):
        # a copy: .to(device) moves a module in place, and the user's model stays where it was
        model = copy.deepcopy(model_or_spec)
    else:
        # the input is the trace's (input_shapes), which already took the spec's res=, batch= and
        # input= into account: those are dropped here, not given twice
        import dataclasses

        from archlab.spec import InputShape, parse_spec

        spec = parse_spec(model_or_spec) if isinstance(model_or_spec, str) else model_or_spec
        spec = dataclasses.replace(spec, res=None, batch=None, input_size=None)
        sizes = [InputShape(shape[1:], shape.dtype, shape.name) if isinstance(shape, InputShape) else tuple(shape[1:])
                 for shape in input_shapes]
        model = resolve(spec, alpha=alpha, options=options, batch=input_shapes[0][0],
                        input_size=sizes if len(sizes) > 1 else sizes[0]).build()
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    # fvcore's tracer logs every op it skips; archlab reports them instead
    logging.getLogger("fvcore.nn.jit_analysis").setLevel(logging.ERROR)
    try:
        with on_device(device), torch.no_grad(), user_code():
            model = model.to(device).eval()
            inputs, kwargs = real_inputs(input_shapes, forward_options, device, dtype)
            # fvcore's tracer passes positional inputs only: keyword inputs and options are bound here
            analysis = FlopCountAnalysis(_Bound(model, kwargs) if kwargs else model, inputs)
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            analysis.tracer_warnings("none")
            total = int(analysis.total())
            by_op = {k: int(v) for k, v in sorted(analysis.by_operator().items())}
            skipped = {k: int(v) for k, v in sorted(analysis.unsupported_ops().items())}
    except UserError:
        raise
    except FORWARD_ERRORS as e:  # out of memory, a CUDA error, the user's forward raised or called sys.exit()
        names = {torch.float16: "fp16", torch.bfloat16: "bf16"}
        raise run_failed("fvcore's forward", device, names.get(dtype, "fp32"), e) from None
    mac_terms = {k: v for k, v in by_op.items() if k in FVCORE_MAC_OPS}
    other_terms = {k: v for k, v in by_op.items() if k not in FVCORE_MAC_OPS}
    fv_macs = sum(mac_terms.values())
    return {
        "total": total,
        "unit": "fvcore 'flops' = multiply-accumulates for conv/linear/matmul, plus the other terms",
        "mac_terms": mac_terms,
        "other_terms": other_terms,
        "macs": fv_macs,
        "unsupported_ops": skipped,
        "device": device,
        "agrees_with_archlab_macs": archlab_macs is not None and fv_macs == archlab_macs,
    }


def _Bound(model: Any, kwargs: dict[str, Any]) -> Any:
    """``model`` with the forward's keyword arguments bound, for a tracer that passes positional ones only."""
    from torch import nn

    class Bound(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any) -> Any:
            return self.model(*args, **kwargs)

    return Bound()
