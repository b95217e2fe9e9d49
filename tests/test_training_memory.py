"""memory --training: the training-step bill by hand, the batch budget, and the prediction against a real
step measured on the CPU."""

from __future__ import annotations

import json

import pytest
from torch import nn

from archlab.trace.run import trace_training
from archlab.analysis.training_memory import parse_bytes, step_peak
from archlab.api.memory import training_memory
from archlab.errors import UserError


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))


def test_bill_by_hand():
    params = 4 * 5 + 5 + 5 * 3 + 3  # 43
    r = training_memory(_mlp(), input_size=(4,), batch=2, optimizer="adam")
    assert r.params_bytes == 4 * params
    assert r.gradients_bytes == 4 * params
    assert r.optimizer_state_bytes == 2 * 4 * params + 4 * 4  # exp_avg, exp_avg_sq, and 4 step counters
    assert training_memory(_mlp(), input_size=(4,), batch=2, optimizer="momentum").optimizer_state_bytes == 4 * params
    assert training_memory(_mlp(), input_size=(4,), batch=2, optimizer="sgd").optimizer_state_bytes == 0
    # alive when the backward starts: the batch (2x4, which the first Linear saves for its weight gradient),
    # the ReLU's result (2x5: ReLU saves it, the second Linear saves it as its input) and the scalar loss;
    # the first Linear's output and the model's output (2x3) are freed, nothing in the backward reads them
    assert r.saved_activations_bytes == 4 * (2 * 4 + 2 * 5 + 1)
    assert r.training_peak_bytes == (r.params_bytes + r.optimizer_state_bytes
                                     + max(r.activation_peak_bytes, r.optimizer_step_bytes))
    # Adam's step: every gradient plus two temporaries of the largest parameter (the 5x4 weight)
    assert r.optimizer_step_bytes == r.gradients_bytes + 2 * 4 * 20


def test_a_bf16_models_bill_is_at_bf16_and_says_so(cli, tmp_path):
    import torch

    params = 4 * 5 + 5 + 5 * 3 + 3
    fp32 = training_memory(_mlp(), input_size=(4,), batch=2, optimizer="adam")
    bf16 = training_memory(_mlp().to(torch.bfloat16), input_size=(4,), batch=2, optimizer="adam")
    assert bf16.dtype == "bf16" and fp32.dtype == "fp32"
    # parameters, gradients and Adam's two buffers at 2 bytes; the step counters stay one fp32 element each
    assert (bf16.params_bytes, bf16.gradients_bytes) == (2 * params, 2 * params)
    assert bf16.optimizer_state_bytes == 2 * 2 * params + 4 * 4
    assert bf16.saved_activations_bytes * 2 == fp32.saved_activations_bytes
    # the measured step runs in bf16 too (it was cast to fp32): half of the fp32 step's bytes, and
    # the bf16 bill within 1% of it (a few bytes of the CPU allocator's rounding apart)
    def wide(dtype):
        return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10)).to(dtype)

    steps = [training_memory(wide(d), input_size=(64,), batch=32, optimizer="adam", measure=True)
             for d in (torch.float32, torch.bfloat16)]
    assert steps[1].measured_training_peak_bytes * 2 <= steps[0].measured_training_peak_bytes * 1.01
    assert abs(steps[1].measured_diff_percent) <= 1, steps[1]
    path = tmp_path / "bf16mlp.py"
    path.write_text("import torch\nfrom torch import nn\n\n\ndef mlp():\n"
                    "    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).to(torch.bfloat16)\n")
    r = cli("memory", f"{path}:mlp", "--input-size", "4", "--batch", "2", "--training", "--optimizer", "adam")
    assert r.code == 0, r.err
    lines = {line.split("  ")[0]: line for line in r.out.splitlines()}
    assert f"{params} params at bf16" in lines["parameters"] and "fp32" not in lines["parameters"]
    assert lines["gradients"].endswith(f"({params}), bf16")
    assert "(at bf16)" in lines["saved activations"]


def test_frozen_parameters_have_no_gradient_or_state():
    full = training_memory(_mlp(), input_size=(4,), batch=2, optimizer="adam")
    frozen = training_memory(_mlp(), input_size=(4,), batch=2, optimizer="adam", freeze=("0",))
    assert frozen.gradients_bytes == full.gradients_bytes - 4 * 25
    assert frozen.optimizer_state_bytes == full.optimizer_state_bytes - 2 * 4 * 25 - 2 * 4
    assert frozen.params_bytes == full.params_bytes


def test_amp_halves_activations_and_adds_weight_copies():
    fp32 = training_memory("resnet18", res=64, batch=4)
    amp = training_memory("resnet18", res=64, batch=4, amp="bf16")
    assert amp.amp_weight_copies_bytes == fp32.params_bytes // 2
    assert amp.gradients_bytes == fp32.gradients_bytes  # gradients of the fp32 master weights
    assert amp.saved_activations_bytes < fp32.saved_activations_bytes


def test_peak_grows_with_the_batch_and_budget_finds_the_largest():
    limit = training_memory("resnet18", res=64, batch=16).training_peak_bytes
    r = training_memory("resnet18", res=64, batch=2, budget=limit)
    assert r.max_batch == 16 and r.max_batch_peak_bytes == limit
    r = training_memory("resnet18", res=64, batch=2, budget=limit - 1)
    assert r.max_batch == 15 and r.max_batch_peak_bytes <= limit - 1
    assert training_memory(_mlp(), input_size=(4,), budget=100).max_batch == 0  # the parameters alone do not fit


def test_parse_bytes():
    assert parse_bytes("8GiB") == 8 * 2**30
    assert parse_bytes("512 MiB") == 512 * 2**20
    assert parse_bytes("16GB") == 16 * 10**9
    assert parse_bytes(1000) == 1000
    for bad in ("lots", "-1GiB", "0"):
        with pytest.raises(UserError):
            parse_bytes(bad)


def test_a_budget_without_a_unit_is_refused(cli):
    assert parse_bytes("4096B") == 4096
    for bare in ("8", "1e9"):
        with pytest.raises(UserError, match="needs a unit"):
            parse_bytes(bare)
    r = cli("memory", "lenet5", "--training", "--budget", "8")
    assert r.code == 2 and r.err.count("\n") == 1 and "needs a unit" in r.err, r.err


