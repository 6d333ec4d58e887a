"""Analyst recipes (exact answers on the hand-planted atlas) and `atlas cypher` (table output, writes refused)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from queries.db import Graph
from queries.errors import InvalidInput
from queries.maintenance import drop_atlas
from queries.recipes import RECIPES, get_recipe
from tests.hand_atlas import HandAtlas

ATLAS_BIN = str(Path(sys.executable).parent / "atlas")


@pytest.fixture(scope="module")
def hand(graph: Graph) -> Iterator[HandAtlas]:
    a = HandAtlas(f"test-rcp-{uuid.uuid4().hex[:8]}")
    a.write(graph)
    yield a
    drop_atlas(graph, a.name)


def run(graph: Graph, name: str, **params: object) -> list[dict]:
    r = get_recipe(name)
    return graph.read(r.statement, r.params(params))


def short(uid: str) -> str:
    return uid.split("/", 1)[1]


def test_origin_census(graph: Graph, hand: HandAtlas) -> None:
    rows = run(graph, "origin-census", atlas=hand.name)
    by_layer = {r["layer"]: (r["translated"], r["processed"], r["newborn"], r["unexplained"], r["total"]) for r in rows}
    assert by_layer[0] == (0, 0, 0, 0, 4)  # no res(-1) SAE: no categories, only the total
    assert by_layer[2] == (2, 1, 0, 1, 4)  # 0 and 1 translated, 2 processed (att 0.6), 3 unexplained
    assert by_layer[3] == (1, 1, 1, 1, 4)  # 1 newborn from mlp 3
    assert by_layer[4] == (2, 0, 0, 2, 4)  # 2 dropped to 0.4: unexplained


def test_born_in_mlp(graph: Graph, hand: HandAtlas) -> None:
    rows = run(graph, "born-in-mlp", atlas=hand.name, layer=3)
    assert [(short(r["feature"]), short(r["born_from"]), round(r["similarity"], 3)) for r in rows] == [
        ("3-res/1", "3-mlp/1", 0.8)
    ]
    assert run(graph, "born-in-mlp", atlas=hand.name, layer=2) == []


def test_strongest_chains(graph: Graph, hand: HandAtlas) -> None:
    rows = run(graph, "strongest-chains", atlas=hand.name, layer=5, limit=3)
    got = [(short(r["feature"]), r["links"], short(r["starts_at"]), round(r["weakest_link"], 3)) for r in rows]
    assert got == [("5-res/0", 5, "0-res/0", 0.9), ("5-res/1", 2, "3-res/1", 0.75), ("5-res/2", 1, "4-res/2", 0.9)]
    assert rows[0]["strength"] == pytest.approx(0.9**5)


def test_hubs(graph: Graph, hand: HandAtlas) -> None:
    rows = run(graph, "hubs", atlas=hand.name, layer=1, layers=6)
    assert [(short(r["feature"]), r["children"], r["descendants"]) for r in rows] == [
        ("1-res/0", 1, 4),
        ("1-res/2", 1, 2),
        ("1-res/1", 1, 1),
    ]
    rows = run(graph, "hubs", atlas=hand.name, layer=3, module="mlp", min_similarity=0.5)
    assert [(short(r["feature"]), r["descendants"]) for r in rows] == [("3-mlp/1", 3)]


def test_circuit_between_layers(graph: Graph, hand: HandAtlas) -> None:
    rows = run(graph, "circuit-between-layers", atlas=hand.name, from_layer=1, to_layer=3)
    got = [(short(r["source"]), short(r["target"]), [short(u) for u in r["path"]]) for r in rows]
    assert got == [
        ("1-res/0", "3-res/0", ["1-res/0", "2-res/0", "3-res/0"]),
        ("1-res/2", "3-res/2", ["1-res/2", "2-res/2", "3-res/2"]),
    ]


def test_recipe_parameter_errors() -> None:
    with pytest.raises(InvalidInput, match="needs parameter"):
        get_recipe("born-in-mlp").params({"atlas": "x"})
    with pytest.raises(InvalidInput, match="has no parameter"):
        get_recipe("origin-census").params({"atlas": "x", "lyr": 1})
    with pytest.raises(InvalidInput, match="unknown recipe"):
        get_recipe("nope")
    assert len(RECIPES) >= 5


def test_cli_prints_a_table_and_refuses_writes(hand: HandAtlas) -> None:
    out = subprocess.run(
        [
            ATLAS_BIN,
            "cypher",
            "MATCH (f:Feature {atlas: $a, module: 'res', layer: 3}) RETURN f.uid AS uid, f.category AS category ORDER BY uid",
            "-p",
            f"a={hand.name}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].split("|")[0].strip() == "uid" and lines[0].split("|")[1].strip() == "category"
    assert lines[2].split("|")[1].strip() == "translated" and lines[3].split("|")[1].strip() == "newborn"
    assert lines[-1] == "(4 rows)"
    out = subprocess.run(
        [ATLAS_BIN, "cypher", "--recipe", "born-in-mlp", "-p", f"atlas={hand.name}", "-p", "layer=3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "3-mlp/1" in out.stdout
    bad = subprocess.run(
        [ATLAS_BIN, "cypher", "MATCH (f:Feature {atlas: $a}) DETACH DELETE f", "-p", f"a={hand.name}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "read-only" in bad.stderr and "Traceback" not in bad.stderr
    assert (
        subprocess.run(
            [ATLAS_BIN, "cypher", "MATCH (f:Feature {atlas: $a}) RETURN count(f) AS n", "-p", f"a={hand.name}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        .stdout.splitlines()[2]
        .strip()
        == "72"
    )
