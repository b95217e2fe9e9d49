"""The measured memory peak of each rank of a real ``torch.distributed`` training step on the CPU (gloo),
to check the per-rank bill (``archlab.analysis.sharding``) against.

``world_size`` processes are spawned (``torch.multiprocessing``, start method ``spawn``), joined over
gloo on a free localhost port. Each runs the step that ``measure_training_peak`` measures (forward,
``loss = sum of the outputs``, backward, optimizer step; the second step measured, the gradients set
to None between the two) on its own per-rank batch, with the model wrapped as the scheme says:

- ``ddp``: ``DistributedDataParallel`` (its gradient buckets are allocated when it is built);
- ``zero1``: ``DistributedDataParallel`` (which all-reduces the gradients) with
  ``torch.distributed.optim.ZeroRedundancyOptimizer`` around the optimizer (each rank keeps the state of
  its own partition of the parameters), as PyTorch's own ZeRO recipe pairs them;
- ``fsdp``: FSDP2, ``fully_shard`` on each unit (by default each top-level block: the children, with
  parameters, of every outermost ``Sequential``/``ModuleList``/``ModuleDict`` that holds at least two
  children of one class, the policy of ``archlab.analysis.sharding``), then on the root.

``checkpoint``: module names whose forward runs under ``torch.utils.checkpoint`` (non-reentrant).

What is measured: every byte the rank allocates through PyTorch's CPU allocator, on every thread. The
profiler's allocation records are per thread (only the thread that runs the profiler is seen), while gloo
and DDP allocate and free on their own threads too (a collective's flat buffers, the last reference to a
bucket dropped by gloo's worker): a running sum of the main thread's records drifts by whole gradient
copies from run to run. So the rank turns on c10's process-wide allocation table
(``FLAGS_caffe2_report_cpu_memory_usage``, read by ``ProfiledCPUMemoryReporter`` in c10's
``CPUAllocator.cpp``) before it copies the model: every allocation and free, on any thread, updates one
total, and each profiler record carries that total ("Total Allocated" of the exported trace). The step's
peak is the largest total inside the second step (a transient of another thread's that starts and ends
between two of the main thread's allocations is not seen); what was alive when it started is the total
then. The components are read from the tensors: parameters (a DTensor's local shard), gradients (after the
second step) and optimizer state (``ZeroRedundancyOptimizer``'s own partition's), each the bytes of their
distinct storages.

A rank that does not finish within ``timeout`` seconds stops the run: every process is killed and
a ``UserError`` says so; the processes are ended in every case."""

from __future__ import annotations

import json
import os
import pickle
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from archlab.errors import UserError

SCHEMES = ("ddp", "zero1", "fsdp")


@dataclass(frozen=True)
class RankPeak:
    """One rank's measured step, in bytes (of the tensors' own dtypes)."""

    rank: int
    peak_bytes: int  # the running total's largest value inside the second step
    params_bytes: int  # this rank's parameters (FSDP: its shards)
    gradients_bytes: int  # this rank's gradients after the step (FSDP: sharded)
    optimizer_state_bytes: int  # this rank's optimizer state (ZeRO-1: its partition's)
    start_bytes: int  # the running total when the second step starts

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def block_names(model: Any) -> list[str]:
    """The default FSDP units of a real model, by the per-rank bill's policy (``archlab.analysis.sharding``): the
    children (with parameters) of every outermost container that holds at least two children of one class with
    parameters."""
    from archlab.analysis.sharding import blocks_of

    return blocks_of([(n, type(m).__name__) for n, m in model.named_modules()],
                     [n for n, _ in model.named_parameters()])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _storages_bytes(tensors: Iterable[Any]) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        local = t.to_local() if hasattr(t, "to_local") else t
        storage = local.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def _checkpointed(module: Any) -> None:
    from torch.utils.checkpoint import checkpoint

    forward = module.forward

    def run(*args: Any, **kwargs: Any) -> Any:
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    module.forward = run


