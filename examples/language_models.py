"""Language models from Hugging Face ``transformers`` configs, built on the meta device (no
download, no weights in memory): BERT-base, GPT-2 and a 7B Llama-shaped decoder.

    archlab count examples/language_models.py:bert_base --input-size "input_ids=int64:128"
    archlab count examples/language_models.py:gpt2 --input-size "input_ids=int64:128;use_cache=true"
    archlab count examples/language_models.py:llama_7b --input-size "input_ids=int64:512;use_cache=true"
    archlab count examples/language_models.py:gpt2_decode --input-size "input_ids=int64:1"   # one token, 127 cached

Each factory also declares its default input (``input_size``), so the ``--input-size`` above
can be left out. Needs the optional extra: ``pip install archlab[lm]`` (transformers).
"""

from __future__ import annotations

import torch
from torch import nn


def _built(model_cls: type, config: object) -> nn.Module:
    # The eager attention (q @ k^T, softmax, @ v) and the meta device: shapes only, nothing allocated.
    config._attn_implementation = "eager"
    with torch.device("meta"):
        model = model_cls(config)
    return model.eval()


def bert_base(layers: int = 12) -> nn.Module:
    """BERT-base (110M parameters): 12 layers, hidden 768, 12 heads, feed-forward 3072."""
    from transformers import BertConfig, BertModel

    return _built(BertModel, BertConfig(num_hidden_layers=layers))


def gpt2(layers: int = 12) -> nn.Module:
    """GPT-2 small (124M parameters): 12 layers, hidden 768, 12 heads, vocabulary 50257 (the
    language-model head shares the token embedding's weights)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    return _built(GPT2LMHeadModel, GPT2Config(n_layer=layers))


def llama_7b(layers: int = 32) -> nn.Module:
    """A Llama-shaped 7B decoder (LLaMA-1/2 7B's shape): 32 layers, hidden 4096, 32 heads,
    SwiGLU feed-forward 11008, vocabulary 32000, untied output head."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=layers,
                         num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                         max_position_embeddings=4096, tie_word_embeddings=False)
    return _built(LlamaForCausalLM, config)


class DecodeStep(nn.Module):
    """One step of generation with a KV cache: ``new`` tokens (``input_ids``) attend to ``past`` tokens whose
    keys and values are cached (built here on the input's device: on meta, shapes only)."""

    def __init__(self, model: nn.Module, past: int) -> None:
        super().__init__()
        self.model, self.past = model, past

    def forward(self, input_ids: torch.Tensor) -> object:
        from transformers import DynamicCache

        config = self.model.config
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        head_dim = config.hidden_size // config.num_attention_heads
        cache = DynamicCache(config=config)
        for layer in range(config.num_hidden_layers):
            shape = (input_ids.shape[0], heads, self.past, head_dim)
            cache.update(torch.zeros(shape, device=input_ids.device), torch.zeros(shape, device=input_ids.device),
                         layer)
        return self.model(input_ids=input_ids, past_key_values=cache, use_cache=True)


def gpt2_decode(past: int = 127, layers: int = 12) -> nn.Module:
    """GPT-2 generating one token after ``past`` tokens (prompt and tokens so far) whose keys and values
    are in its KV cache: the cost of one decode step."""
    return DecodeStep(gpt2(layers), past)


bert_base.input_size = "input_ids=int64:128"
gpt2_decode.input_size = "input_ids=int64:1"
gpt2.input_size = "input_ids=int64:128;use_cache=true"
llama_7b.input_size = "input_ids=int64:512;use_cache=true"


def main() -> None:
    import archlab

    for factory in (bert_base, gpt2, llama_7b):
        r = archlab.count(factory(), input_size=factory.input_size, depth=0)
        tokens = r.input_shapes[0][-1]
        print(f"{factory.__name__:10}  {r.params:>14,} parameters  {r.macs:>18,} MACs for {tokens} tokens  "
              f"= {r.macs // tokens:>14,} MACs per token  "
              f"count {r.status}")


if __name__ == "__main__":
    main()