def test_step_peak_counts_gradients_to_the_end():
    model, x = _mlp(), __import__("torch").empty(2, 4, device="meta")
    tt = trace_training(model, x)
    peak = step_peak(tt, 4)
    assert peak.gradients_bytes == 4 * 43
    assert peak.bytes >= peak.gradients_bytes


@pytest.mark.parametrize("name, res, optimizer", [
    ("resnet18", 64, "sgd"), ("resnet18", 64, "adam"), ("mobilenet_v2", 64, "sgd"), ("mobilenet_v2", 64, "adam"),
    pytest.param("unet", 188, "sgd", marks=pytest.mark.slow), pytest.param("unet", 188, "adam", marks=pytest.mark.slow),
])
def test_prediction_within_15_percent_of_a_real_step(name, res, optimizer):
    r = training_memory(name, res=res, batch=8, optimizer=optimizer, measure=True)
    assert abs(r.measured_diff_percent) <= 15, (r.training_peak_bytes, r.measured_training_peak_bytes)
    # and what the step itself allocates (activations, gradients, temporaries), beyond the parameters and
    # optimizer state whose sizes are exact, within 15% as well
    persistent = r.params_bytes + r.optimizer_state_bytes
    predicted = r.training_peak_bytes - persistent
    measured = r.measured_training_peak_bytes - persistent
    assert abs(predicted - measured) <= 0.15 * measured, (predicted, measured)


