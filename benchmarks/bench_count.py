"""How fast is `archlab count`? Ratios taken in one run (these machines are shared and noisy).

    python benchmarks/bench_count.py [--repeat 3] [--model resnet152]

Prints, each a median of --repeat whole-process runs:
  * `python -c "import torch"`: the floor every torch tool pays;
  * `archlab count MODEL` end to end, and its ratio to that floor (target <= 1.5x);
  * `archlab --help` (target < 0.5 s: it must not import torch);
  * the same model counted by fvcore's FlopCountAnalysis, and by ptflops, thop and
    torchinfo where installed, each in its own process on the same real model
    (archlab.build), with the speed-up of archlab over each, not counting the
    interpreter start and `import torch` that both pay (target >= 5x over fvcore);
  * the analysis step alone (model already built, in-process), for reference;
  * the peak resident memory of `archlab count efficientnet_b7` at 600x600 (target < 600 MB);
  * `archlab list` with its cache off and from a warm cache.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

PY = sys.executable

PEERS = {
    "fvcore": "from fvcore.nn import FlopCountAnalysis\n"
              "a = FlopCountAnalysis(m, x); a.unsupported_ops_warnings(False); a.uncalled_modules_warnings(False)\n"
              "a.total()",
    "ptflops": "from ptflops import get_model_complexity_info\n"
               "get_model_complexity_info(m, tuple(x.shape[1:]), print_per_layer_stat=False, as_strings=False)",
    "thop": "from thop import profile\nprofile(m, inputs=(x,), verbose=False)",
    "torchinfo": "from torchinfo import summary\nsummary(m, input_data=x, verbose=0)",
}


def walls(cmds: dict[str, list[str]], repeat: int) -> dict[str, float]:
    """Median wall time of each command; the commands take turns, so drift in the
    machine's load falls on all of them alike."""
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(repeat):
        for key, cmd in cmds.items():
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[key].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def peer_script(tool: str, model: str, timed: bool) -> str:
    # The peer gets the same real model archlab counts, built with real weights (peers need real tensors).
    setup = (
        "import time, torch, archlab\n"
        f"m = archlab.build({model!r}).eval()\n"
        f"x = torch.zeros(1, *archlab.resolve({model!r}).input_shape[1:])\n"
        "t = time.perf_counter()\n"
        "with torch.no_grad():\n"
    )
    body = "\n".join("    " + line for line in PEERS[tool].splitlines())
    tail = "\nprint(time.perf_counter() - t)\n" if timed else "\n"
    return setup + body + tail