def _rank_main(rank: int, world_size: int, port: int, job: dict, out_dir: str) -> None:
    """One rank's run (a spawned process): writes ``rank<N>.json``, or ``rank<N>.err`` with the error."""
    import copy
    import logging

    import torch
    import torch.distributed as dist
    from torch.profiler import ProfilerActivity, profile, record_function

    from archlab.models.external import load_source
    from archlab.measure.training_peak import make_optimizer, training_step
    from archlab.trace.inputs import floating_dtype

    try:
        silence()  # the user's code writes nowhere (a rank's error goes to its .err file)
        for name, path in job["user_modules"]:  # the files the model's classes come from, as the caller loaded them
            load_source(name, path)
        source = pickle.loads(job["model"])  # before the count starts: the rank's copy is what it counts
        torch.set_num_threads(1)
        count_every_thread()
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                                timeout=__import__("datetime").timedelta(seconds=job["timeout"]))
        torch.manual_seed(rank)
        logging.getLogger("torch.profiler").setLevel(logging.ERROR)
        scheme = job["scheme"]
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            model = copy.deepcopy(source).train()  # the rank's own tensors, allocated under the profiler
            dtype = floating_dtype(model)
            for name in job["checkpoint"]:
                _checkpointed(model.get_submodule(name))
            if scheme in ("ddp", "zero1"):
                from torch.nn.parallel import DistributedDataParallel

                model = DistributedDataParallel(model)
                opt = make_optimizer(job["optimizer"], list(model.parameters()))
            if scheme == "zero1":
                from torch.distributed.optim import ZeroRedundancyOptimizer

                cls = type(make_optimizer(job["optimizer"], [torch.nn.Parameter(torch.zeros(1))]))
                defaults = make_optimizer(job["optimizer"], [torch.nn.Parameter(torch.zeros(1))]).defaults
                opt = ZeroRedundancyOptimizer(list(model.parameters()), optimizer_class=cls, **defaults)
            if scheme == "fsdp":
                from torch.distributed.fsdp import fully_shard

                for name in job["units"]:
                    fully_shard(model.get_submodule(name))
                fully_shard(model)
                opt = make_optimizer(job["optimizer"], list(model.parameters()))

            step = training_step(model, opt, job["input_shape"], job["options"], "cpu", dtype)

            step()
            opt.zero_grad(set_to_none=True)
            dist.barrier()
            with record_function("archlab.step_two"):
                step()
            dist.barrier()
        start_total, peak = step_totals(prof, os.path.join(out_dir, f"trace{rank}.json"))
        state_owner = opt.optim if scheme == "zero1" else opt
        state = [t for s in state_owner.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
        result = RankPeak(rank, peak, _storages_bytes(model.parameters()),
                          _storages_bytes(p.grad for p in model.parameters() if p.grad is not None),
                          _storages_bytes(state), start_total)
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w", encoding="utf-8") as f:
            json.dump(result.to_dict(), f)
    except BaseException as e:  # noqa: BLE001 - the parent reports it in one line
        with open(os.path.join(out_dir, f"rank{rank}.err"), "w", encoding="utf-8") as f:
            f.write(f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def silence() -> None:
    """Send this process's standard output and error (file descriptors 1 and 2, and Python's) to the null
    device: a rank's prints, the user's and the libraries', never reach archlab's output."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the life of the rank
    sys.stderr = sys.stdout


def count_every_thread() -> None:
    """Turn on c10's process-wide table of CPU allocations (``FLAGS_caffe2_report_cpu_memory_usage``): from now
    on, the profiler's allocation records carry the total that every thread's allocations and frees keep."""
    import ctypes
    import glob

    import torch

    libs = sorted(glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "*c10.*")))
    for path in libs:
        try:
            ctypes.c_bool.in_dll(ctypes.CDLL(path), "FLAGS_caffe2_report_cpu_memory_usage").value = True
            return
        except (OSError, ValueError):
            continue
    raise UserError("this PyTorch build does not expose c10's allocation table (FLAGS_caffe2_report_cpu_memory_usage "
                    f"in {', '.join(libs) or 'torch/lib'}): the distributed step's memory cannot be measured")


def step_totals(prof: Any, path: str) -> tuple[int, int]:
    """(the allocated total when the second step starts, its largest value inside the step), in bytes, from the
    "Total Allocated" of the profiler's CPU allocation records (the exported trace: the only place the records
    give it)."""
    prof.export_chrome_trace(path)
    with open(path, encoding="utf-8") as f:
        events = json.load(f)["traceEvents"]
    os.remove(path)
    step = [e for e in events if e.get("name") == "archlab.step_two" and "dur" in e]
    if not step:
        raise RuntimeError("the second step's profiler range is missing")
    begin, end = float(step[0]["ts"]), float(step[0]["ts"]) + float(step[0]["dur"])
    records = sorted(((float(e["ts"]), i, e["args"]) for i, e in enumerate(events)
                      if e.get("name") == "[memory]" and e.get("args", {}).get("Device Type") == 0),
                     key=lambda r: (r[0], r[1]))
    start, peak = None, 0
    for ts, _, args in records:
        if ts < begin or ts > end:
            continue
        total = int(args["Total Allocated"])
        if start is None:  # the total just before the step's first record
            start = total - int(args["Bytes"])
        peak = max(peak, total)
    if start is None:
        raise RuntimeError("no allocation was recorded inside the second step")
    return start, max(peak, start)


def measure_distributed_peak(model: Any, input_shape: Any, *, scheme: str, world_size: int = 2,
                             optimizer: str = "sgd", options: Any = (), checkpoint: Sequence[str] = (),
                             units: Sequence[str] | None = None, timeout: float = 300.0) -> list[RankPeak]:
    """Each rank's measured peak of one real training step of ``model`` (an ``nn.Module``) wrapped as
    ``scheme``; ``input_shape`` is the per-rank batch's (batch first). Returns one ``RankPeak`` per rank."""
    import torch
    import torch.multiprocessing as mp

    if scheme not in SCHEMES:
        raise UserError(f"unknown distributed scheme '{scheme}' (choose from {', '.join(SCHEMES)})")
    if not isinstance(world_size, int) or world_size < 1:
        raise UserError(f"world size must be a positive integer, got {world_size!r}")
    if not isinstance(model, torch.nn.Module):
        raise UserError("the distributed measurement needs a model (an nn.Module)")
    names = dict(model.named_modules())
    for name in list(checkpoint) + list(units or []):
        if name not in names or not name:
            raise UserError(f"no module named '{name}' in {type(model).__name__}")
    try:
        payload = pickle.dumps(model)
    except Exception as e:  # noqa: BLE001 - a lambda, a local class, an open file in the model
        raise UserError(f"the model cannot be sent to the ranks (pickle: {type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); give a model whose classes are importable")
    from archlab.models.external import USER_MODULE_PREFIX

    user_modules = [(name, m.__file__) for name, m in list(sys.modules.items())
                    if name.startswith(USER_MODULE_PREFIX) and getattr(m, "__file__", None)]
    job = {"scheme": scheme, "model": payload, "user_modules": user_modules, "input_shape": input_shape,
           "optimizer": optimizer,
           "options": options, "checkpoint": list(checkpoint), "timeout": timeout,
           "units": list(block_names(model) if units is None else units)}
    with tempfile.TemporaryDirectory(prefix="archlab-dist-") as out_dir:
        ctx = mp.start_processes(_rank_main, args=(world_size, _free_port(), job, out_dir), nprocs=world_size,
                                 join=False, start_method="spawn")
        try:
            deadline = time.monotonic() + timeout
            while not all(not p.is_alive() for p in ctx.processes):
                if time.monotonic() > deadline:
                    raise UserError(f"the distributed step ({scheme}, {world_size} ranks) did not finish within "
                                    f"{timeout:g} s; its processes were stopped")
                time.sleep(0.1)
        finally:
            for p in ctx.processes:
                if p.is_alive():
                    p.kill()
                p.join(5)
        errors = [open(os.path.join(out_dir, f), encoding="utf-8").read() for f in sorted(os.listdir(out_dir))
                  if f.endswith(".err")]
        if errors:
            raise UserError(f"the distributed step ({scheme}, {world_size} ranks) failed on a rank: {errors[0]}")
        results = []
        for rank in range(world_size):
            path = os.path.join(out_dir, f"rank{rank}.json")
            if not os.path.exists(path):
                raise UserError(f"rank {rank} of the distributed step ({scheme}) ended without a result (exit code "
                                f"{ctx.processes[rank].exitcode}): the ranks are spawned processes that import the "
                                "caller's main module; called from a script, the call must be under "
                                "if __name__ == '__main__':")
            with open(path, encoding="utf-8") as f:
                results.append(RankPeak(**json.load(f)))
        return results