def test_cli(cli):
    r = cli("memory", "lenet5", "--training", "--batch", "4", "--optimizer", "adam", "-f", "json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    for key in ("gradients_bytes", "optimizer_state_bytes", "training_peak_bytes", "measured_training_peak_bytes"):
        assert key in d
    r = cli("memory", "lenet5", "--training", "--budget", "1GiB")
    assert r.code == 0 and "largest batch in budget" in r.out
    r = cli("memory", "lenet5", "--optimizer", "adam")
    assert r.code == 2 and "--training" in r.err
    r = cli("memory", "lenet5", "--training", "--optimizer", "rmsprop")
    assert r.code == 2 and "sgd, momentum, adam, adamw" in r.err
    r = cli("memory", "lenet5", "--training", "--act-dtype", "fp16")
    assert r.code == 2 and "--amp" in r.err


# --- one rank's bill: --world-size, --shard, --offload, --fsdp-unit ---------------------------------------

def _rank(shard: str, world_size: int = 2, batch: int = 4, **kw):
    return training_memory(_mlp(), input_size=(4,), batch=batch, world_size=world_size, shard=shard, **kw)


def test_ddp_rank_is_the_single_device_bill_at_its_batch_plus_the_gradient_buckets():
    params = 4 * 5 + 5 + 5 * 3 + 3  # 43
    single = training_memory(_mlp(), input_size=(4,), batch=2, optimizer="adam")
    r = _rank("none", optimizer="adam")
    assert (r.world_size, r.global_batch, r.per_rank_batch, r.input_shape) == (2, 4, 2, single.input_shape)
    assert (r.params_bytes, r.gradients_bytes, r.comm_buffers_bytes) == (4 * params, 4 * params, 4 * params)
    assert r.optimizer_state_bytes == single.optimizer_state_bytes
    assert r.activation_peak_bytes == single.activation_peak_bytes
    # gradient_as_bucket_view=False: the buckets are a second copy of every gradient, for the whole run
    assert r.training_peak_bytes == single.training_peak_bytes + 4 * params
    assert r.ddp_buckets == 1  # 172 bytes: one bucket, under the first bucket's 1 MiB cap


def test_zero1_bills_the_rank_with_the_largest_partition_as_zero_redundancy_optimizer_makes_it():
    # ZeroRedundancyOptimizer sorts by size (20, 15, 5, 3 elements) and gives each to the rank with the fewest:
    # 20 -> rank 0, 15 -> rank 1, 5 -> rank 1 (15 < 20), 3 -> rank 0 (20 = 20: the lowest rank)
    r = _rank("zero1", optimizer="adam")
    assert r.rank == 0
    assert r.optimizer_state_bytes == 2 * 4 * (20 + 3) + 2 * 4  # two buffers, and a step counter per parameter
    assert r.optimizer_step_bytes == r.gradients_bytes + 2 * 4 * 20  # Adam's temporaries of its largest, 5x4
    none = _rank("none", optimizer="adam")
    assert r.training_peak_bytes == none.training_peak_bytes - (none.optimizer_state_bytes - r.optimizer_state_bytes)
    assert _rank("zero1", optimizer="sgd").optimizer_state_bytes == 0


def test_zero3_shards_pad_dim_0_and_the_units_are_the_repeated_blocks():
    r = _rank("zero3", optimizer="momentum")
    # shards over 2 ranks, dim 0 padded: (5,4) -> 3x4, (5,) -> 3, (3,5) -> 2x5, (3,) -> 2: 27 elements
    assert r.params_bytes == 4 * 27 and r.gradients_bytes == 4 * 27 and r.optimizer_state_bytes == 4 * 27
    # Sequential(Linear, ReLU, Linear): two Linears, so each is a unit; the root holds nothing
    assert (r.units, r.root_unit_bytes, r.largest_unit, r.largest_unit_bytes) == (2, 0, "0", 4 * 25)
    # the sum at the rank's peak: activations + gradients, and what FSDP holds while that op runs
    assert r.training_peak_bytes == r.params_bytes + r.optimizer_state_bytes + max(
        r.activation_peak_bytes + r.gathered_params_bytes + r.unit_gradients_bytes + r.comm_buffers_bytes,
        r.optimizer_step_bytes)
    assert _rank("fsdp", optimizer="momentum").training_peak_bytes == r.training_peak_bytes
    z2 = _rank("zero2", optimizer="momentum")
    assert (z2.params_bytes, z2.gradients_bytes, z2.gathered_params_bytes) == (4 * 43, 4 * 27, 0)


def test_what_fsdp_holds_beside_the_activations_op_by_op():
    import torch

    from archlab.analysis.sharding import fsdp_timeline, fsdp_units, shard_bytes

    tt = trace_training(_mlp(), torch.empty(2, 4, device="meta"))
    root, units, _ = fsdp_units(tt)
    assert [u.name for u in units] == ["0", "2"] and root.params == ()
    shards = {u.name: sum(shard_bytes(p, 2) for p in u.params) for u in units}  # 4 x 15 and 4 x 12 bytes
    assert shards == {"0": 4 * 15, "2": 4 * 12}
    timeline, names = fsdp_timeline(tt, root, units, 2, gathers=True, shard_grads=shards)
    ops, start = tt.trace.ops, tt.backward_start

    def at(unit: str, phase: str, which: int) -> tuple[int, int, int]:
        mine = [op.index for op in ops if names.get(op.index) == unit and (op.index >= start) == (phase == "b")]
        return timeline[mine[which]]

    # (gathered parameters, the unit's gradients beyond this rank's shard, communication buffers), bytes:
    # unit "0" holds 25 fp32 parameters (padded flat all-gather output: 2 x 15), unit "2" 18 (2 x 12)
    assert at("0", "f", 0) == (4 * 25, 0, 4 * 30)  # its parameters, and the all-gather output being copied out
    assert at("0", "f", -1) == (4 * 25, 0, 0)
    assert at("2", "f", 0) == (4 * 18, 0, 4 * 24)
    assert at("2", "b", 0) == (4 * 18, 4 * (18 - 12), 4 * 24)  # its own all-gather output, copied out
    assert at("2", "b", 1) == (4 * 18, 4 * 6, 4 * 30)  # unit "0"'s, prefetched
    assert at("2", "b", -1) == (4 * 18, 4 * 6, 4 * 30 + 4 * 24)  # + its reduce-scatter input
    assert at("0", "b", 1) == (4 * 25, 4 * 10, 4 * 24)  # unit "2"'s reduce-scatter input, kept until this one's
    assert at("0", "b", -1) == (4 * 25, 4 * 10, 4 * 24 + 4 * 30)
    between = [op.index for op in ops if op.index >= start and op.target == "aten.threshold_backward.default"]
    assert timeline[between[0]] == (0, 0, 4 * 30 + 4 * 24)  # the ReLU: no unit; a prefetch and a kept input
    # ZeRO-2: nothing gathered, the same gradients and reduce-scatter inputs
    z2, _ = fsdp_timeline(tt, root, units, 2, gathers=False, shard_grads=shards)
    assert z2[between[0]] == (0, 0, 4 * 24)
    r = _rank("zero3", optimizer="momentum")  # the bill's terms are the timeline's where its peak is
    peak_op = [i for i, parts in timeline.items() if parts == (r.gathered_params_bytes, r.unit_gradients_bytes,
                                                                 r.comm_buffers_bytes)]
    assert peak_op and r.peak_unit == names.get(peak_op[0])


def test_the_default_fsdp_units_of_a_cnn_and_of_a_transformer():
    from archlab.analysis.sharding import fsdp_units

    tt = trace_training(__import__("archlab").Model("resnet18", res=32, batch=2).module,
                        __import__("torch").empty(2, 3, 32, 32, device="meta"))
    root, units, policy = fsdp_units(tt)
    assert [u.name for u in units] == [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    assert [p.name for p in root.params] == ["conv1.weight", "bn1.weight", "bn1.bias", "fc.weight", "fc.bias"]
    assert "top-level block" in policy
    root, units, policy = fsdp_units(tt, ("layer4", "layer4.1"))
    assert [u.name for u in units] == ["layer4", "layer4.1"]  # nested: layer4.1's parameters are its own
    assert all(not p.name.startswith("layer4.1.") for p in units[0].params)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn, self.mlp = nn.Linear(8, 8), nn.Linear(8, 8)

        def forward(self, x):
            return self.mlp(self.attn(x))

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(4, 8)
            self.layers = nn.ModuleList([Block() for _ in range(3)])
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            x = self.embed(x)
            for layer in self.layers:
                x = layer(x)
            return self.head(x)

    tt = trace_training(Decoder(), __import__("torch").empty(2, 4, device="meta"))
    root, units, _ = fsdp_units(tt)
    assert [u.name for u in units] == ["layers.0", "layers.1", "layers.2"]  # the ModuleList's blocks, never called
    assert [p.name for p in root.params] == ["embed.weight", "embed.bias", "head.weight", "head.bias"]


def test_offload_moves_the_state_or_the_shards_to_the_host():
    base = _rank("zero3", optimizer="adam")
    opt = _rank("zero3", optimizer="adam", offload="optimizer")
    assert opt.optimizer_state_bytes == 0
    assert opt.host_bytes == base.optimizer_state_bytes + 2 * 4 * 12  # the state and Adam's temporaries (a 3x4 shard)
    par = _rank("zero3", optimizer="adam", offload="params")
    assert (par.params_bytes, par.gradients_bytes, par.optimizer_state_bytes) == (0, 0, 0)
    assert par.host_bytes == base.params_bytes + base.gradients_bytes + opt.host_bytes
    assert par.training_peak_bytes < opt.training_peak_bytes < base.training_peak_bytes


def test_sharding_lowers_resnet18s_peak_per_rank_in_order():
    peaks = {s: training_memory("resnet18", res=32, batch=16, optimizer="adam", world_size=8, shard=s)
             for s in ("none", "zero1", "zero2", "zero3")}
    assert peaks["none"].training_peak_bytes > peaks["zero1"].training_peak_bytes > peaks["zero2"].training_peak_bytes
    assert peaks["zero3"].params_bytes < peaks["zero2"].params_bytes / 7
    assert peaks["zero3"].training_peak_bytes < peaks["zero2"].training_peak_bytes
    assert all(r.input_shape == (2, 3, 32, 32) for r in peaks.values())  # the global 16 over 8 ranks


def test_budget_per_rank_finds_the_largest_global_batch():
    limit = _rank("zero3", batch=8).training_peak_bytes
    r = _rank("zero3", batch=2, budget=limit)
    assert r.max_batch % 2 == 0 and r.max_batch >= 8 and r.max_batch_peak_bytes <= limit
    assert _rank("zero3", batch=r.max_batch + 2).training_peak_bytes > limit


def test_sharding_bad_input_is_one_line(cli):
    from conftest import assert_one_line_error

    base = ("memory", "resnet18", "--res", "32", "--training")
    assert_one_line_error(cli(*base, "--world-size", "2", "--shard", "zero3"), "each rank", "--batch 4 or more")
    base += ("--batch", "4")
    assert_one_line_error(cli("memory", "resnet18", "--training", "--batch", "6", "--world-size", "4"), "global batch", "does not divide",
                          "--batch 4 or 8")
    assert_one_line_error(cli(*base, "--shard", "zero4"), "unknown --shard 'zero4'", "zero1, zero2, zero3, fsdp")
    assert_one_line_error(cli(*base, "--world-size", "2", "--offload", "optimizer"), "needs sharding")
    assert_one_line_error(cli(*base, "--world-size", "2", "--shard", "zero1", "--offload", "params"),
                          "zero3 or fsdp")
    assert_one_line_error(cli(*base, "--shard", "zero3", "--offload", "disk"), "unknown --offload 'disk'")
    for bad in ("0", "-2"):
        assert_one_line_error(cli(*base, "--world-size", bad), "--world-size must be a whole number of at least 1")
    assert_one_line_error(cli(*base, "--shard", "zero3", "--fsdp-unit", "blocks.*"), "--fsdp-unit blocks.*",
                          "no module", "layer4")
    assert_one_line_error(cli(*base, "--shard", "fsdp", "--fsdp-unit", "*relu*"), "hold no parameters")
    assert_one_line_error(cli(*base, "--world-size", "2", "--fsdp-unit", "layer*"), "applies to --shard zero2",
                          "not none")
    assert_one_line_error(cli("memory", "resnet18", "--world-size", "2"), "--world-size", "add --training")
    with pytest.raises(UserError, match="at least 1"):
        _rank("none", world_size=True)


def test_per_rank_cli_formats(cli):
    r = cli("memory", "lenet5", "--training", "--batch", "4", "--world-size", "2", "--shard", "zero3",
            "--optimizer", "adam", "-f", "json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert (d["world_size"], d["global_batch"], d["per_rank_batch"], d["shard"]) == (2, 4, 2, "zero3")
    # the JSON says its units, and the FSDP unit count has a key of its own (it once overwrote "units")
    assert d["units"]["bytes"].startswith("bytes per rank") and "training_peak_bytes" in d["units"]
    assert d["fsdp_units"] == training_memory("lenet5", batch=4, world_size=2, shard="zero3", optimizer="adam").units
    for key in ("params_bytes", "gradients_bytes", "optimizer_state_bytes", "comm_buffers_bytes",
                "gathered_params_bytes", "training_peak_bytes", "wrap_policy"):
        assert key in d
    r = cli("memory", "lenet5", "--training", "--batch", "4", "--world-size", "2", "--shard", "zero1")
    assert r.code == 0, r.err
    rows = {line.split("  ")[0]: line for line in r.out.splitlines()[1:]}
    assert "DDP's gradient buckets" in rows["communication buffers"]
    # a glob given as one string, from the API, is one glob
    one = training_memory("resnet18", res=32, batch=4, world_size=2, shard="zero3", fsdp_unit="layer*")
    assert (one.units, one.wrap_policy) == (4, "each outermost module matching layer*")  # not every module inside
    assert "training peak per rank" in rows
    r = cli("memory", "lenet5", "--training", "--world-size", "2", "--shard", "zero2", "-f", "csv")
    assert r.code == 0 and r.out.startswith("model,world_size,global_batch,shard"), r.out

# --- activation checkpointing (--checkpoint) and its plan to a budget (--checkpoint auto) -------------------

def _tanh_block() -> nn.Module:
    """x (4x2) -> Linear 2->16 -> block [tanh, tanh, Linear 16->16] -> Linear 16->1; no biases."""
    return nn.Sequential(nn.Linear(2, 16, bias=False),
                         nn.Sequential(nn.Tanh(), nn.Tanh(), nn.Linear(16, 16, bias=False)),
                         nn.Linear(16, 1, bias=False))


def test_checkpointed_bill_by_hand():
    plain = training_memory(_tanh_block(), input_size=(2,), batch=4)
    ckpt = training_memory(_tanh_block(), input_size=(2,), batch=4, checkpoint="1")
    act = 4 * 16 * 4  # one 4x16 fp32 activation: 256 bytes
    # alive when the backward starts, without checkpointing: the batch (32 B, saved by the first Linear), both
    # tanh results (each tanh saves its result; the block's Linear saves the second), the block's output (the
    # last Linear's input) and the loss; the first Linear's output is freed (tanh saves its result, not its input)
    assert plain.saved_activations_bytes == 32 + 3 * act + 4
    # checkpointing the block: the tanh results are freed after the forward; its input (the first Linear's
    # output) is kept for the recompute; its output stays alive for the last Linear
    assert ckpt.saved_activations_bytes == 32 + 2 * act + 4
    # the peak, both ways at the block's Linear's weight gradient: the batch, the last Linear's weight gradient
    # (16 x 4 B), the gradient of the block's output, the two tanh results (recomputed, with checkpointing), the
    # gradient of the Linear's input, and its weight gradient (16 x 16 x 4 B)
    assert plain.activation_peak_bytes == ckpt.activation_peak_bytes == 32 + 64 + 4 * act + 1024
    assert "in '1.2'" in ckpt.activation_peak_at
    assert ckpt.recompute_macs == 4 * 16 * 16  # the block's Linear, once more
    assert ckpt.checkpointed == ("1",) and ckpt.unplanned_training_peak_bytes == plain.training_peak_bytes
    d = ckpt.to_dict()
    assert d["recompute_macs"] == 1024 and d["checkpointed"] == ["1"] and "recompute_macs" in d["units"]
    assert "recompute_macs" not in plain.to_dict()


def test_checkpointing_nothing_replays_the_step_as_step_peak():
    from archlab.analysis.checkpointing import Replay
    from archlab.api.model import Model

    for name, res in (("resnet18", 64), ("mobilenet_v2", 64), ("densenet121", 64)):
        tt = Model(name, res=res, batch=2).training(())
        assert Replay(tt, 4).peak([]) == step_peak(tt, 4), name


def test_checkpoint_globs_outermost_and_comma_separated():
    r = training_memory("resnet18", res=64, batch=2, checkpoint=["layer1*", "layer2.0,layer2.0.conv1"])
    # layer1* matches layer1 and everything in it: only layer1 is recomputed (its blocks with it)
    assert r.checkpointed == ("layer1", "layer2.0")
    one = training_memory("resnet18", res=64, batch=2, checkpoint="layer1")
    two = training_memory("resnet18", res=64, batch=2, checkpoint="layer2.0")
    assert r.recompute_macs == one.recompute_macs + two.recompute_macs
    import archlab

    counted = archlab.count("resnet18", res=64, batch=2, depth=2)
    macs = {l.name: l.macs for l in counted.layers}
    assert one.recompute_macs == macs["layer1"] and two.recompute_macs == macs["layer2.0"]


def _subset_peaks(tt, cands):
    """Every subset of the candidates, replayed: (recompute MACs, activation peak bytes, subset)."""
    import itertools

    from archlab.analysis.checkpointing import Replay

    replay = Replay(tt, 4)
    out = []
    for n in range(len(cands) + 1):
        for subset in itertools.combinations(cands, n):
            calls = [c for g in subset for c in g]
            out.append((replay.recompute_macs(calls), replay.peak(calls).bytes, subset))
    return replay, out


def test_plan_recomputes_no_more_than_brute_force():
    """On ResNet-18 at depth 2 (14 candidates, 16,384 sets, each replayed): for budgets across the whole range,
    the plan fits and its recompute is the least of every set that fits; below every set's peak, the plan
    reports the smallest peak of any set."""
    from archlab.analysis.checkpointing import candidates, plan
    from archlab.api.model import Model

    tt = Model("resnet18", res=32, batch=8).training(())
    cands = candidates(tt, 2)
    assert len(cands) == 14
    replay, every = _subset_peaks(tt, cands)
    peaks = sorted({p for _, p, _ in every})
    lowest = peaks[0]
    for limit in (peaks[0], peaks[1], peaks[len(peaks) // 4], peaks[len(peaks) // 2], peaks[-1]):
        found = plan(replay, cands, limit)
        best = min(m for m, p, _ in every if p <= limit)
        assert found.fits and found.exact
        assert found.recompute_macs == best and found.activation_peak <= limit
        assert replay.peak(found.calls).bytes == found.activation_peak
    found = plan(replay, cands, lowest - 1)
    assert not found.fits and found.activation_peak == lowest
    # stopped early, the search says so and bounds the optimum from below
    limit = peaks[len(peaks) // 2]
    best = min(m for m, p, _ in every if p <= limit)
    cut = plan(replay, cands, limit, node_limit=20)
    assert not cut.exact and cut.fits and cut.lower_bound_macs <= best <= cut.recompute_macs


def test_resnet50_batch_64_plan_fits_a_budget_30_percent_below_the_unplanned_peak():
    plain = training_memory("resnet50", batch=64)
    budget = int(plain.training_peak_bytes * 0.7)
    r = training_memory("resnet50", batch=64, checkpoint="auto", budget=budget)
    assert r.training_peak_bytes <= budget < plain.training_peak_bytes
    assert r.recompute_macs > 0 and r.checkpointed and r.plan_method.startswith("exact: branch and bound")
    assert r.unplanned_training_peak_bytes == plain.training_peak_bytes
    assert r.max_batch >= 64 and r.max_batch_peak_bytes <= budget  # the largest batch under that plan
    # the plan's modules, given by name, are the same bill
    again = training_memory("resnet50", batch=64, checkpoint=",".join(r.checkpointed))
    assert (again.training_peak_bytes, again.recompute_macs) == (r.training_peak_bytes, r.recompute_macs)


@pytest.mark.slow
def test_measured_planned_step_fits_a_budget_the_unplanned_step_exceeds_by_30_percent():
    """The planner's promise measured: a budget B that the unplanned step's predicted peak U exceeds by 30%
    (B = U / 1.3), the plan to it, and both steps run for real (CPU profiler records: deterministic, the same
    allocations every run). The planned step's measured peak is under B with a 2.4% margin (15 MiB; the
    prediction's error on this model is 0.5 MiB), the unplanned step's measured peak over it by 30%, and the
    measured saving is the predicted one. benchmarks/bench_checkpoint_plan.py runs the issue's case, ResNet-50
    at 64x3x224x224 (docs/memory.md). On ResNets at such small inputs the measured peak is 4.5 to 8.2 MiB above
    the bill, planned or not (oneDNN's convolution backward of a layer4 512x512x3x3 weight holds buffers the
    bill does not count, one of the weight's size, 9 MiB): more than a tight plan's margin there."""
    plain = training_memory("mobilenet_v2", res=64, batch=128, measure=True)
    budget = int(plain.training_peak_bytes / 1.3)
    r = training_memory("mobilenet_v2", res=64, batch=128, checkpoint="auto", budget=budget, measure=True)
    assert r.checkpointed and r.training_peak_bytes <= budget
    assert r.measured_training_peak_bytes < 0.98 * budget, (r.measured_training_peak_bytes, budget)
    assert plain.measured_training_peak_bytes > 1.29 * budget, (plain.measured_training_peak_bytes, budget)
    saved = plain.training_peak_bytes - r.training_peak_bytes
    measured_saved = plain.measured_training_peak_bytes - r.measured_training_peak_bytes
    assert abs(measured_saved - saved) <= 0.01 * saved, (measured_saved, saved)


def test_measured_checkpointed_step_within_15_percent():
    """A real step with the modules under torch.utils.checkpoint: its measured peak within 15% of the
    prediction, and checkpointing lowers the measured peak by at least half of what the bill says it saves."""
    plain = training_memory("resnet18", res=112, batch=16, measure=True)
    ckpt = training_memory("resnet18", res=112, batch=16, checkpoint="layer1.*,layer2.*", measure=True)
    assert abs(ckpt.measured_diff_percent) <= 15, (ckpt.training_peak_bytes, ckpt.measured_training_peak_bytes)
    saved = plain.training_peak_bytes - ckpt.training_peak_bytes
    assert saved > 0.1 * plain.training_peak_bytes
    assert plain.measured_training_peak_bytes - ckpt.measured_training_peak_bytes >= saved / 2


@pytest.mark.parametrize("name, pattern", [("resnet18", "layer1.*,layer3.1"),
                                           ("mobilenet_v2", "features.bottleneck2,features.bottleneck4.*")])
def test_recompute_macs_equal_flop_counter_of_the_checkpointed_step(name, pattern):
    """FlopCounterMode's total of a step with those modules under torch.utils.checkpoint, less its grouped-conv
    weight-gradient excess (tests/test_training.py), is 2 x (training + recompute MACs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import archlab
    from archlab.measure.training_peak import checkpointed
    from archlab.spec import Inputs
    from archlab.trace.run import build
    from test_training import _flop_counter_grouped_excess

    counted = archlab.count(name, res=64, batch=2, training=True, checkpoint=pattern)
    assert counted.training.recompute_macs > 0
    built = build(name, Inputs(), res=64, batch=2)
    checkpointed(built.module, counted.training.checkpointed)
    built.module.train()
    with torch.utils.checkpoint.set_checkpoint_early_stop(False), FlopCounterMode(display=False) as counter:
        out = built.module(*built.args)
        out.sum().backward()
    tt = trace_training(build(name, Inputs(), res=64, batch=2).module, built.args)
    expected = counter.get_total_flops() - _flop_counter_grouped_excess(tt)
    assert 2 * (counted.training_macs + counted.training.recompute_macs) == expected


def test_count_training_checkpoint(cli):
    import archlab

    r = archlab.count(_tanh_block(), input_size=(2,), batch=4, training=True, checkpoint="1")
    assert r.training.recompute_macs == 4 * 16 * 16 and r.training.checkpointed == ("1",)
    out = cli("count", "resnet18", "--res", "64", "--batch", "2", "--training", "--checkpoint", "layer1.*",
              "--checkpoint", "layer2")
    assert out.code == 0, out.err
    lines = {line.split("  ")[0]: line for line in out.out.splitlines()}
    assert "142,606,336" in lines["recompute MACs"] and "3 checkpointed modules" in lines["recompute MACs"]
    d = cli("count", "resnet18", "--res", "64", "--batch", "2", "--training", "--checkpoint", "layer1.*,layer2",
            "-f", "json").json()
    assert d["recompute_macs"] == 142_606_336
    assert d["checkpointed_training_macs"] == d["training_macs"] + 142_606_336
    assert d["training"]["checkpointed"] == ["layer1.0", "layer1.1", "layer2"]


def test_checkpoint_cli(cli):
    r = cli("memory", "resnet18", "--res", "64", "--batch", "8", "--training", "--checkpoint", "auto",
            "--budget", "150MiB")
    assert r.code == 0, r.err
    lines = {line.split("  ")[0]: line for line in r.out.splitlines()}
    assert "the plan to the budget" in lines["checkpointed modules"]
    assert "MACs: their forward, run again in the backward" in lines["recompute MACs"]
    assert "exact: branch and bound over 14 candidate modules at depth 2" in lines["plan"]
    assert "largest batch in budget" in lines
    d = cli("memory", "resnet18", "--res", "64", "--batch", "8", "--training", "--checkpoint", "layer1.*",
            "-f", "json").json()
    assert d["checkpointed"] == ["layer1.0", "layer1.1"] and d["recompute_macs"] > 0
    # a budget the step fits without checkpointing: the plan is empty, and says so
    r = cli("memory", "resnet18", "--res", "64", "--batch", "8", "--training", "--checkpoint", "auto",
            "--budget", "1GiB")
    lines = {line.split("  ")[0]: line for line in r.out.splitlines()}
    assert lines["checkpointed modules"].split()[2] == "0", lines["checkpointed modules"]
    assert "none, the step fits without" in lines["checkpointed modules"]
    assert lines["recompute MACs"].split()[2] == "0"


@pytest.mark.parametrize("args, needles", [
    (("--training", "--checkpoint", "auto"), ("add --budget",)),
    (("--training", "--checkpoint", "auto,layer1", "--budget", "1GiB"), ("give it alone",)),
    (("--training", "--checkpoint", "nope"), ("--checkpoint nope: no module", "layer1")),
    (("--training", "--checkpoint", "layer1,"), ("module-name globs",)),
    (("--training", "--checkpoint-depth", "3"), ("add --checkpoint auto",)),
    (("--training", "--checkpoint", "auto", "--budget", "1GiB", "--checkpoint-depth", "0"), ("1 or more",)),
    (("--checkpoint", "layer1"), ("--checkpoint applies to the training-step bill: add --training",)),
    (("--training", "--checkpoint", "auto", "--budget", "50MiB"),
     ("--budget 50MiB: no plan of checkpointed modules fits; the smallest training peak is", "checkpointing",
      "(the optimizer's step alone needs more)")),
    (("--training", "--checkpoint", "auto", "--budget", "150MiB", "--batch", "64"),
     ("--budget 150MiB: no plan", "156.15 MiB (163,732,544 bytes), checkpointing 5 modules: bn1, maxpool, "
      "layer1.0, layer1.1, layer2.0 (14 candidate modules at depth 2")),
])
def test_checkpoint_bad_input_is_one_line(cli, args, needles):
    from conftest import assert_one_line_error

    batch = () if "--batch" in args else ("--batch", "8")
    assert_one_line_error(cli("memory", "resnet18", "--res", "64", *batch, *args), *needles)


# --- --checkpoint with --world-size/--shard: the per-rank bill with checkpointed modules ----------------------

def _encoder() -> nn.Module:
    """A small transformer: two encoder layers (width 16, 2 heads, feed-forward 32), then a Linear head."""
    import torch

    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True)
    return nn.Sequential(nn.TransformerEncoder(layer, 2, enable_nested_tensor=False), nn.Linear(16, 4))


# (activation peak, training peak) per rank, bytes, at world size 2 with Adam: the bills before --checkpoint
# combined with sharding, which replayed the step with its own loop (none, zero1: b603ef0's; zero2, zero3, fsdp:
# the op-by-op FSDP schedule's, i27-h0 before the merge with the checkpointed replay; Adam's temporaries since
# by training_memory.adam_temporaries: ResNet-18's none +2,048 bytes, zero1's rank 0 +9,436,832, where its
# optimizer holds two 512x512x3x3 weights in a row)
_BEFORE = {"resnet18": {"none": (47269280, 252666904), "zero1": (47269280, 215343692), "zero2": (19750304, 154187736),
                        "zero3": (19750304, 152313896), "fsdp": (19750304, 152313896)},
           "encoder": {"none": (34640, 107000), "zero1": (34640, 88900), "zero2": (33520, 74200),
                       "zero3": (33520, 83232), "fsdp": (33520, 83232)}}


def test_per_rank_bill_with_nothing_checkpointed_is_the_bill_before_checkpointing_for_every_scheme():
    from dataclasses import replace

    from archlab.analysis.sharding import SCHEMES, per_rank_bill
    from archlab.api.model import Model

    for name, tt in (("resnet18", Model("resnet18", res=32, batch=2).training(())),
                     ("encoder", Model(_encoder(), input_size=(8, 16), batch=2).training(()))):
        for shard in SCHEMES:
            plain = per_rank_bill(tt, world_size=2, shard=shard, optimizer="adam")
            assert (plain.activation_peak_bytes, plain.training_peak_bytes) == _BEFORE[name][shard], (name, shard)
            assert "checkpoint" not in plain.to_dict() and "recompute_macs" not in plain.to_dict()
            # the checkpointed replay with nothing checkpointed: the same bill, byte for byte, plus the record
            none = per_rank_bill(tt, world_size=2, shard=shard, optimizer="adam", checkpoint=("auto",),
                                 plan_method="by hand")
            assert (none.checkpointed, none.recompute_macs) == ((), 0)
            assert none.unplanned_training_peak_bytes == plain.training_peak_bytes
            blank = dict(checkpoint=(), checkpointed=(), recompute_macs=None, unplanned_training_peak_bytes=None,
                         plan_method=None)
            assert replace(none, **blank).to_dict() == plain.to_dict(), (name, shard)


def _wide_after_block() -> nn.Module:
    """x (16) -> Linear 16->16 -> block [Linear 16->64, tanh, Linear 64->16] -> Linear 16->256 -> tanh ->
    Linear 256->1; no biases. The step peaks in the wide tanh's backward, after the block's forward and before
    its backward."""
    return nn.Sequential(nn.Linear(16, 16, bias=False),
                         nn.Sequential(nn.Linear(16, 64, bias=False), nn.Tanh(), nn.Linear(64, 16, bias=False)),
                         nn.Linear(16, 256, bias=False), nn.Tanh(), nn.Linear(256, 1, bias=False))


@pytest.mark.parametrize("shard", ["none", "fsdp"])
def test_checkpointing_a_block_lowers_the_per_rank_activation_peak_by_its_inner_activation(shard):
    plain = training_memory(_wide_after_block(), input_size=(16,), batch=128, world_size=2, shard=shard)
    ckpt = training_memory(_wide_after_block(), input_size=(16,), batch=128, world_size=2, shard=shard,
                           checkpoint="1")
    b = 64  # samples per rank: the global 128 over 2 ranks
    # the peak, both ways in the backward of the wide tanh ('3'): the batch (b x 16 x 4 B), the block's input
    # (saved by its first Linear), the block's tanh result (without checkpointing only), the block's output (saved
    # by Linear '2'), the wide tanh's result, the gradient of its output and of its input (b x 256 x 4 B each),
    # and the last Linear's weight gradient (256 x 4 B; its shard is as large: dim 0 of 1, padded to 2)
    wide = b * 256 * 4
    assert plain.activation_peak_bytes == 3 * b * 16 * 4 + b * 64 * 4 + 3 * wide + 1024
    assert ckpt.activation_peak_bytes == plain.activation_peak_bytes - b * 64 * 4  # less the block's tanh result
    assert plain.activation_peak_at == ckpt.activation_peak_at == "backward: aten.tanh_backward.default in '3'"
    assert ckpt.saved_activations_bytes == plain.saved_activations_bytes - b * 64 * 4
    assert ckpt.training_peak_bytes == plain.training_peak_bytes - b * 64 * 4
    assert ckpt.recompute_macs == b * 16 * 64 + b * 64 * 16  # the block's two Linears, once more, on one rank
    assert (ckpt.checkpoint, ckpt.checkpointed) == (("1",), ("1",))
    assert ckpt.unplanned_training_peak_bytes == plain.training_peak_bytes
    d = ckpt.to_dict()
    assert d["recompute_macs"] == ckpt.recompute_macs and d["checkpointed"] == ["1"]


def test_checkpointed_per_rank_replay_keeps_the_shards_gradient_sizes():
    """Under ZeRO-2/3 the checkpointed replay keeps each unit's gradients at this rank's shard once its backward is
    done, as the plain one does: its peak is the replay with those sizes, below the replay with whole gradients."""
    from archlab.analysis.checkpointing import Replay, select
    from archlab.analysis.sharding import per_rank_bill, rank_schedule
    from archlab.api.model import Model

    tt = Model("resnet18", res=32, batch=2).training(())
    calls = select(tt, ["layer1.*"])
    for shard in ("zero2", "zero3"):
        r = per_rank_bill(tt, world_size=4, shard=shard, checkpointed=calls)
        grad_sizes, timeline, _ = rank_schedule(tt, 4, shard, None, ())
        sized = Replay(tt, 4, grad_sizes, {i: sum(t) for i, t in timeline.items()}).peak(calls)
        # the replay's peak holds FSDP's terms at that op: the bill's lines are its parts
        beside = r.gathered_params_bytes + r.unit_gradients_bytes + r.comm_buffers_bytes
        assert (r.activation_peak_bytes + beside, r.activation_peak_at) == (sized.bytes, sized.where)
        assert beside == sum(timeline[sized.op]) == sized.extra_bytes
        assert Replay(tt, 4, grad_sizes).peak(calls).bytes < Replay(tt, 4).peak(calls).bytes
    assert per_rank_bill(tt, world_size=4, checkpointed=calls).activation_peak_bytes == Replay(tt, 4).peak(calls).bytes


@pytest.mark.parametrize("shard", ["none", "zero1", "fsdp"])
def test_per_rank_plan_fits_and_recomputes_no_more_than_brute_force(shard):
    """ResNet-18 at depth 1 (10 candidates, 1,024 sets, each billed with per_rank_bill): for budgets across the
    range, the plan's per-rank peak fits and its recompute is the least of every set that fits."""
    import itertools

    from archlab.analysis.checkpointing import candidates
    from archlab.analysis.sharding import per_rank_bill, per_rank_plan
    from archlab.api.model import Model

    tt = Model("resnet18", res=32, batch=4).training(())
    how = dict(world_size=2, shard=shard, optimizer="momentum")
    cands = candidates(tt, 1)
    assert len(cands) == 10
    every = []
    for n in range(len(cands) + 1):
        for subset in itertools.combinations(cands, n):
            r = per_rank_bill(tt, **how, checkpointed=[c for g in subset for c in g])
            every.append((r.recompute_macs or 0, r.training_peak_bytes))
    peaks = sorted({p for _, p in every})
    for budget in (peaks[0], peaks[len(peaks) // 4], peaks[len(peaks) // 2], peaks[-1]):
        r = per_rank_plan(tt, **how, budget=budget, depth=1)
        assert r.training_peak_bytes <= budget and r.plan_method.startswith("exact: branch and bound")
        assert r.recompute_macs == min(m for m, p in every if p <= budget), budget
        assert r.checkpoint == ("auto",)
    with pytest.raises(UserError, match="no plan of checkpointed modules fits; the smallest training peak per rank "
                                        f"is .* \\({peaks[0]:,} bytes\\)"):
        per_rank_plan(tt, **how, budget=peaks[0] - 1, depth=1)


def test_per_rank_plan_to_a_budget_and_the_largest_global_batch_under_it():
    plain = training_memory("resnet18", res=64, batch=64, world_size=4, shard="zero3", optimizer="adam")
    budget = plain.training_peak_bytes - (plain.activation_peak_bytes // 8)
    r = training_memory("resnet18", res=64, batch=64, world_size=4, shard="zero3", optimizer="adam",
                        checkpoint="auto", budget=budget)
    assert r.training_peak_bytes <= budget < plain.training_peak_bytes and r.checkpointed and r.recompute_macs > 0
    assert r.unplanned_training_peak_bytes == plain.training_peak_bytes
    # the largest global batch under the plan (a multiple of the world size), as the plan's modules give it
    assert r.max_batch >= 64 and r.max_batch % 4 == 0 and r.max_batch_peak_bytes <= budget
    again = training_memory("resnet18", res=64, batch=r.max_batch + 4, world_size=4, shard="zero3", optimizer="adam",
                            checkpoint=",".join(r.checkpointed))
    assert again.training_peak_bytes > budget
    # the plan's modules, given by name: the same bill
    named = training_memory("resnet18", res=64, batch=64, world_size=4, shard="zero3", optimizer="adam",
                            checkpoint=",".join(r.checkpointed))
    assert (named.training_peak_bytes, named.recompute_macs) == (r.training_peak_bytes, r.recompute_macs)
    # --budget alone with sharding: still the largest global batch, nothing checkpointed
    alone = training_memory("resnet18", res=64, batch=64, world_size=4, shard="zero3", optimizer="adam", budget=budget)
    assert alone.checkpoint == () and alone.max_batch < 64 <= r.max_batch


def test_checkpoint_with_sharding_cli(cli):
    base = ("memory", "resnet18", "--res", "32", "--training", "--batch", "8", "--world-size", "2", "--shard",
            "fsdp", "--checkpoint", "layer1.*,layer2")
    r = cli(*base)
    assert r.code == 0, r.err
    lines = {line.split("  ")[0]: line for line in r.out.splitlines()[1:]}
    assert "--checkpoint layer1.*,layer2: layer1.0, layer1.1, layer2" in lines["checkpointed modules"]
    assert "run again in the backward on each rank" in lines["recompute MACs"]
    assert "the training peak per rank" in lines["without checkpointing"]
    d = cli(*base, "-f", "json").json()
    assert d["checkpointed"] == ["layer1.0", "layer1.1", "layer2"] and d["recompute_macs"] > 0
    assert d["unplanned_training_peak_bytes"] > d["training_peak_bytes"] and d["checkpoint"] == ["layer1.*", "layer2"]
    rows = cli(*base, "-f", "csv").out.splitlines()
    header, row = rows[0].split(","), rows[1].split(",")
    assert row[header.index("recompute_macs")] == str(d["recompute_macs"])
    plain = cli("memory", "resnet18", "--res", "32", "--training", "--batch", "8", "--world-size", "2", "--shard",
                "fsdp", "-f", "csv").out.splitlines()
    assert plain[1].split(",")[plain[0].split(",").index("recompute_macs")] == ""
    auto = cli("memory", "resnet18", "--res", "32", "--training", "--batch", "8", "--world-size", "2", "--shard",
               "zero2", "--checkpoint", "auto", "--budget", "1GiB")
    lines = {line.split("  ")[0]: line for line in auto.out.splitlines()[1:]}
    assert "the plan to the budget per rank: none, the step fits without" in lines["checkpointed modules"]
    assert "exact: branch and bound" in lines["plan"] and "1.00 GiB per rank" in lines["largest batch in budget"]


@pytest.mark.parametrize("args, needles", [
    (("--checkpoint", "auto"), ("--checkpoint auto plans to a memory budget: add --budget",)),
    (("--checkpoint", "nope"), ("--checkpoint nope: no module", "layer1")),
    (("--checkpoint", "auto,layer1", "--budget", "1GiB"), ("give it alone",)),
    (("--checkpoint", "auto", "--budget", "1GiB", "--checkpoint-depth", "0"), ("1 or more",)),
    (("--checkpoint", "auto", "--budget", "40MiB"),
     ("--budget 40MiB: no plan of checkpointed modules fits; the smallest training peak per rank is", "checkpointing",
      "candidate modules at depth 2")),
])
def test_checkpoint_with_sharding_bad_input_is_one_line(cli, args, needles):
    from conftest import assert_one_line_error

    assert_one_line_error(cli("memory", "resnet18", "--res", "64", "--training", "--batch", "16", "--world-size",
                              "2", "--shard", "zero3", *args), *needles)


def test_the_smallest_per_rank_peak_named_is_the_bill_of_the_plan_named():
    """Where no plan fits, the one line names the smallest per-rank peak and its plan: that plan, billed, is that
    peak, and it is below the peak without checkpointing."""
    import re

    with pytest.raises(UserError) as e:
        training_memory("resnet18", res=64, batch=16, world_size=2, shard="zero3", checkpoint="auto", budget="40MiB")
    found = re.search(r"is [^(]+\(([\d,]+) bytes\), checkpointing \d+ modules: ([^(]+) \(", str(e.value))
    peak, names = int(found.group(1).replace(",", "")), found.group(2)
    r = training_memory("resnet18", res=64, batch=16, world_size=2, shard="zero3", checkpoint=names)
    assert r.training_peak_bytes == peak < r.unplanned_training_peak_bytes


def test_adams_temporaries_are_a_parameters_two_beside_the_previous_ones_denominator():
    # measured against torch.optim.Adam on the CPU (the profiler's records of the second step): the law holds
    # to the byte, less the 12 bytes of scalars the step allocates, for every order of these sizes
    import itertools

    import torch
    from torch.profiler import ProfilerActivity, profile

    from archlab.analysis.training_memory import adam_temporaries

    shapes = [(256, 64, 3, 3), (128, 64, 3, 3), (256, 64, 3, 3), (64,)]
    assert adam_temporaries([]) == 0 and adam_temporaries([8]) == 16
    for order in itertools.permutations(shapes):
        params = [torch.nn.Parameter(torch.ones(s)) for s in order]
        opt = torch.optim.Adam(params, lr=1e-3)
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()  # the state is made here
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            opt.step()
        records = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                         key=lambda e: e.start_ns())
        total = peak = 0
        for e in records:
            total += e.nbytes()
            peak = max(peak, total)
        assert peak - 12 == adam_temporaries([p.numel() * 4 for p in params]), order