def analysis_step(tool: str, model: str) -> float:
    out = subprocess.run([PY, "-c", peer_script(tool, model, True)], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def archlab_step(model: str) -> float:
    code = (
        "import time, torch, archlab\nfrom archlab.analysis.count import count_trace\nfrom archlab.trace.run import trace\n"
        f"r = archlab.resolve({model!r}); m = r.build(device='meta')\n"
        "x = torch.empty(r.input_shape, device='meta')\n"
        "t = time.perf_counter(); count_trace(trace(m, x), r.label); print(time.perf_counter() - t)\n"
    )
    out = subprocess.run([PY, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def list_times(archlab_cmd: list[str], repeat: int) -> tuple[float, float]:
    """`archlab list`: every model traced (cache off), then read from a warm cache."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "ARCHLAB_CACHE_DIR": folder}
        subprocess.run(archlab_cmd + ["list"], check=True, stdout=subprocess.DEVNULL, env=env)  # warms it
        times: dict[str, list[float]] = {"cold": [], "cached": []}
        for _ in range(repeat):
            for key, value in (("cold", "off"), ("cached", folder)):
                t = time.perf_counter()
                subprocess.run(archlab_cmd + ["list"], check=True, stdout=subprocess.DEVNULL,
                               env={**os.environ, "ARCHLAB_CACHE_DIR": value})
                times[key].append(time.perf_counter() - t)
    return statistics.median(times["cold"]), statistics.median(times["cached"])


def peak_rss_mb(cmd: list[str]) -> float:
    code = (
        "import resource, subprocess, sys\n"
        f"subprocess.run({cmd!r}, check=True, stdout=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )
    return float(subprocess.run([PY, "-c", code], check=True, capture_output=True, text=True).stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default="resnet152")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    archlab_cmd = [PY, "-m", "archlab"]
    # An installed package has its bytecode compiled by pip; an editable checkout under
    # PYTHONDONTWRITEBYTECODE would recompile archlab on every run and time the compiler.
    import archlab

    subprocess.run([PY, "-m", "compileall", "-q", os.path.dirname(archlab.__file__)], check=True)
    res: dict[str, object] = {"model": args.model, "repeat": args.repeat}

    cmds = {
        "floor": [PY, "-c", "import torch"],
        # archlab's console script skips the interpreter's teardown; this is the same floor without it
        "floor_fast_exit": [PY, "-c", "import torch, os; os._exit(0)"],
        "archlab": archlab_cmd + ["count", args.model],
        "help": archlab_cmd + ["--help"],
    }
    installed = [tool for tool in PEERS if importlib.util.find_spec(tool) is not None]
    cmds.update({tool: [PY, "-c", peer_script(tool, args.model, False)] for tool in installed})
    t = walls(cmds, args.repeat)
    floor, fast_floor, total, helptime = t["floor"], t["floor_fast_exit"], t["archlab"], t["help"]
    beyond = max(total - fast_floor, 1e-3)
    res.update(import_torch_s=floor, import_torch_fast_exit_s=fast_floor, archlab_count_s=total,
               ratio_to_import_torch=total / floor, ratio_to_import_torch_fast_exit=total / fast_floor,
               archlab_beyond_floor_s=beyond, archlab_help_s=helptime)
    peers = {}
    for tool in PEERS:
        if tool not in installed:
            peers[tool] = None
            continue
        peers[tool] = {"process_s": t[tool], "beyond_floor_s": t[tool] - floor,
                       "speedup_beyond_import_torch": (t[tool] - floor) / beyond,
                       "analysis_step_s": analysis_step(tool, args.model)}
    res["peers"] = peers
    res["archlab_analysis_step_s"] = archlab_step(args.model)
    res["efficientnet_b7_peak_rss_mb"] = peak_rss_mb(archlab_cmd + ["count", "efficientnet_b7"])
    res["archlab_list_cold_s"], res["archlab_list_cached_s"] = list_times(archlab_cmd, args.repeat)

    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{'step':58s} {'seconds':>8s}  ratio")
    floor_label = 'python -c "import torch" (the floor)'
    print(f"{floor_label:58s} {floor:8.2f}")
    print(f"{'  the same, exiting without interpreter teardown':58s} {fast_floor:8.2f}")
    print(f"{'archlab count ' + args.model:58s} {total:8.2f}  {total / floor:.2f}x the floor (target <= 1.5x); "
          f"{total / fast_floor:.2f}x the fast-exit floor")
    print(f"{'archlab --help':58s} {helptime:8.2f}  (target < 0.5 s)")
    for tool, r in peers.items():
        if r is None:
            print(f"{tool + ' (not installed)':58s}")
            continue
        print(f"{tool + ' on the same model, whole process':58s} {r['process_s']:8.2f}  archlab is "
              f"{r['speedup_beyond_import_torch']:.1f}x faster beyond import torch "
              f"({r['beyond_floor_s']:.2f} s vs {beyond:.2f} s)"
              + (" (target >= 5x)" if tool == "fvcore" else ""))
    print("analysis step alone, model already built (in-process):")
    step = res["archlab_analysis_step_s"]
    print(f"{'  archlab trace + count (meta)':58s} {step:8.3f}")
    for tool, r in peers.items():
        if r:
            print(f"{'  ' + tool:58s} {r['analysis_step_s']:8.3f}  {r['analysis_step_s'] / step:.0f}x archlab")
    print(f"{'peak RSS of archlab count efficientnet_b7 (600x600), MB':58s} "
          f"{res['efficientnet_b7_peak_rss_mb']:8.0f}  (target < 600 MB)")
    cold, cached = res["archlab_list_cold_s"], res["archlab_list_cached_s"]
    print(f"{'archlab list, every model traced (cache off)':58s} {cold:8.2f}")
    print(f"{'archlab list, from the cache':58s} {cached:8.2f}  {cold / cached:.0f}x faster, no import torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
