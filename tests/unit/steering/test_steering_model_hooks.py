"""Hook points on a tiny random Llama: the decomposition res(L) = res(L-1) + att(L) + mlp(L) holds,
edits land where they should, and bad points fail clearly."""

from __future__ import annotations

import pytest
import torch

from queries.errors import InvalidInput, ModelUnavailable
from queries.ids import Module
from steering.hooks import HookPoint, all_points, capture, edit, hook_target, run_capture, validate_points
from steering.model import LoadedModel, load_model
from tests.factories import tiny_llama


@pytest.fixture(scope="module")
def tiny() -> LoadedModel:
    return tiny_llama(seed=0)


def _ids(tiny: LoadedModel, text: str = "hello world, flows") -> torch.Tensor:
    return tiny.tokenizer(text, return_tensors="pt").input_ids


def test_tiny_model_is_deterministic_and_tokenizer_roundtrips() -> None:
    a, b = tiny_llama(seed=3), tiny_llama(seed=3)
    ids = a.tokenizer("Grüße, atlas!", return_tensors="pt").input_ids
    assert a.tokenizer.decode(ids[0]) == "Grüße, atlas!"
    assert torch.equal(a.model(ids).logits, b.model(ids).logits)
    assert not torch.equal(a.model(ids).logits, tiny_llama(seed=4).model(ids).logits)
    chat = a.format_prompt("hi", chat=True)
    assert chat.endswith("<|im_start|>assistant\n") and "<|im_start|>user\nhi<|im_end|>" in chat


def test_residual_decomposition(tiny: LoadedModel) -> None:
    ids = _ids(tiny)
    points = all_points(tiny)
    assert len(points) == 3 * tiny.n_layers
    with torch.no_grad(), capture(tiny, points) as acts:
        tiny.model(input_ids=ids)
    emb = tiny.model.model.embed_tokens(ids)
    prev = emb
    for layer in range(tiny.n_layers):
        res = acts[HookPoint(layer, Module.RES)]
        att = acts[HookPoint(layer, Module.ATT)]
        mlp = acts[HookPoint(layer, Module.MLP)]
        assert res.shape == (1, ids.shape[1], tiny.d_model)
        torch.testing.assert_close(res, prev + att + mlp, rtol=1e-5, atol=1e-5)
        # the modules contribute something non-trivial (the check above is not vacuous)
        assert att.abs().max() > 1e-3 and mlp.abs().max() > 1e-3
        prev = res


def test_last_res_feeds_final_norm(tiny: LoadedModel) -> None:
    ids = _ids(tiny)
    last = HookPoint(tiny.n_layers - 1, Module.RES)
    with torch.no_grad(), capture(tiny, [last]) as acts:
        out = tiny.model(input_ids=ids, output_hidden_states=True)
    # hidden_states[-1] is after the final norm in HF Llama; applying the norm to res(last) must match
    torch.testing.assert_close(tiny.model.model.norm(acts[last]), out.hidden_states[-1], rtol=1e-5, atol=1e-5)


def test_run_capture_stops_early_with_same_values(tiny: LoadedModel) -> None:
    ids = _ids(tiny)
    pts = [HookPoint(1, Module.ATT), HookPoint(1, Module.MLP), HookPoint(0, Module.RES)]
    early = run_capture(tiny, pts, ids, stop_early=True)
    full = run_capture(tiny, pts, ids, stop_early=False)
    assert set(early) == set(pts)
    for p in pts:
        torch.testing.assert_close(early[p], full[p], rtol=0, atol=0)
    # later layers never ran: a hook on layer 3 sees nothing
    seen = []
    h = hook_target(tiny, HookPoint(3, Module.RES)).register_forward_hook(lambda *a: seen.append(1))
    try:
        run_capture(tiny, pts, ids, stop_early=True)
    finally:
        h.remove()
    assert seen == []


def test_edit_changes_downstream_and_is_removed(tiny: LoadedModel) -> None:
    ids = _ids(tiny)
    point = HookPoint(1, Module.MLP)
    base = run_capture(tiny, [HookPoint(1, Module.RES)], ids)[HookPoint(1, Module.RES)]
    delta = torch.randn(tiny.d_model, generator=torch.Generator().manual_seed(0))
    with edit(tiny, {point: lambda h: h + delta}):
        moved = run_capture(tiny, [HookPoint(1, Module.RES)], ids)[HookPoint(1, Module.RES)]
    torch.testing.assert_close(moved - base, delta.expand_as(base), rtol=1e-5, atol=1e-5)
    after = run_capture(tiny, [HookPoint(1, Module.RES)], ids)[HookPoint(1, Module.RES)]
    torch.testing.assert_close(after, base, rtol=0, atol=0)


def test_edit_hooks_removed_on_error(tiny: LoadedModel) -> None:
    target = hook_target(tiny, HookPoint(0, Module.ATT))
    before = len(target._forward_hooks)
    with pytest.raises(RuntimeError):
        with edit(tiny, {HookPoint(0, Module.ATT): lambda h: h}):
            raise RuntimeError("boom")
    assert len(target._forward_hooks) == before


def test_bad_points(tiny: LoadedModel) -> None:
    with pytest.raises(InvalidInput, match=r"layer 4 is out of range .*valid: 0–3"):
        validate_points(tiny, [HookPoint(4, Module.RES)])
    with pytest.raises(InvalidInput, match="unknown module"):
        HookPoint.parse("2-foo")
    assert HookPoint.parse("2/mlp") == HookPoint(2, Module.MLP)
    assert str(HookPoint(12, Module.RES)) == "12-res"
    with pytest.raises(InvalidInput, match="not valid"):
        HookPoint.parse("res")


def test_missing_model_is_model_unavailable(tmp_path) -> None:
    with pytest.raises(ModelUnavailable, match="does not exist"):
        load_model(str(tmp_path / "no-such-model"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelUnavailable, match="could not be loaded"):
        load_model(str(empty))


def test_unsupported_architecture_is_clear(tmp_path) -> None:
    from transformers import OPTConfig, OPTForCausalLM

    from queries.errors import UnsupportedArchitecture
    from tests.factories import byte_tokenizer

    OPTForCausalLM(
        OPTConfig(
            num_hidden_layers=1,
            hidden_size=16,
            ffn_dim=32,
            num_attention_heads=2,
            vocab_size=300,
            word_embed_proj_dim=16,
        )
    ).save_pretrained(tmp_path / "gpt2")
    byte_tokenizer().save_pretrained(tmp_path / "gpt2")
    with pytest.raises(UnsupportedArchitecture, match=r"'opt'.*supported: llama.*gpt2"):
        load_model(str(tmp_path / "gpt2"))
