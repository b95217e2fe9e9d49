"""count --training of transformers (issue 18): the backward of scaled-dot-product attention in every
backend has a rule, counted as PyTorch's FlopCounterMode counts it (its sdpa backward: the scores
recomputed, then the gradients of v, of the scores, of q and of k: scores x (3 d + 2 d_v) MACs), and a
small transformer's training step equals FlopCounterMode's on the meta device; token-id and keyword
inputs reach the training step."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archlab.trace.recorder import nested_tensors
from archlab.spec import Inputs
from archlab.trace.run import build

FILE = '''
import torch
import torch.nn.functional as F
from torch import nn

aten = torch.ops.aten


def attend(q, k, v, backend):
    if backend == "math":
        return F.scaled_dot_product_attention(q, k, v)
    if backend == "efficient":
        return aten._scaled_dot_product_efficient_attention(q, k, v, None, True)[0]
    if backend == "flash":
        return aten._scaled_dot_product_flash_attention(q, k, v)[0]
    if backend == "cudnn":
        return aten._scaled_dot_product_cudnn_attention(q, k, v, None, True)[0]
    if backend == "flash_for_cpu":
        return aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)[0]
    if backend == "overrideable":
        return aten._scaled_dot_product_fused_attention_overrideable(q, k, v)[0]
    # the kernels under the CUDA backends take (batch, sequence, heads, head dim)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    s = q.shape[1]
    if backend == "flash_kernel":
        out = aten._flash_attention_forward(q, k, v, None, None, s, s, 0.0, False, False)[0]
    else:
        out = aten._efficient_attention_forward(q, k, v, None, None, None, None, None, 0.0, 0)[0]
    return out.transpose(1, 2)


class Block(nn.Module):
    def __init__(self, d, heads, backend):
        super().__init__()
        self.heads, self.backend = heads, backend
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = attend(q, k, v, self.backend)
        x = x + self.proj(y.transpose(1, 2).reshape(b, s, d))
        return x + self.mlp(x)


def tiny(backend: str = "math", layers: int = 2):
    return nn.Sequential(*[Block(32, 4, backend) for _ in range(layers)], nn.Linear(32, 10))
'''

BACKENDS = ("math", "efficient", "flash", "cudnn", "flash_for_cpu", "overrideable", "flash_kernel",
            "efficient_kernel")
# FlopCounterMode has formulas for these (its forward and backward of the fused sdpa ops)
FLOP_COUNTER_KNOWS = ("math", "efficient", "flash", "cudnn")
TOKENS, HEADS, HEAD_DIM = 10, 4, 8
SCORES = HEADS * TOKENS * TOKENS  # per layer, batch 1


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "tiny.py"
    p.write_text(FILE)
    return str(p)


def flop_counter_training_macs(model, inputs, kwargs=None):
    """FlopCounterMode's total for one training step (loss = sum of the floating outputs) / 2."""
    model.train()
    with FlopCounterMode(display=False) as counter:
        out = model(*inputs, **(kwargs or {}))
        loss = sum(t.sum() for t in nested_tensors(out) if t.is_floating_point() and t.requires_grad)
        loss.backward()
    return counter.get_total_flops() // 2


def training(cli, spec, *args):
    r = cli("count", spec, "--training", "--format", "json", "--depth", "0", *args)
    assert r.code == 0, r.err
    return r.json()


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_attention_backend_trains_with_a_complete_count(cli, path, backend):
    d = training(cli, f"{path}:tiny@backend={backend}", "--input-size", f"{TOKENS},32")
    assert d["unsupported_ops"] == [] and d["status"] == "complete"
    if backend in FLOP_COUNTER_KNOWS:
        built = build(f"{path}:tiny@backend={backend}", Inputs.of((TOKENS, 32)))
        assert d["training_macs"] == flop_counter_training_macs(built.module, built.args)


def test_the_fused_backward_is_the_forward_products_and_the_five_gradient_products(cli, path):
    math_path = training(cli, f"{path}:tiny@backend=math", "--input-size", f"{TOKENS},32")
    for backend in BACKENDS[1:]:
        fused = training(cli, f"{path}:tiny@backend={backend}", "--input-size", f"{TOKENS},32")
        assert fused["forward_macs"] == math_path["forward_macs"]
        # autograd's math backward: 4 products (the gradients of both operands of q @ k^T and of
        # scores @ v), d per score each; the fused kernels recompute the scores: one more, per layer
        assert fused["input_grad_macs"] == math_path["input_grad_macs"] + 2 * SCORES * HEAD_DIM, backend
        assert fused["weight_grad_macs"] == math_path["weight_grad_macs"]


def test_the_backward_rule_by_hand(path):
    import archlab
    from archlab.analysis.costs import OpCosts
    from archlab.trace.run import trace_training

    built = build(f"{path}:tiny@backend=efficient,layers=1", Inputs.of((TOKENS, 32)))
    tt = trace_training(built.module, built.args)
    costs = OpCosts(tt.trace)
    ops = [op for op in tt.trace.ops if op.name == "_scaled_dot_product_efficient_attention_backward"]
    assert len(ops) == 1
    assert costs.macs[ops[0].index] == SCORES * (3 * HEAD_DIM + 2 * HEAD_DIM)
    assert archlab.count(f"{path}:tiny@backend=efficient,layers=1", input_size=(TOKENS, 32),
                         training=True).status == "complete"


LM = '''
import torch
from transformers import GPT2Config, GPT2LMHeadModel


def gpt2():
    config = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=1000, n_positions=64, bos_token_id=0,
                        eos_token_id=0)
    config._attn_implementation = "sdpa"  # PyTorch's scaled_dot_product_attention
    with torch.device("meta"):
        return GPT2LMHeadModel(config)
'''


def test_a_language_model_trains_from_token_ids(cli, tmp_path):
    """GPT-2 (two layers, sdpa attention) from a keyword token-id input and a forward option: the
    training step's MACs equal FlopCounterMode's, and the header shows the input as given."""
    pytest.importorskip("transformers")
    p = tmp_path / "lm.py"
    p.write_text(LM)
    d = training(cli, f"{p}:gpt2", "--input-size", "input_ids=int64:16;use_cache=true")
    assert d["unsupported_ops"] == [] and d["input_shape"] == [1, 16]
    r = cli("count", f"{p}:gpt2", "--training", "--input-size", "input_ids=int64:16;use_cache=true", "--depth", "0")
    assert "input input_ids=int64:1x16" in r.out.splitlines()[0] and "use_cache=true" in r.out.splitlines()[0]
    built = build(f"{p}:gpt2", Inputs.of("input_ids=int64:16;use_cache=true"))
    assert built.args == () and built.kwargs["input_ids"].dtype == torch.long and built.kwargs["use_cache"] is True
    assert d["training_macs"] == flop_counter_training_macs(built.module, built.args, built.kwargs)
    assert d["backward_macs"] > d["forward_macs"] > 0
