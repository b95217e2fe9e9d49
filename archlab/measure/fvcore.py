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


def fvcore_count(model_or_spec: Any, input_shapes: tuple[tuple[int, ...], ...], *, device: str = "cpu",
                 alpha: float | None = None, options: dict[str, Any] | None = None,
                 archlab_macs: int | None = None) -> dict[str, Any]:
    """fvcore's count of one forward on zero inputs of ``input_shapes`` (batch included), split
    into its multiply-accumulate terms and the rest."""
    import copy

    import torch

    from archlab.measure.devices import FORWARD_ERRORS, check_device, on_device, run_failed

    check_device(device)
    try:
        from fvcore.nn import FlopCountAnalysis
    except ImportError:  # pragma: no cover - fvcore is a dependency
        raise UserError("--engine fvcore needs fvcore: pip install fvcore") from None
    from archlab.models.resolve import resolve

    if isinstance(model_or_spec, torch.nn.Module):
        # a copy: .to(device) moves a module in place, and the user's model stays where it was
        model = copy.deepcopy(model_or_spec)
    else:
        # the input is the trace's (input_shapes), which already took the spec's res=, batch= and
        # input= into account: those are dropped here, not given twice
        import dataclasses

        from archlab.spec import parse_spec

        spec = parse_spec(model_or_spec) if isinstance(model_or_spec, str) else model_or_spec
        spec = dataclasses.replace(spec, res=None, batch=None, input_size=None)
        sizes = [tuple(shape[1:]) for shape in input_shapes]
        model = resolve(spec, alpha=alpha, options=options, batch=input_shapes[0][0],
                        input_size=sizes if len(sizes) > 1 else sizes[0]).build()
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    # fvcore's tracer logs every op it skips; archlab reports them instead
    logging.getLogger("fvcore.nn.jit_analysis").setLevel(logging.ERROR)
    try:
        with on_device(device), torch.no_grad(), user_code():
            model = model.to(device).eval()
            inputs = tuple(torch.zeros(shape, device=device, dtype=dtype) for shape in input_shapes)
            analysis = FlopCountAnalysis(model, inputs)
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
