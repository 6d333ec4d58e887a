"""ingest.matchers: every matcher recovers the planted residual parents; cosine alone is today's output; bad
names are one clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingest.decoders import layer_decoders, validate_atlas
from ingest.layer_matching import LayerResult, match_layer
from ingest.matchers import parse_matchers, registry
from ingest.matchers.permutation import PermutationMatcher
from ingest.scores import Thresholds
from queries.errors import InvalidInput
from saes.manifest import load_manifest
from saes.synthetic import planted_atlas


def _top1(r: LayerResult, method: str | None, module: str = "res") -> dict[int, int]:
    out: dict[int, int] = {}
    for e in r.edges:
        if e.method == method and e.source_module == module:
            for s, d, rank in zip(e.src.tolist(), e.dst.tolist(), e.target_rank.tolist(), strict=True):
                if rank == 0:
                    out[d] = s
    return out


@pytest.mark.parametrize("architecture", ["topk", "jumprelu"])
def test_every_matcher_recovers_planted_top1_links(tmp_path: Path, architecture: str) -> None:
    pa = planted_atlas(name="pm", n_layers=3, d_model=128, d_sae=48, seed=5, architecture=architecture)
    manifest = load_manifest(pa.write(tmp_path / "atlas"))
    d_model, _ = validate_atlas(manifest)
    names = tuple(registry())
    assert set(names) >= {"cosine", "permutation", "ot"}
    planted = total = 0
    for layer in (1, 2):
        dec, prev = layer_decoders(manifest, layer, d_model)
        r = match_layer(layer, dec, prev, 3, Thresholds(), "numpy", "off", 64, matchers=names)
        truth = {f.index: f.res_parent for (lay, _), f in pa.truth.items() if lay == layer and f.res_parent is not None}
        for name in names:
            got = _top1(r, None if name == "cosine" else name)
            hits = sum(got.get(t) == p for t, p in truth.items())
            assert hits / len(truth) >= 0.99, (name, layer, hits, len(truth))
            planted += hits
            total += len(truth)
        # matcher edges carry their score and the pair's decoder cosine; cosine's carry neither method nor score
        perm = next(e for e in r.edges if e.method == "permutation" and e.source_module == "res")
        assert perm.score is not None and np.allclose(perm.score, perm.sim) and perm.distance == 1
        assert all(e.score is None for e in r.edges if e.method is None)
    assert planted == total


def test_cosine_alone_is_unchanged(tmp_path: Path) -> None:
    pa = planted_atlas(name="pc", n_layers=2, d_model=128, d_sae=24, seed=1)
    manifest = load_manifest(pa.write(tmp_path / "atlas"))
    d_model, _ = validate_atlas(manifest)
    dec, prev = layer_decoders(manifest, 1, d_model)
    base = match_layer(1, dec, prev, 3, Thresholds(), "numpy", "off", 64)
    more = match_layer(1, dec, prev, 3, Thresholds(), "numpy", "off", 64, matchers=("cosine", "ot"))
    cos = [e for e in more.edges if e.method is None]
    assert len(cos) == len(base.edges) and len(more.edges) > len(base.edges)
    for a, b in zip(base.edges, cos, strict=True):
        assert a.src.tolist() == b.src.tolist() and a.sim.tolist() == b.sim.tolist()
    assert base.features == more.features and base.controls == more.controls


def test_permutation_mse_check_is_zero_for_a_permuted_copy() -> None:
    rng = np.random.default_rng(0)
    src = rng.normal(size=(20, 16)).astype(np.float32)
    src /= np.linalg.norm(src, axis=1, keepdims=True)
    perm = rng.permutation(20)
    m = PermutationMatcher()
    _, idx = m.match(src[perm], src, 1)
    assert idx[:, 0].tolist() == perm.tolist() and m.last_mse is not None and m.last_mse < 1e-9
    m.match(rng.normal(size=(20, 16)).astype(np.float32), src, 1)
    assert m.last_mse is not None and m.last_mse > 0.5  # unrelated rows reconstruct badly


def test_bad_matcher_names_are_one_clear_error() -> None:
    assert parse_matchers("ot, permutation") == ("cosine", "ot", "permutation")
    with pytest.raises(InvalidInput, match=r"'pearsn'.*valid: cosine, permutation, ot"):
        parse_matchers("cosine,pearsn")


def test_query_side_matcher_names_equal_the_registry() -> None:
    from queries.domain import MATCHERS

    assert tuple(registry()) == MATCHERS
