"""The three experiments on SmolLM2-135M-Instruct with a planted atlas (layers 4–7, d_sae 128) whose
thresholds are fitted to the model: short runs that check the real model, the real flow-graph builder
(Neo4j) and the CLI end to end. Text: the Python documentation that ships with CPython (pydoc_data)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.context import AtlasContext
from experiments.synthetic import calibrate_thresholds, write_atlas
from experiments.texts import windows_from_texts
from queries.db import Graph
from queries.maintenance import drop_atlas


def _doc_texts() -> list[str]:
    from pydoc_data.topics import topics

    return [t for t in topics.values() if len(t) > 1500]


@pytest.fixture(scope="module")
def smol() -> Iterator[tuple[AtlasContext, object, list[list[int]]]]:
    import torch

    from saes.synthetic import planted_atlas
    from steering.model import DEFAULT_MODEL, load_model

    # One thread: on a busy (shared, CI) 2-core machine torch's default threads spin and run ~10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    lm = load_model()
    name = f"test-exp-{uuid.uuid4().hex[:8]}"
    planted = planted_atlas(name, n_layers=4, first_layer=4, d_model=576, d_sae=128, model=DEFAULT_MODEL, seed=5)
    windows = windows_from_texts(lm.tokenizer, _doc_texts(), 60, 64)
    ctx = calibrate_thresholds(AtlasContext(name, lm, dict(planted.weights)), windows[:10], rate=0.2)
    yield ctx, planted, windows[10:]
    torch.set_num_threads(threads)


def test_coactivation_cli_on_smollm2(smol, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from atlas_cli.main import app

    ctx, _, _ = smol
    manifest = write_atlas(ctx, tmp_path / "atlas")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, t in enumerate(_doc_texts()):
        (corpus / f"{i}.txt").write_text(t)
    out = tmp_path / "out"
    started = time.perf_counter()
    res = CliRunner().invoke(
        app,
        [
            "experiment",
            "coactivation",
            "--atlas",
            ctx.name,
            "--manifest",
            str(manifest),
            "--corpus",
            str(corpus),
            "--texts",
            "5",
            "--window",
            "64",
            "--out",
            str(out),
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads((out / "coactivation.json").read_text())
    assert data["meta"]["model"].endswith("SmolLM2-135M-Instruct") and data["meta"]["sampled_tokens"] == 25
    pairs = data["results"]["pairs"]["res"]
    assert pairs["matched_act_corr"]["estimate"] > pairs["random_act_corr"]["estimate"]
    print(f"coactivation CLI, 5 texts × 5 tokens on SmolLM2: {time.perf_counter() - started:.1f} s")


def test_deactivation_on_smollm2(smol, tmp_path: Path) -> None:
    from experiments.deactivation import DeactivationSettings
    from experiments.deactivation_report import run

    ctx, _, windows = smol
    started = time.perf_counter()
    report = run(
        ctx,
        windows[:4],
        windows[20:28],
        DeactivationSettings(n_texts=4, tokens_per_text=3, layers=(5, 7), max_targets=10),
    )
    report.write(tmp_path)
    m = report.data["metrics"]
    o = m["overall"]
    assert m["n_targets"] >= 30
    assert m["rerun_max_abs_error"] < 1e-3
    assert o["top1"]["success"]["estimate"] > o["random_top5"]["success"]["estimate"]
    print(
        f"deactivation, {m['n_targets']} targets, {report.data['n_rows']} rows on SmolLM2: {time.perf_counter() - started:.1f} s"
    )


def test_steering_eval_on_smollm2_with_real_flow_graphs(smol, graph: Graph, tmp_path: Path) -> None:
    from experiments.steering_eval import SteeringEvalSettings, load_bank, run
    from ingest.pipeline import ingest_atlas
    from queries.flow_graph import Direction, build_flow_graph
    from saes.manifest import load_manifest

    ctx, planted, _ = smol
    manifest = write_atlas(ctx, tmp_path / "atlas")
    ingest_atlas(load_manifest(manifest), graph, k=1, backend="numpy")
    try:
        seed = next(i for (layer, i), t in planted.truth.items() if layer == 6 and t.category == "translated")
        fg = build_flow_graph(graph, [f"{ctx.name}/6-res/{seed}"], direction=Direction.BOTH)
        assert len({n.layer for n in fg.nodes}) >= 2
        s = SteeringEvalSettings(
            theme="python programming",
            strengths=(8.0,),
            factors=(0.0,),
            schedules=("exponential",),
            max_layers=2,
            generations=2,
            max_new_tokens=8,
        )
        started = time.perf_counter()
        report = run(
            ctx.model,
            load_bank(manifest, ctx.model),
            [fg],
            s,
            atlas=ctx.name,
            seeds=[{"uid": fg.seeds[0], "score": 1.0, "basis": "planted"}],
        )
        report.write(tmp_path / "out")
        rows = report.data["settings"]
        promoted = [r for r in rows if r["direction"] == "promote" and r["texts"]]
        unsteered = next(r for r in rows if r["strategy"] == "unsteered" and r["prompt"] == s.promote_prompt)
        assert promoted and any(r["texts"] != unsteered["texts"] for r in promoted)  # steering changed the text
        assert (tmp_path / "out" / "steering.md").exists()
        print(f"steering sweep, {len(rows)} settings on SmolLM2: {time.perf_counter() - started:.1f} s")
    finally:
        drop_atlas(graph, ctx.name)
