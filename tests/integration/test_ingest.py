"""atlas ingest on the real Neo4j: exact graph of a planted atlas, idempotency, resume after SIGKILL,
bad input leaves nothing, and a Neo4j that stops mid-run (on our own temporary server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ingest.pipeline import ingest_atlas
from queries.db import Graph
from queries.errors import SAEFileError
from queries.ids import Module
from queries.settings import Neo4jSettings
from saes.manifest import SAEEntry, load_manifest
from saes.saelens_format import save_sae_dir
from saes.synthetic import planted_atlas
from saes.weights import SAEWeights
from tests.servers import private_neo4j

REPO = Path(__file__).resolve().parents[2]
K = 3


def _snapshot(g: Graph, atlas: str) -> tuple[list[tuple], list[tuple], dict]:
    feats = g.read(
        "MATCH (f:Feature {atlas: $a}) RETURN f.uid AS uid, f.layer AS l, f.module AS m, f.index AS i, f.d_sae AS d, "
        "f.decoder_norm AS n, f.s_res AS sr, f.s_att AS sa, f.s_mlp AS sm, f.category AS c ORDER BY uid",
        {"a": atlas},
    )
    edges = g.read(
        "MATCH (s:Feature {atlas: $a})-[e:FLOWS_TO]->(t) RETURN s.uid AS s, t.uid AS t, e.similarity AS sim, "
        "e.target_rank AS tr, e.source_rank AS sr ORDER BY s, t",
        {"a": atlas},
    )
    atlas_node = g.read(
        "MATCH (a:Atlas {name: $a}) RETURN a.complete AS complete, a.k AS k, a.n_features AS nf, a.n_edges AS ne",
        {"a": atlas},
    )
    return [tuple(r.values()) for r in feats], [tuple(r.values()) for r in edges], atlas_node[0] if atlas_node else {}


def _planted(tmp_path: Path, name: str, **kw):  # type: ignore[no-untyped-def]
    pa = planted_atlas(
        name=name,
        n_layers=kw.pop("n_layers", 3),
        d_model=kw.pop("d_model", 160),
        d_sae=kw.pop("d_sae", 32),
        seed=5,
        **kw,
    )
    return pa, load_manifest(pa.write(tmp_path / "atlas"))


def test_ingest_planted_atlas_exact(graph: Graph, atlas_name: str, tmp_path: Path) -> None:
    pa, m = _planted(tmp_path, atlas_name)
    report = ingest_atlas(m, graph, k=K)
    feats, edges, atlas = _snapshot(graph, atlas_name)
    assert len(feats) == 3 * 3 * 32 == report.n_features
    assert atlas == {"complete": True, "k": K, "nf": len(feats), "ne": len(edges)}
    unit = {key: w.W_dec / np.linalg.norm(w.W_dec, axis=1, keepdims=True) for key, w in pa.weights.items()}
    by_uid = {f[0]: f for f in feats}
    for layer in pa.layers:
        r = unit[(layer, Module.RES)]
        for i in range(32):
            f = by_uid[f"{atlas_name}/{layer}-res/{i}"]
            assert f[9] == pa.truth[(layer, i)].category
            assert abs(f[5] - float(np.linalg.norm(pa.weights[(layer, Module.RES)].W_dec[i]))) < 1e-4
            for col, key in ((6, (layer - 1, Module.RES)), (7, (layer, Module.ATT)), (8, (layer, Module.MLP))):
                if key in unit:
                    assert abs(f[col] - float((unit[key] @ r[i]).max())) < 1e-5
                else:
                    assert f[col] is None
        assert by_uid[f"{atlas_name}/{layer}-mlp/0"][9] is None
    # expected edge set, computed independently with numpy
    expected = {}
    for layer in pa.layers:
        r = unit[(layer, Module.RES)]
        for mod_key, src_name in (
            ((layer, Module.ATT), "att"),
            ((layer, Module.MLP), "mlp"),
            ((layer - 1, Module.RES), "res"),
        ):
            if mod_key not in unit:
                continue
            sims = r @ unit[mod_key].T  # [target, source]
            for t in range(32):
                for rank, s in enumerate(np.argsort(-sims[t])[:K]):
                    expected.setdefault(
                        (f"{atlas_name}/{mod_key[0]}-{src_name}/{s}", f"{atlas_name}/{layer}-res/{t}"), {}
                    )["tr"] = rank
            if src_name == "res":
                for s in range(32):
                    for rank, t in enumerate(np.argsort(-sims[:, s])[:K]):
                        expected.setdefault((f"{atlas_name}/{layer - 1}-res/{s}", f"{atlas_name}/{layer}-res/{t}"), {})[
                            "sr"
                        ] = rank
    got = {(e[0], e[1]): e for e in edges}
    assert len(got) == len(edges) == len(expected)
    for (s, t), ranks in expected.items():
        e = got[(s, t)]
        assert e[3] == ranks.get("tr") and e[4] == ranks.get("sr")
    sae = graph.read(
        "MATCH (:Atlas {name: $a})-[:HAS_SAE]->(s:SAE) RETURN count(s) AS n, all(x IN collect(s.complete) WHERE x) AS done",
        {"a": atlas_name},
    )
    assert sae == [{"n": 9, "done": True}]
    run = graph.read("MATCH (r:IngestRun)-[:BUILT]->(:Atlas {name: $a}) RETURN r.status AS status", {"a": atlas_name})
    assert run == [{"status": "complete"}]


def test_ingest_twice_is_idempotent(graph: Graph, atlas_name: str, tmp_path: Path) -> None:
    _, m = _planted(tmp_path, atlas_name, n_layers=2)
    ingest_atlas(m, graph, k=K)
    first = _snapshot(graph, atlas_name)
    ingest_atlas(m, graph, k=K)
    assert _snapshot(graph, atlas_name) == first
    assert graph.read("MATCH (r:IngestRun {atlas: $a}) RETURN count(r) AS n", {"a": atlas_name}) == [{"n": 1}]


def test_bad_sae_writes_nothing(graph: Graph, atlas_name: str, tmp_path: Path) -> None:
    pa, m = _planted(tmp_path, atlas_name, n_layers=2)
    w = pa.weights[(1, Module.MLP)]
    w.W_dec[5] = 0.0
    save_sae_dir(tmp_path / "atlas" / "saes" / "1-mlp", w)
    with pytest.raises(SAEFileError, match="all zeros"):
        ingest_atlas(m, graph, k=K)
    assert graph.read("MATCH (n) WHERE n.atlas = $a OR n.name = $a RETURN count(n) AS n", {"a": atlas_name}) == [
        {"n": 0}
    ]


def _cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def test_resume_after_sigkill_equals_uninterrupted(graph: Graph, atlas_name: str, tmp_path: Path) -> None:
    # Large enough that the kill lands mid-write; batch of 500 edges makes many transactions.
    _, m = _planted(tmp_path, atlas_name, n_layers=6, d_model=256, d_sae=128)
    manifest = tmp_path / "atlas" / "atlas.toml"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "atlas_cli.main",
            "ingest",
            str(manifest),
            "-k",
            str(K),
            "--no-progress",
            "--edge-batch",
            "300",
        ],
        env=_cli_env(),
        cwd=REPO,
    )
    # Kill once some but not all layers are written.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = graph.read(
            "MATCH (s:SAE {atlas: $a, module: 'res'}) WHERE s.complete RETURN count(s) AS n", {"a": atlas_name}
        )
        if rows[0]["n"] >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _snapshot(graph, atlas_name)
    assert partial[2].get("complete") is False
    done = subprocess.run(
        [sys.executable, "-m", "atlas_cli.main", "ingest", str(manifest), "-k", str(K), "--resume", "--no-progress"],
        env=_cli_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "skipped 0" not in done.stdout and "skipped" in done.stdout  # the kill landed after some layers
    resumed = _snapshot(graph, atlas_name)
    assert resumed[2]["complete"] is True
    # reference: an uninterrupted ingest of the same manifest under another name
    ref_name = atlas_name + "-ref"
    try:
        from saes.manifest import AtlasManifest

        ref = AtlasManifest(ref_name, m.model, m.d_model, m.saes, m.base_dir)
        ingest_atlas(ref, graph, k=K)
        reference = _snapshot(graph, ref_name)

        def strip(rows: list[tuple]) -> list[tuple]:
            return [tuple(str(v).replace(ref_name, atlas_name) if isinstance(v, str) else v for v in r) for r in rows]

        assert resumed[0] == strip(reference[0])
        assert resumed[1] == strip(reference[1])
        assert len(resumed[1]) > 0
    finally:
        from queries.maintenance import drop_atlas

        drop_atlas(graph, ref_name)


def test_neo4j_stopping_mid_run_gives_one_clear_error(tmp_path: Path) -> None:
    from atlas_cli import local_neo4j

    with private_neo4j(tmp_path / "neo4j") as s:  # our own server: this test stops it
        _, m = _planted(tmp_path, "stop-test", n_layers=8, d_model=256, d_sae=128)
        manifest = tmp_path / "atlas" / "atlas.toml"
        env = {**_cli_env(), "NEO4J_URI": s.bolt_uri}
        proc = subprocess.Popen(
            [sys.executable, "-m", "atlas_cli.main", "ingest", str(manifest), "--no-progress", "--edge-batch", "200"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with Graph(Neo4jSettings(uri=s.bolt_uri)) as g:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if g.read("MATCH (s:SAE {atlas: 'stop-test'}) WHERE s.complete RETURN count(s) AS n")[0]["n"] >= 1:
                        break
                except Exception:  # noqa: BLE001 - schema not there yet
                    pass
                time.sleep(0.05)
        local_neo4j.stop(s)
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 1, (out, err)
        lines = [line for line in err.strip().splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert lines[0].startswith("error: ") and "--resume" in lines[0] and "Traceback" not in err


def test_bulk_import_equals_online_graph(graph: Graph, atlas_name: str, tmp_path: Path) -> None:
    """CSV export → neo4j-admin import into our own stopped server → start: the same graph as online."""
    from atlas_cli.commands.ingest import import_into_local_server
    from ingest.bulk import export_csv
    from ingest.options import IngestOptions

    pa, m = _planted(tmp_path, atlas_name)
    # a seed-ceiling SAE for res(2): its summary must reach the SAE node by both paths
    twin = pa.weights[(2, Module.RES)].W_dec + 0.2 * np.random.default_rng(0).standard_normal((32, 160)).astype(
        np.float32
    )
    save_sae_dir(tmp_path / "atlas" / "2-res-seed1", SAEWeights(W_dec=twin, hook_name="blocks.2.hook_resid_post"))
    m.ceilings = [SAEEntry(2, Module.RES, path="2-res-seed1")]
    ingest_atlas(m, graph, k=K)
    online = _snapshot(graph, atlas_name)
    exp = export_csv(m, tmp_path / "csv", IngestOptions(k=K))
    assert (exp.n_features, exp.n_edges) == (len(online[0]), len(online[1]))
    with private_neo4j(
        tmp_path / "neo4j"
    ) as s:  # started: initialises the password and a database the import then replaces
        with Graph(Neo4jSettings(uri=s.bolt_uri)) as g:
            g.write("CREATE (:Feature {uid: 'left-over', atlas: 'other'})")
        import_into_local_server(exp.admin_args(), s)
        with Graph(Neo4jSettings(uri=s.bolt_uri)) as g:
            assert _snapshot(g, atlas_name) == online
            assert g.read("MATCH (n) WHERE n.atlas = 'other' RETURN count(n) AS n") == [
                {"n": 0}
            ]  # replaced, not merged
            meta = "MATCH (r:IngestRun)-[:BUILT]->(a:Atlas {name: $a})-[:HAS_SAE]->(s:SAE) RETURN r.status AS run, count(s) AS saes, all(x IN collect(s.complete) WHERE x) AS done"
            assert g.read(meta, {"a": atlas_name}) == [{"run": "complete", "saes": 9, "done": True}]
            props = (
                "MATCH (a:Atlas {name: $a}) RETURN a.layers AS layers, a.threshold_res AS tr, a.manifest_sha256 AS sha"
            )
            assert g.read(props, {"a": atlas_name}) == graph.read(props, {"a": atlas_name})
            # the null controls and the category rule, on the SAE nodes and the Atlas, as the online path stores them
            sae_props = "MATCH (s:SAE {atlas: $a}) RETURN s.key AS key, properties(s) AS p ORDER BY key"
            bulk_saes, online_saes = g.read(sae_props, {"a": atlas_name}), graph.read(sae_props, {"a": atlas_name})
            assert bulk_saes == online_saes
            assert sum("res_null_p999" in r["p"] for r in bulk_saes) == 2  # res(1), res(2): layer 0 has no res(L-1)
            assert [r["key"] for r in bulk_saes if "ceiling_median" in r["p"]] == [f"{atlas_name}/2-res"]
            assert all("att_null_median" in r["p"] for r in bulk_saes if r["key"].endswith("-res"))
            controls = (
                "MATCH (a:Atlas {name: $a}) RETURN a.threshold_rule AS rule, a.null_median_mean AS med, "
                "a.null_p999_max AS p999, a.category_rules AS rules"
            )
            bulk_atlas = g.read(controls, {"a": atlas_name})
            assert bulk_atlas == graph.read(controls, {"a": atlas_name}) and bulk_atlas[0]["p999"] is not None
            names = {r["name"] for r in g.read("SHOW CONSTRAINTS YIELD name RETURN name")}
            assert "feature_uid" in names  # schema created after the import


def test_recategorize_from_stored_scores(graph: Graph, atlas_name: str, tmp_path: Path) -> None:
    from ingest.pipeline import recategorize
    from ingest.scores import Thresholds, categorize
    from queries.errors import AtlasNotFound

    _, m = _planted(tmp_path, atlas_name, n_layers=2)
    ingest_atlas(m, graph, k=K)
    original = _snapshot(graph, atlas_name)
    th = Thresholds(res=0.9, module=0.6)
    counts = recategorize(graph, atlas_name, th)
    feats = _snapshot(graph, atlas_name)[0]
    res = [f for f in original[0] if f[2] == "res"]
    expected = []
    for layer in sorted({f[1] for f in res}):  # per layer, as ingest categorizes (s_res is absent in the first)
        rows = [f for f in res if f[1] == layer]
        cols = [
            None if all(f[i] is None for f in rows) else np.array([f[i] for f in rows], dtype=float) for i in (6, 7, 8)
        ]
        expected += [(f[0], c) for f, c in zip(rows, categorize(*cols, len(rows), th).tolist())]
    expected = [c for _, c in sorted(expected)]
    assert [f[9] for f in feats if f[2] == "res"] == expected
    assert expected != [f[9] for f in res]  # the new thresholds do change some categories
    assert expected.count(None) == 32  # the first layer stays without categories
    assert counts == {c: expected.count(c) for c in ("translated", "processed", "newborn", "unexplained")} | {
        "none": 32
    }
    stored = graph.read(
        "MATCH (a:Atlas {name: $a}) RETURN a.threshold_res AS r, a.threshold_module AS m", {"a": atlas_name}
    )
    assert stored == [{"r": 0.9, "m": 0.6}]
    # back to the ingest's thresholds through the CLI: exactly the ingested graph again
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "atlas_cli.main",
            "ingest",
            str(tmp_path / "atlas" / "atlas.toml"),
            "--recategorize",
            "--t-res",
            "0.5",
            "--t-module",
            "0.25",
        ],
        env=_cli_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "recategorized" in done.stdout
    assert _snapshot(graph, atlas_name) == original
    with pytest.raises(AtlasNotFound, match="does not exist"):
        recategorize(graph, atlas_name + "-missing", th)
