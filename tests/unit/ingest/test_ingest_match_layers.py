"""ingest.layer_matching.match_layers: the one loop over layers equals matching each layer on its own, reuses res(L)
only for the layer right after it, and streams exactly the layers over the memory budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ingest.decoders import layer_decoders, validate_atlas
from ingest.layer_matching import LayerResult, match_layer, match_layers
from ingest.options import IngestOptions
from saes.manifest import load_manifest
from saes.synthetic import planted_atlas


def _edges(r: LayerResult) -> list[tuple[str, int, list[int], list[int], list[float]]]:
    return [(e.source_module, e.source_layer, e.src.tolist(), e.dst.tolist(), e.sim.tolist()) for e in r.edges]


def test_match_layers_equals_each_layer_alone(tmp_path: Path) -> None:
    pa = planted_atlas(name="ml", n_layers=4, d_model=128, d_sae=24, seed=2)
    manifest = load_manifest(pa.write(tmp_path / "atlas"))
    opts = IngestOptions(k=3, backend="numpy", prefilter="off", null_rows=128)
    d_model, _ = validate_atlas(manifest)
    got = list(match_layers(manifest, [0, 1, 3], d_model, opts))  # layer 2 skipped: layer 3 reloads res(2)
    assert [m.layer for m in got] == [0, 1, 3] and not any(m.streamed for m in got)
    for m in got:
        dec, prev = layer_decoders(manifest, m.layer, d_model)
        alone = match_layer(m.layer, dec, prev, 3, opts.thresholds, "numpy", "off", 128)
        assert _edges(m.result) == _edges(alone)
        assert m.result.features == alone.features and m.result.controls == alone.controls
    # layer 0 has no res(L-1): no residual edges; layer 3 does (res(2) was read although layer 2 was not matched)
    assert {e.source_module for e in got[0].result.edges} == {"att", "mlp"}
    assert ("res", 2) in {(e.source_module, e.source_layer) for e in got[2].result.edges}


def test_match_layers_streams_the_layers_over_the_budget(tmp_path: Path) -> None:
    pa = planted_atlas(name="mls", n_layers=2, d_model=128, d_sae=16, seed=4)
    manifest = load_manifest(pa.write(tmp_path / "atlas"))
    opts = IngestOptions(k=2, backend="numpy", prefilter="off", null_rows=64)
    d_model, sizes = validate_atlas(manifest)
    streamed = list(match_layers(manifest, manifest.layers, d_model, opts, sizes=sizes, memory_budget=1))
    in_memory = list(match_layers(manifest, manifest.layers, d_model, opts, sizes=sizes, memory_budget=1 << 30))
    assert [m.streamed for m in streamed] == [True, True] and [m.streamed for m in in_memory] == [False, False]
    for s, m in zip(streamed, in_memory, strict=True):
        assert [e[:4] for e in _edges(s.result)] == [e[:4] for e in _edges(m.result)]
        for a, b in zip(s.result.edges, m.result.edges, strict=True):
            np.testing.assert_allclose(a.sim, b.sim, atol=1e-5)
