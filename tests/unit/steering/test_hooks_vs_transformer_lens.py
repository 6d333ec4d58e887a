"""The outside reference for hook names: on a tiny random model of every supported architecture, each hook's
activation equals TransformerLens's for the same weights, and an additive edit at a hook moves every later
activation exactly as it does in TransformerLens.

TransformerLens is only the oracle here (steering runs the HF model, docs/steering.md says why). Its configs
come from its own ``get_pretrained_model_config`` on the saved tiny model where that works offline; Gemma's are
name-based in TransformerLens and Phi's reads a field transformers 5 moved, so those are written by hand
from the HF config. Weights go through
TransformerLens's own conversion, unprocessed (no LayerNorm folding, no centring), so both sides compute
the same function.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch

from queries.errors import InvalidInput, UnsupportedArchitecture
from steering.architectures import valid_hooks
from steering.hooks import capture, edit, run_capture
from steering.model import wrap_model
from tests.factories import ARCHS, byte_tokenizer, tiny_hf

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TEXT = "Flows of features, layer by layer."
ATOL = 2e-4  # fp32; activations are O(1)-O(30) with the spread-out random weights


def _gemma_cfg(hf: Any) -> Any:
    from transformer_lens import HookedTransformerConfig

    c = hf.config
    gemma3 = c.model_type == "gemma3_text"
    types = ["global" if t == "full_attention" else "local" for t in c.layer_types]
    return HookedTransformerConfig(
        d_model=c.hidden_size,
        d_head=c.head_dim,
        n_heads=c.num_attention_heads,
        d_mlp=c.intermediate_size,
        n_layers=c.num_hidden_layers,
        n_ctx=c.max_position_embeddings,
        eps=c.rms_norm_eps,
        d_vocab=c.vocab_size,
        act_fn=c.hidden_activation,
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_base=float(
            c.rope_parameters["full_attention"]["rope_theta"] if gemma3 else c.rope_parameters["rope_theta"]
        ),
        rotary_dim=c.head_dim,
        use_attn_scale=True,
        n_key_value_heads=c.num_key_value_heads,
        gated_mlp=True,
        final_rms=True,
        use_normalization_before_and_after=True,
        window_size=c.sliding_window,
        use_local_attn=True,
        attn_types=types,
        attn_scores_soft_cap=float(c.attn_logit_softcapping or -1.0),
        output_logits_soft_cap=float(c.final_logit_softcapping or -1.0),
        use_qk_norm=gemma3,
        original_architecture="Gemma3ForCausalLM" if gemma3 else "Gemma2ForCausalLM",
        **({"rotary_base_local": float(c.rope_parameters["sliding_attention"]["rope_theta"])} if gemma3 else {}),
    )


def _phi_cfg(hf: Any) -> Any:
    from transformer_lens import HookedTransformerConfig

    c = hf.config
    d_head = c.hidden_size // c.num_attention_heads
    return HookedTransformerConfig(
        d_model=c.hidden_size,
        d_head=d_head,
        n_heads=c.num_attention_heads,
        d_mlp=c.intermediate_size,
        n_layers=c.num_hidden_layers,
        n_ctx=c.max_position_embeddings,
        eps=c.layer_norm_eps,
        d_vocab=c.vocab_size,
        act_fn=c.hidden_act,
        normalization_type="LN",
        positional_embedding_type="rotary",
        rotary_base=float(c.rope_parameters["rope_theta"]),
        rotary_dim=round(c.rope_parameters["partial_rotary_factor"] * d_head),
        use_attn_scale=True,
        parallel_attn_mlp=True,
        original_architecture="PhiForCausalLM",
    )


def transformer_lens_twin(hf: Any) -> Any:
    """A HookedTransformer computing the same function as ``hf`` (weights converted by TransformerLens)."""
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as lfp
    from transformer_lens.pretrained.weight_conversions import convert_gemma_weights, convert_phi_weights

    if hf.config.model_type.startswith("gemma"):
        cfg = _gemma_cfg(hf)
        state = convert_gemma_weights(hf, cfg)
    elif (
        hf.config.model_type == "phi"
    ):  # TransformerLens reads partial_rotary_factor where transformers 5 no longer has it
        cfg = _phi_cfg(hf)
        state = convert_phi_weights(hf, cfg)
    else:
        # a neutral folder name: TransformerLens picks some configs by substrings of the name ("llama", "gemma")
        with tempfile.TemporaryDirectory(prefix="tlref") as d:
            hf.config.save_pretrained(d)
            cfg = lfp.get_pretrained_model_config(d, fold_ln=False, device="cpu", dtype=torch.float32)
            state = lfp.get_pretrained_state_dict(d, cfg, hf_model=hf)
    cfg.tokenizer_name = None  # token ids are fed directly
    tl = HookedTransformer(cfg, move_to_device=False)
    tl.load_and_process_state_dict(
        state,
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    return tl.eval()


@pytest.fixture(scope="module", params=ARCHS)
def pair(request: pytest.FixtureRequest) -> tuple[Any, Any, torch.Tensor]:
    hf, tok = tiny_hf(request.param, seed=ARCHS.index(request.param))
    lm = wrap_model(hf, tok, name=f"tiny-{request.param}", source="random", device="cpu")
    tl = transformer_lens_twin(hf)
    ids = tok(TEXT, return_tensors="pt").input_ids
    return lm, tl, ids


def _names(lm: Any) -> list[str]:
    return [f"blocks.{layer}.{h}" for layer in range(lm.n_layers) for h in valid_hooks(lm.model)]


def test_every_hook_equals_transformer_lens(pair: tuple[Any, Any, torch.Tensor]) -> None:
    lm, tl, ids = pair
    names = _names(lm)
    with torch.no_grad():
        ours = run_capture(lm, names, ids, stop_early=False)
        logits, cache = tl.run_with_cache(ids, names_filter=lambda n: n in names)
        torch.testing.assert_close(lm.model(ids).logits, logits, atol=ATOL, rtol=1e-4)
    assert set(ours) == set(names)
    for name in names:
        assert ours[name].shape == cache[name].shape, name
        torch.testing.assert_close(ours[name], cache[name], atol=ATOL, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")
    # the comparison is not vacuous: the modules write something
    assert ours["blocks.0.hook_attn_out"].abs().max() > 1e-2 and ours["blocks.0.hook_mlp_out"].abs().max() > 1e-2


def test_additive_edit_moves_downstream_like_transformer_lens(pair: tuple[Any, Any, torch.Tensor]) -> None:
    lm, tl, ids = pair
    names = _names(lm)
    editable = [n for n in names if not n.endswith("hook_resid_mid")]
    later = [n for n in names if n.startswith(f"blocks.{lm.n_layers - 1}.")] + ["blocks.0.hook_resid_post"]
    g = torch.Generator().manual_seed(0)
    for target in (n for n in editable if n.startswith("blocks.0.")):
        shape = run_capture(lm, [target], ids)[target].shape
        delta = torch.randn(shape[-2:] if target.endswith("hook_z") else shape[-1:], generator=g)
        with torch.no_grad():
            with edit(lm, {target: lambda h, d=delta: h + d}):
                ours = run_capture(lm, later, ids, stop_early=False)
                ours_logits = lm.model(ids).logits
            with tl.hooks(fwd_hooks=[(target, lambda h, hook, d=delta: h + d)]):
                logits, cache = tl.run_with_cache(ids, names_filter=lambda n: n in later)
        torch.testing.assert_close(
            ours_logits, logits, atol=ATOL, rtol=1e-4, msg=lambda m, t=target: f"logits after {t}: {m}"
        )
        for name in (n for n in later if n != target):  # downstream of the edit
            torch.testing.assert_close(
                ours[name], cache[name], atol=ATOL, rtol=1e-4, msg=lambda m, t=target, n=name: f"{n} after {t}: {m}"
            )


def test_unknown_hook_name_lists_valid_ones(pair: tuple[Any, Any, torch.Tensor]) -> None:
    lm, _, ids = pair
    with pytest.raises(
        InvalidInput, match=r"hook name 'blocks.0.hook_nope' is not valid .*attn.hook_z.*hook_resid_post"
    ):
        run_capture(lm, ["blocks.0.hook_nope"], ids)
    with pytest.raises(InvalidInput, match=r"layer 9 is out of range .*valid: 0–1"):
        run_capture(lm, ["blocks.9.hook_resid_post"], ids)


def test_resid_mid_is_read_only_and_absent_on_parallel_blocks() -> None:
    hf, tok = tiny_hf("gpt_neox")
    lm = wrap_model(hf, tok, name="tiny-neox", source="random", device="cpu")
    assert "hook_resid_mid" not in valid_hooks(hf)
    hf2, tok2 = tiny_hf("llama")
    lm2 = wrap_model(hf2, tok2, name="tiny-llama", source="random", device="cpu")
    with pytest.raises(InvalidInput, match="read but not edited"):
        with edit(lm2, {"blocks.0.hook_resid_mid": lambda h: h}):
            pass
    with pytest.raises(InvalidInput, match="hook_resid_mid"):
        with capture(lm, ["blocks.0.hook_resid_mid"]):
            pass


def test_unsupported_architecture_names_supported_and_how_to_add(tmp_path: Path) -> None:
    from transformers import OPTConfig, OPTForCausalLM

    model = OPTForCausalLM(
        OPTConfig(
            num_hidden_layers=1,
            hidden_size=16,
            ffn_dim=32,
            num_attention_heads=2,
            vocab_size=300,
            word_embed_proj_dim=16,
        )
    )
    with pytest.raises(
        UnsupportedArchitecture, match=r"'opt'.*supported: llama, .*gemma2.*gpt2.*gpt_neox.*phi.*to add one"
    ):
        wrap_model(model, byte_tokenizer(), name="tiny-opt", source="random", device="cpu")
