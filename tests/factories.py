"""Factories shared by every test tier (unit, integration, slow): tiny random models built in code.

Test-only code lives here, not in the library packages (nothing outside ``tests`` imports ``tests``;
.ci/lint enforces it). Planted synthetic atlases come from :func:`saes.synthetic.planted_atlas`, which is
also the ``synthetic`` SAE source of an atlas.toml.
"""

from __future__ import annotations

from pathlib import Path
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
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|pad|>"
    )
    tok.chat_template = CHATML_TEMPLATE
    return tok


def tiny_llama(
    seed: int = 0, *, n_layers: int = 4, d_model: int = 64, n_heads: int = 4, n_kv_heads: int = 2, d_mlp: int = 128
) -> LoadedModel:
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


# -- tiny random models of every architecture with a hook mapping -------------------------------------------

ARCHS = (
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma2",
    "gemma3_text",
    "gpt2",
    "gpt_neox",
    "gpt_neox_sequential",
    "phi",
)


def hf_config(arch: str, vocab: int, *, d: int = 32, layers: int = 2) -> Any:
    import transformers as T

    common = dict(
        vocab_size=vocab,
        hidden_size=d,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=2 * d,
        max_position_embeddings=256,
    )
    if arch in ("llama", "mistral", "qwen2", "qwen3"):
        cls = {"llama": T.LlamaConfig, "mistral": T.MistralConfig, "qwen2": T.Qwen2Config, "qwen3": T.Qwen3Config}[arch]
        extra: dict[str, Any] = {"num_key_value_heads": 2, "tie_word_embeddings": False}
        if arch == "qwen3":
            extra["head_dim"] = d // 4
        if arch == "mistral":
            extra["sliding_window"] = None
        return cls(**common, **extra)
    if arch in ("gemma2", "gemma3_text"):
        cls = T.Gemma2Config if arch == "gemma2" else T.Gemma3TextConfig
        # Gemma 2 soft-caps at 2.0 / 3.0 here (it ships 50 / 30) so that capping bites on tiny random logits;
        # Gemma 3 has no soft-capping (it has q/k norms instead)
        cap = {"attn_logit_softcapping": 2.0, "final_logit_softcapping": 3.0} if arch == "gemma2" else {}
        if arch == "gemma3_text":  # one local and one global layer (their rotary bases differ)
            cap["layer_types"] = (["sliding_attention", "full_attention"] * layers)[:layers]
        return cls(
            **common,
            num_key_value_heads=2,
            head_dim=d // 4,
            query_pre_attn_scalar=d // 4,
            sliding_window=128,
            attn_implementation="eager",
            **cap,
        )
    if arch == "gpt2":
        return T.GPT2Config(vocab_size=vocab, n_embd=d, n_layer=layers, n_head=4, n_positions=256, n_ctx=256)
    if arch.startswith("gpt_neox"):
        return T.GPTNeoXConfig(**common, use_parallel_residual=arch == "gpt_neox")
    if arch == "phi":
        return T.PhiConfig(**common, partial_rotary_factor=0.5)
    raise KeyError(arch)


def tiny_hf(arch: str, seed: int = 0, *, d: int = 32, layers: int = 2, spread: float = 3.0) -> tuple[Any, Any]:
    """A tiny random model of ``arch`` and the byte tokenizer, deterministic in ``seed``."""
    import torch
    from transformers import AutoModelForCausalLM

    tok = byte_tokenizer()
    cfg = hf_config(arch, len(tok), d=d, layers=layers)
    cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg).to(torch.float32)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.ndim == 2:
                    p.mul_(spread)
                else:  # norms and biases: move them off their init (1 / 0) so gains and biases matter
                    p.add_(0.3 * torch.randn_like(p))
    model.config.architectures = [type(model).__name__]
    gen = model.generation_config  # built from the config's defaults (GPT-2: 50256) before the ids above were set
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    model.eval()
    return model, tok


def word_corpus(folder: Path) -> Path:
    """A small local corpus for training tests: 30 documents of random words (deterministic), in ``folder``."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    for i in range(30):
        (folder / f"{i}.txt").write_text("\n\n".join(" ".join(rng.choice(words, 30)) for _ in range(8)))
    return folder
