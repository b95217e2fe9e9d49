"""Measured latency of the MobileNet family and ResNet-50 on a CUDA GPU, beside their MACs.

    python benchmarks/gpu_latency.py [--device cuda] [--min-time 1.0] [--batch 1 --batch 32] [--out DIR]

For each dtype (fp32, fp16) and batch size: ``archlab latency mobilenet mobilenet_v2
mobilenet_v2@alpha=1.4 resnet50`` through the library (the same code as the command), printing
the comparison table (ratios to MobileNet v1, Spearman's rho of MACs vs latency, and the
MobileNetV2 paper's phone-CPU ratios beside ours at batch 1), then per-layer time of
MobileNetV2 at fp32 and batch 1. Everything is also written as JSON to ``--out`` (default:
$OUT when set, else the current directory), one file per setting plus ``environment.json``.

Ready for a session with a GPU: ``bash benchmarks/gpu_check.sh`` runs this script and the CUDA
tests there (see that file for the wheels to carry). The script finds archlab in the checkout it
lives in, installed or not. ``--device cpu`` runs the same on a CPU (slow at default settings; use
a small --min-time to check the script).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

# the checkout's archlab, also where it is not installed (the GPU machine's image has no archlab)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODELS = ("mobilenet", "mobilenet_v2", "mobilenet_v2@alpha=1.4", "resnet50")
DTYPES = ("fp32", "fp16")


def environment(device: str) -> dict:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "device": device,
           "cudnn_benchmark": torch.backends.cudnn.benchmark, "threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        env.update(gpu=torch.cuda.get_device_name(torch.device(device)), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(),
                   # fp32 convolutions and matmuls may run in TF32 on tensor cores: say which
                   cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                   matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--batch", type=int, action="append", help="repeatable (default: 1 and 32)")
    parser.add_argument("--out", default=os.environ.get("OUT") or ".")
    parser.add_argument("--no-per-layer", action="store_true")
    args = parser.parse_args(argv)
    batches = args.batch or [1, 32]

    from archlab.errors import UserError
    from archlab.measure.latency import check_options, latency, measure_all
    from archlab.measure.ranking import compare
    from archlab.report import latency as latency_report

    try:  # before anything is written: no environment.json for a GPU that is not there
        check_options(args.device, "fp32", None, args.min_time)
    except UserError as e:
        print(f"gpu_latency: error: {e}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    env = environment(args.device)
    print(json.dumps(env))
    with open(os.path.join(args.out, "environment.json"), "w") as f:
        json.dump(env, f, indent=2)
    start = time.time()
    try:
        for dtype in DTYPES:
            for batch in batches:
                results = measure_all(MODELS, device=args.device, dtype=dtype, batch=batch, min_time=args.min_time)
                c = compare(results)
                print(f"\n== {args.device} {dtype} batch {batch} ({time.time() - start:.0f} s so far)")
                print(latency_report.render(results, "table", c), end="")
                name = f"latency_{dtype}_b{batch}.json"
                with open(os.path.join(args.out, name), "w") as f:
                    f.write(latency_report.render(results, "json", c))
                sys.stdout.flush()
        if not args.no_per_layer:
            r = latency("mobilenet_v2", device=args.device, per_layer=True, min_time=args.min_time)
            print(f"\n== per layer ({time.time() - start:.0f} s so far)")
            print(latency_report.render([r], "table"), end="")
            with open(os.path.join(args.out, "per_layer_mobilenet_v2_fp32_b1.json"), "w") as f:
                f.write(latency_report.render([r], "json"))
    except UserError as e:
        print(f"gpu_latency: error: {e}", file=sys.stderr)
        return 2
    print(f"\ndone in {time.time() - start:.0f} s; JSON in {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
