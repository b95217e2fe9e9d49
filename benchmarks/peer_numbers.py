"""What each peer tool's headline number is, in archlab's units: one table per model.

    python benchmarks/peer_numbers.py [--model resnet50 --model mobilenet_v2]

Each tool counts the same real model (archlab.build, eval mode, a 1x3x224x224 input); the tools
not installed are left out (`pip install archlab[bench]` installs ptflops, thop and torchinfo;
fvcore comes with archlab). The "beyond archlab's MACs" column is the tool's number less
archlab's MACs (less 2 x MACs for FlopCounterMode, which counts FLOPs), and the last column
says what that difference is, from archlab's own counts of the same model: it is a check, not a
guess, and the script exits 1 when a tool's difference is not what the column says.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import warnings


def _batch_norm_params(model) -> int:
    from torch import nn

    return sum(p.numel() for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
               for p in m.parameters(recurse=False))


def _linear_bias(model) -> int:
    from torch import nn

    return sum(m.bias.numel() for m in model.modules() if isinstance(m, nn.Linear) and m.bias is not None)


def peers(model, x):
    """(tool, its number, what it calls it) for every peer that is installed."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model(x)
    yield "FlopCounterMode", counter.get_total_flops(), "FLOPs"
    quiet = contextlib.redirect_stdout(io.StringIO())
    try:
        from fvcore.nn import FlopCountAnalysis
    except ImportError:
        pass
    else:
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        yield "fvcore", analysis.total(), "'flops'"
    try:
        from ptflops import get_model_complexity_info
    except ImportError:
        pass
    else:
        for backend in ("pytorch", "aten"):
            with quiet:
                macs, _ = get_model_complexity_info(model, tuple(x.shape[1:]), as_strings=False,
                                                    print_per_layer_stat=False, backend=backend)
            yield f"ptflops ({backend} backend)", int(macs), "MACs"
    try:
        from thop import profile
    except ImportError:
        pass
    else:
        with quiet:
            ops, _ = profile(model, inputs=(x,), verbose=False)
        yield "thop", int(ops), "'ops' (MACs)"
    try:
        from torchinfo import summary
    except ImportError:
        pass
    else:
        yield "torchinfo", summary(model, input_data=x, verbose=0).total_mult_adds, "'Mult-Adds'"


def explain(tool: str, result, model):
    """What the tool adds to archlab's MACs, from archlab's counts: (text, its value or None)."""
    other = result.other_ops
    if tool == "FlopCounterMode":
        return "none: its FLOPs are exactly 2 x archlab's MACs", 0
    if tool == "fvcore":
        return ("2 per batch-norm element (archlab: 1, other: normalization) + global average pooling's "
                "inputs (other: reduction); residual adds and max pooling skipped",
                2 * other.get("normalization", 0) + other.get("reduction", 0))
    if tool == "ptflops (aten backend)":
        return "the classifier's bias additions (archlab: other: bias)", other.get("bias", 0)
    if tool == "torchinfo":
        return "batch norm's and the classifier's parameters, once each", _batch_norm_params(model) + _linear_bias(model)
    return "a mix of archlab's other operations (normalization, activation, pooling, ...)", None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="a zoo model (repeatable); default resnet50, mobilenet_v2")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    import archlab

    ok = True
    for name in args.model or ["resnet50", "mobilenet_v2"]:
        model = archlab.build(name).eval()
        x = torch.randn(1, 3, 224, 224)
        result = archlab.count(model, input_size=(3, 224, 224))
        print(f"\n{name}: archlab MACs {result.macs:,}, other operations {sum(result.other_ops.values()):,}\n")
        print("| tool | its number | what it calls it | beyond archlab's MACs | what the difference is |")
        print("|---|---:|---|---:|---|")
        with torch.no_grad():
            for tool, number, unit in peers(model, x):
                extra = number - (2 if tool == "FlopCounterMode" else 1) * result.macs
                text, expected = explain(tool, result, model)
                mark = "" if expected is None or expected == extra else f" (MISMATCH: expected {expected:,})"
                ok &= not mark
                print(f"| {tool} | {number:,} | {unit} | {extra:+,} | {text}{mark} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
