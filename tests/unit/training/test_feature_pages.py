"""Feature pages (training.feature_pages) on a tiny random Llama and a planted atlas: exact against a dense recompute."""

from __future__ import annotations

import json

import numpy as np
import pytest

from queries.feature_pages import largest_lineages
from saes.manifest import load_manifest
from saes.sources import load_sae
from saes.synthetic import planted_atlas
from training.corpus import Chunk
from training.feature_pages import PageOptions, density_histogram, norm_direction
from training.feature_pages_publish import atlas_pages

TEXT = "The river ran past the garden; music played in the city while winter came. " * 6


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    from tests.factories import tiny_llama

    lm = tiny_llama(seed=1, d_model=128)
    pa = planted_atlas("pages-test", n_layers=2, d_model=128, d_sae=24, seed=2)
    path = pa.write(tmp_path_factory.mktemp("pages") / "atlas")
    manifest = load_manifest(path)
    chunks = [Chunk("doc", i, TEXT[i * 40 :] + TEXT[: i * 40]) for i in range(6)]
    opts = PageOptions(window_left=4, window_right=2, n_top=3, n_quantiles=2, per_quantile=2)
    res = atlas_pages(manifest, lm, chunks, heldout_tokens=600, seq_len=64, opts=opts)
    return lm, manifest, chunks, opts, res


def test_examples_carry_the_exact_activation_of_every_token(built) -> None:
    """Each window's values equal the SAE's encoding of the model's activations at those tokens."""
    import torch

    from steering.hooks import run_capture
    from training.corpus import pack_sequences

    lm, manifest, chunks, opts, res = built
    entry = manifest.saes[0]
    w = load_sae(entry, manifest.base_dir)
    seqs = [s for s, _ in pack_sequences(lm.tokenizer, chunks, 64, shuffle_seed=None)][: -(-600 // 63)]
    acts = run_capture(lm, [w.hook_name], torch.tensor(seqs))[w.hook_name].float().numpy()
    dense = w.encode(acts)  # [S, T, d_sae]; position 0 has no activation in the pages
    pages = res.pages[(entry.layer, entry.module.value)]
    fired = [p for p in pages if p["firing"]]
    assert fired, "no feature fired on the held-out text"
    for p in fired[:8]:
        f = p["index"]
        top = p["groups"][0]
        assert top["name"] == "top" and len(top["examples"]) == min(opts.n_top, p["firing"])
        best = float(dense[:, 1:, f].max())
        ex = top["examples"][0]
        assert ex["a"][ex["m"]] == pytest.approx(best, rel=5e-3)
        # the window around the max: find it in the dense activations and compare every token's value
        s, t = np.unravel_index(np.argmax(dense[:, 1:, f]), dense[:, 1:, f].shape)
        t += 1
        lo = max(0, t - opts.window_left)
        expect = [0.0 if i == 0 else float(dense[s, i, f]) for i in range(lo, min(64, t + opts.window_right + 1))]
        assert ex["a"] == pytest.approx(expect, rel=5e-3, abs=1e-6)
        assert p["firing"] == int((dense[:, 1:, f] > 0).sum())
        assert sum(p["act_hist"]["counts"]) == p["firing"]
        for g in p["groups"][1:]:
            assert g["name"].startswith("q") and g["lo"] <= g["hi"]
            for e in g["examples"]:
                assert g["lo"] * 0.99 <= e["a"][e["m"]] <= g["hi"] * 1.01


def test_logit_lens_goes_through_the_final_rmsnorm_weight(built) -> None:
    import torch

    lm, manifest, _, _, res = built
    entry = manifest.saes[0]
    w = load_sae(entry, manifest.base_dir)
    gain, kind = norm_direction(lm)
    assert kind == "rms"
    assert np.allclose(gain, lm.model.model.norm.weight.detach().numpy())
    d = torch.from_numpy(w.W_dec[3] / np.linalg.norm(w.W_dec[3]))
    logits = lm.model.lm_head.weight.detach() @ (d * lm.model.model.norm.weight.detach())
    page = res.pages[(entry.layer, entry.module.value)][3]
    assert page["logits"]["pos"][0][1] == pytest.approx(float(logits.max()), rel=5e-3)
    assert page["logits"]["neg"][0][1] == pytest.approx(float(logits.min()), rel=5e-3)
    assert sum(page["logits"]["counts"]) == logits.numel()


def test_pages_are_cached_as_files_and_compact(built) -> None:
    lm, manifest, chunks, opts, res = built
    again = atlas_pages(manifest, lm, chunks, heldout_tokens=600, seq_len=64, opts=opts)
    assert again.seconds == {"cached": 1.0}
    assert again.pages == res.pages and again.density == res.density
    size = max(len(json.dumps(p, separators=(",", ":"))) for rows in res.pages.values() for p in rows)
    assert size < 8_000


def test_density_histogram_counts_alive_and_dead() -> None:
    h = density_histogram(np.array([0.0, 1e-3, 1e-3, 0.5, 1e-9]), bins=7)
    assert h["dead"] == 1 and sum(h["counts"]) == 4 and h["counts"][0] == 1 and h["counts"][4] == 2


def test_largest_lineages_follow_the_cuts() -> None:
    feats = [{"uid": f"a/{layer}-res/{i}", "layer": layer} for layer in range(3) for i in range(2)]
    links = [
        {"source": "a/0-res/0", "source_module": "res", "target": "a/1-res/0", "layer": 1, "similarity": 0.9},
        {"source": "a/1-res/0", "source_module": "res", "target": "a/2-res/1", "layer": 2, "similarity": 0.8},
        {"source": "a/2-mlp/5", "source_module": "mlp", "target": "a/2-res/1", "layer": 2, "similarity": 0.3},
        {"source": "a/2-att/5", "source_module": "att", "target": "a/2-res/1", "layer": 2, "similarity": 0.1},
        {"source": "a/1-res/1", "source_module": "res", "target": "a/2-res/0", "layer": 2, "similarity": 0.4},
    ]
    out = largest_lineages(feats, links, limit=2)
    assert out[0] == {"uid": "a/2-res/1", "size": 4, "length": 3}
    assert out[1] == {"uid": "a/1-res/0", "size": 2, "length": 2}


def test_topk_codes_from_a_trainer_give_the_same_sparse_codes() -> None:
    """SparseCodes.add_topk (the trainer's TopK vals/idx) holds exactly what add (dense activations) holds."""
    from training.feature_pages import SparseCodes

    rng = np.random.default_rng(0)
    dense = np.maximum(rng.normal(size=(40, 12)).astype(np.float32), 0)
    idx = np.argsort(-dense, axis=1)[:, :3]
    vals = np.take_along_axis(dense, idx, axis=1)
    kept = np.zeros_like(dense)
    np.put_along_axis(kept, idx, vals, axis=1)
    a, b = SparseCodes(12), SparseCodes(12)
    a.add(kept, offset=7)
    b.add_topk(vals, idx, offset=7)
    for x, y in zip(a.by_feature(), b.by_feature(), strict=True):
        assert np.array_equal(x, y)
