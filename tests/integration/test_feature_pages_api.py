"""Feature pages end to end: computed on a planted atlas with a tiny Llama, stored in Neo4j, served by GraphQL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from atlas_api.types import MAX_PAGES_PER_REQUEST
from queries.db import Graph
from queries.feature_pages import count_paged, page_bytes
from tests.servers import gql, running_api

PAGE_Q = """query($uid: String!) { feature(uid: $uid) { ... on Feature {
  page { heldoutTokens firingTokens density activationHistogram { binEdges counts }
         exampleGroups { name minActivation maxActivation examples { tokens activations maxIndex } }
         logitLens { positive { token weight } negative { token weight } histogram { counts } } }
  predecessors { method similarity } } } }"""
ATLAS_Q = """query($name: String!) { atlases(name: $name) {
  saes { key densityHistogram { log10BinEdges counts dead } }
  entryPoints { uid size length feature { uid label } } } }"""
LINEAGE_Q = (
    """query($uid: String!) { lineage(uid: $uid, direction: BOTH, minSimilarity: 0.0) { edges { source methods } } }"""
)


def test_pages_are_stored_and_served(graph: Graph, atlas_name: str, tmp_path: Any) -> None:
    from ingest.pipeline import ingest_atlas
    from saes.manifest import load_manifest
    from saes.synthetic import planted_atlas
    from tests.factories import tiny_llama
    from training.corpus import Chunk
    from training.feature_pages_publish import atlas_pages, store_atlas_pages

    lm = tiny_llama(seed=0, d_model=128)
    pa = planted_atlas(atlas_name, n_layers=3, d_model=128, d_sae=32, seed=4)
    manifest = load_manifest(pa.write(tmp_path / "atlas"))
    ingest_atlas(manifest, graph, k=2, backend="numpy")
    text = "a wedding by the river, music in the garden and a city in winter; " * 8
    chunks = [Chunk("d", i, text[i:] + text[:i]) for i in range(8)]
    res = atlas_pages(manifest, lm, chunks, heldout_tokens=800, seq_len=64)
    stored = store_atlas_pages(graph, atlas_name, res)
    n_features = 3 * 3 * 32  # layers × (res, att, mlp) × d_sae
    assert stored["features"] == count_paged(graph, atlas_name) == n_features
    sizes = page_bytes(graph, atlas_name)
    assert 200 < sizes["mean_chars"] < 8_000

    fired = next(p for p in res.pages[(2, "res")] if p["firing"] >= 5)
    uid = f"{atlas_name}/2-res/{fired['index']}"
    with running_api() as base:
        out = gql(base, PAGE_Q, {"uid": uid})
        assert "errors" not in out, out
        page = out["data"]["feature"]["page"]
        assert page["firingTokens"] == fired["firing"] and page["heldoutTokens"] == res.heldout_tokens
        assert page["density"] == pytest.approx(fired["firing"] / res.heldout_tokens)
        assert sum(page["activationHistogram"]["counts"]) == fired["firing"]
        top = page["exampleGroups"][0]
        assert top["name"] == "top" and top["examples"]
        ex = top["examples"][0]
        assert len(ex["tokens"]) == len(ex["activations"]) and ex["activations"][ex["maxIndex"]] == top["maxActivation"]
        assert [g["name"] for g in page["exampleGroups"][1:]] == ["q1", "q2", "q3", "q4"][
            : len(page["exampleGroups"]) - 1
        ]
        lens = page["logitLens"]
        assert len(lens["positive"]) == 10 and lens["positive"][0]["weight"] >= lens["positive"][-1]["weight"]
        assert lens["negative"][0]["weight"] <= lens["negative"][-1]["weight"] < lens["positive"][-1]["weight"]
        assert sum(lens["histogram"]["counts"]) == lm.model.config.vocab_size
        assert {p["method"] for p in out["data"]["feature"]["predecessors"]} <= {"cosine"}

        atlas = gql(base, ATLAS_Q, {"name": atlas_name})["data"]["atlases"][0]
        dens = {s["key"]: s["densityHistogram"] for s in atlas["saes"]}
        d = dens[f"{atlas_name}/2-res"]
        assert sum(d["counts"]) + d["dead"] == 32 and len(d["log10BinEdges"]) == len(d["counts"]) + 1
        entry = atlas["entryPoints"]
        assert entry and entry[0]["size"] >= entry[-1]["size"] and entry[0]["feature"]["uid"] == entry[0]["uid"]
        # the stored entry points are the ones the pure function computes from the graph's top-1 links
        raw = graph.read("MATCH (a:Atlas {name: $n}) RETURN a.entry_points AS e", {"n": atlas_name})[0]["e"]
        assert [e["uid"] for e in json.loads(raw)] == [e["uid"] for e in entry]
        edges = gql(base, LINEAGE_Q, {"uid": entry[0]["uid"]})["data"]["lineage"]["edges"]
        assert edges and all(e["methods"] == ["cosine"] for e in edges)
        # at most MAX_PAGES_PER_REQUEST pages per request
        many = "query($a: String!, $n: Int!) { features(where: {atlas: {eq: $a}}, limit: $n) { page { density } } }"
        ok = gql(base, many, {"a": atlas_name, "n": MAX_PAGES_PER_REQUEST})
        assert "errors" not in ok and all(f["page"] is not None for f in ok["data"]["features"])
        refused = gql(base, many, {"a": atlas_name, "n": MAX_PAGES_PER_REQUEST + 1})
        assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
        assert f"at most {MAX_PAGES_PER_REQUEST} feature pages" in refused["errors"][0]["message"]


def test_atlas_labels_pages_command_on_a_corpus(graph: Graph, atlas_name: str, tmp_path: Any) -> None:
    """`atlas labels pages atlas.toml --corpus FILE` computes pages for an ingested atlas and stores them."""
    from typer.testing import CliRunner

    from atlas_cli.main import app
    from ingest.pipeline import ingest_atlas
    from saes.manifest import load_manifest
    from saes.synthetic import planted_atlas
    from tests.factories import tiny_llama

    lm = tiny_llama(seed=2, d_model=128)
    model_dir = tmp_path / "model"
    lm.model.save_pretrained(model_dir)
    lm.tokenizer.save_pretrained(model_dir)
    pa = planted_atlas(atlas_name, n_layers=2, d_model=128, d_sae=16, model=str(model_dir), seed=1)
    path = pa.write(tmp_path / "atlas")
    ingest_atlas(load_manifest(path), graph, k=2, backend="numpy")
    corpus = tmp_path / "text.txt"
    corpus.write_text("the river and the garden in winter, music in the city. " * 40)
    out = CliRunner().invoke(app, ["labels", "pages", str(path), "--corpus", str(corpus), "--tokens", "400"])
    assert out.exit_code == 0, out.output
    figures = json.loads(out.output[out.output.rindex('{"pages_') :])  # after transformers' progress bar
    assert figures["pages_features"] == 2 * 3 * 16 == count_paged(graph, atlas_name)
    assert (path.parent / "saes").exists() and list(path.parent.rglob("feature_pages.jsonl"))
