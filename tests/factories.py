"""Factories shared by every test tier (unit, integration, slow): tiny random models built in code.

Test-only code lives here, not in the library packages (nothing outside ``tests`` imports ``tests``;
.ci/lint enforces it). Planted synthetic atlases come from :func:`saes.synthetic.planted_atlas`, which is
also the ``synthetic`` SAE source of an atlas.toml.
"""

from __future__ import annotations

from typing import Any

from steering.model import CHATML_TEMPLATE, LoadedModel, wrap_model


def byte_tokenizer() -> Any:
    """A byte-level tokenizer built in code (256 byte tokens + ChatML specials); needs no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|pad|>")
    tok.chat_template = CHATML_TEMPLATE
    return tok


def tiny_llama(seed: int = 0, *, n_layers: int = 4, d_model: int = 64, n_heads: int = 4, n_kv_heads: int = 2, d_mlp: int = 128) -> LoadedModel:
    """A small random Llama (fp32, CPU) + byte tokenizer, deterministic in ``seed``. Not memoised."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = byte_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    gen = torch.random.fork_rng()
    with gen:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).to(torch.float32)
    loaded = wrap_model(model, tokenizer, name=f"tiny-llama-{seed}", source="random", device="cpu")
    return loaded
