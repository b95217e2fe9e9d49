"""One rank's training-step memory at world size 8, per sharding scheme: the table of docs/memory.md.

    python examples/sharding_table.py          # prints the Markdown table (a few minutes: three traced steps)

ResNet-50 (the zoo's), ViT-B/16 and a 1B-parameter Llama-shaped decoder (Llama 3.2 1B's shape), both from
``transformers`` configs on the meta device (no download, no weights in memory). Each model's step is traced
once at the per-rank batch; every scheme's bill is ``archlab.analysis.sharding.per_rank_bill`` of that trace,
without and with activation checkpointing of every top-level block (the common recipe: each residual block of
ResNet-50's layer1..layer4, each encoder layer of the ViT, each decoder layer of the Llama-shaped model; the
blocks ``sharding.block_names`` finds, the same as the default FSDP units).
Needs the optional extra: ``pip install archlab[lm]`` (transformers).
"""

from __future__ import annotations

import torch
from torch import nn

WORLD_SIZE = 8
SCHEMES = ("none", "zero1", "zero2", "zero3")


def _built(model_cls: type, config: object) -> nn.Module:
    config._attn_implementation = "eager"  # q @ k^T, softmax, @ v: every tensor of the step in the trace
    with torch.device("meta"):
        model = model_cls(config)
    return model.eval()


def vit_b_16() -> nn.Module:
    """ViT-B/16 (86M parameters): 12 layers, hidden 768, 12 heads, patches of 16 at 224x224, 1000 classes."""
    from transformers import ViTConfig, ViTForImageClassification

    return _built(ViTForImageClassification, ViTConfig(num_labels=1000))


def llama_1b() -> nn.Module:
    """A 1B-parameter Llama-shaped decoder (Llama 3.2 1B's shape, 1.24 G parameters): 16 layers, hidden 2048,
    32 heads (8 key-value heads), SwiGLU feed-forward 8192, vocabulary 128256, output head tied to the embedding."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256, max_position_embeddings=4096,
                         tie_word_embeddings=True)
    return _built(LlamaForCausalLM, config)


vit_b_16.input_size = "pixel_values=3x224x224"
llama_1b.input_size = "input_ids=int64:2048"

# (what, the model or spec, its input, global batch, optimizer)
ROWS = (("ResNet-50, 224x224", "resnet50", None, 256, "adam"),
        ("ViT-B/16, 224x224", vit_b_16, vit_b_16.input_size, 256, "adamw"),
        ("Llama-shaped 1B, 2048 tokens", llama_1b, llama_1b.input_size, 8, "adamw"))


def table() -> str:
    from archlab.analysis.checkpointing import by_names
    from archlab.analysis.sharding import block_names, per_rank_bill
    from archlab.api.model import Model
    from archlab.units import human, human_bytes

    lines = ["| model | params | global batch (per rank) | optimizer | scheme | parameters | gradients | "
             "optimizer state | buffers + gathered | activations + gradients | peak per rank | "
             "with checkpointing: activations + gradients | with checkpointing: peak per rank | "
             "recompute per rank |",
             "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for what, source, input_size, batch, optimizer in ROWS:
        model = Model(source() if callable(source) else source, input_size, batch=batch // WORLD_SIZE)
        tt = model.training(())
        blocks = by_names(tt, block_names(tt))  # every top-level block's call
        for shard in SCHEMES:
            how = dict(world_size=WORLD_SIZE, shard=shard, optimizer=optimizer, label=what, global_batch=batch)
            r = per_rank_bill(tt, **how)
            c = per_rank_bill(tt, **how, checkpointed=blocks)
            assert c.unplanned_training_peak_bytes == r.training_peak_bytes
            extra = r.comm_buffers_bytes + r.gathered_params_bytes + r.unit_gradients_bytes
            lines.append(f"| {what} | {r.params / 1e6:,.1f} M | {batch} ({r.per_rank_batch}) | {optimizer} | {shard} | "
                         f"{human_bytes(r.params_bytes)} | {human_bytes(r.gradients_bytes)} | "
                         f"{human_bytes(r.optimizer_state_bytes)} | {human_bytes(extra)} | "
                         f"{human_bytes(r.activation_peak_bytes)} | {human_bytes(r.training_peak_bytes)} | "
                         f"{human_bytes(c.activation_peak_bytes)} | {human_bytes(c.training_peak_bytes)} | "
                         f"{len(c.checkpointed)} blocks, {human(c.recompute_macs, 'MACs')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
