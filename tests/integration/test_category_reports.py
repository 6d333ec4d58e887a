"""The graph-only reports and the lineage figure on a planted atlas in the real Neo4j: the thresholds
report's counts equal what ingest and `--recategorize` store, the transition matrix counts every feature's
top-1 successor once and its cells equal a direct count, the controls section places scores against a
ceiling where one is stored, and `atlas plot lineage` draws exactly the flow graph's nodes and edges."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from typer.testing import CliRunner

from atlas_cli.main import app
from ingest.pipeline import ingest_atlas, recategorize
from ingest.scores import Thresholds
from queries.db import Graph
from queries.errors import FeatureNotFound
from queries.flow_graph import Direction, build_flow_graph
from saes.manifest import load_manifest
from saes.synthetic import planted_atlas


def _plant(graph: Graph, tmp_path: Path, name: str) -> None:
    pa = planted_atlas(name=name, n_layers=3, d_model=160, d_sae=32, seed=5)
    ingest_atlas(load_manifest(pa.write(tmp_path / "atlas")), graph, k=3, backend="numpy")


def _categories(graph: Graph, atlas: str) -> dict[tuple[int, str], int]:
    rows = graph.read(
        "MATCH (f:Feature {atlas: $a, module: 'res'}) RETURN f.layer AS l, coalesce(f.category, 'none') AS c, count(*) AS n",
        {"a": atlas},
    )
    return {(r["l"], r["c"]): r["n"] for r in rows}


def test_threshold_and_transition_reports(graph: Graph, atlas_name: str, tmp_path: Path) -> None:
    _plant(graph, tmp_path, atlas_name)
    fixed = _categories(graph, atlas_name)
    # a ceiling on one res SAE (what `atlas train --seeds 2` stores): its rows get a position
    graph.write("MATCH (s:SAE {key: $k}) SET s.ceiling_median = 0.9", {"k": f"{atlas_name}/2-res"})
    out = tmp_path / "reports"
    res = CliRunner().invoke(app, ["experiment", "thresholds", "--atlas", atlas_name, "--out", str(out)])
    assert res.exit_code == 0, res.output
    th = json.loads((out / "thresholds.json").read_text())["results"]
    recategorize(graph, atlas_name, Thresholds(null_quantile=0.999))
    null = _categories(graph, atlas_name)
    for d in th["layers"]:
        assert d["n"] == 32
        assert {c: n for c, n in d["fixed"].items() if n} == {c: n for (L, c), n in fixed.items() if d["layer"] == L}
        assert {c: n for c, n in d["b"].items() if n} == {c: n for (L, c), n in null.items() if d["layer"] == L}
    assert th["layers"][0]["fixed"]["none"] == 32  # no res(L-1): no category
    assert sum(sum(r.values()) for r in th["pooled_transitions"].values()) == 3 * 32
    controls = th["controls"]["rows"]
    with_ceiling = [r for r in controls if r["layer"] == 2]
    assert with_ceiling and all(r["position"] is not None for r in with_ceiling)
    assert all(r["position"] is None for r in controls if r["layer"] == 1)
    md = (out / "thresholds.md").read_text()
    assert "Transitions fixed → null:0.999" in md and "0.900" in md  # the ceiling is shown

    res = CliRunner().invoke(app, ["experiment", "transitions", "--atlas", atlas_name, "--out", str(out)])
    assert res.exit_code == 0, res.output
    tr = json.loads((out / "transitions.json").read_text())["results"]
    pooled = tr["rules"]["null:0.999"]["pooled"]  # the graph now holds the null rule's categories
    assert sum(sum(r.values()) for r in pooled.values()) == 2 * 32  # one top-1 successor per feature, 2 layer pairs
    direct = graph.read(
        "MATCH (f:Feature {atlas: $a, layer: 1, module: 'res'})-[e:FLOWS_TO {source_rank: 0}]->(g:Feature {module: 'res'}) "
        "RETURN coalesce(f.category, 'none') AS a, coalesce(g.category, 'none') AS b, count(*) AS n",
        {"a": atlas_name},
    )
    per_pair = tr["rules"]["null:0.999"]["per_pair"][1]["transitions"]
    assert {(r["a"], r["b"]): r["n"] for r in direct} == {
        (a, b): n for a, row in per_pair.items() for b, n in row.items() if n
    }
    assert "no ceiling trained" in (out / "transitions.md").read_text()  # layers 0/1 have none


def test_plot_lineage_draws_the_flow_graph(graph: Graph, atlas_name: str, tmp_path: Path) -> None:
    _plant(graph, tmp_path, atlas_name)
    uid = f"{atlas_name}/1-res/3"
    svg = tmp_path / "lineage.svg"
    res = CliRunner().invoke(app, ["plot", "lineage", uid, "--out", str(svg), "--depth", "2"])
    assert res.exit_code == 0, res.output
    fg = build_flow_graph(graph, [uid], direction=Direction.BOTH, depth=2, min_similarity=0.0)
    ids = {el.get("id") for el in ET.parse(svg).iter() if el.get("id")}
    nodes = {i[5:] for i in ids if i.startswith("node:")}
    edges = {tuple(i[5:].split("->")) for i in ids if i.startswith("edge:")}
    assert nodes == {n.uid for n in fg.nodes} and len(nodes) >= 3
    assert edges == {(e.source, e.target) for e in fg.edges} and len(edges) >= 2
    bad = CliRunner().invoke(app, ["plot", "lineage", f"{atlas_name}/1-res/999", "--out", str(tmp_path / "x.svg")])
    # an AtlasError: `atlas` prints it as one line (atlas_cli.main.run)
    assert isinstance(bad.exception, FeatureNotFound) and "does not exist" in str(bad.exception)
    assert not (tmp_path / "x.svg").exists()
