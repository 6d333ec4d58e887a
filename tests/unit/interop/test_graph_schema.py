"""The attribution-graph validator (written from Neuronpedia's published graph schema) and the synthetic graph writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interop.graph_schema import validate_graph
from interop.synthetic_graph import SyntheticGraphSpec, write_synthetic_graph
from queries.errors import GraphSchemaError


@pytest.fixture
def doc(tmp_path: Path) -> dict:
    return json.loads(write_synthetic_graph(tmp_path / "g.json", SyntheticGraphSpec(n_links=50)).read_text())


def test_synthetic_graph_is_valid(doc: dict) -> None:
    validate_graph(doc)
    assert len(doc["links"]) == 50
    ids = {n["node_id"] for n in doc["nodes"]}
    assert all(link["source"] in ids and link["target"] in ids for link in doc["links"])


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (lambda d: d.pop("qParams"), r"^qParams: required field is missing"),
        (lambda d: d["metadata"].pop("scan"), r"^metadata\.scan: required field is missing"),
        (
            lambda d: d["metadata"]["prompt_tokens"].__setitem__(1, 7),
            r"^metadata\.prompt_tokens\[1\]: expected string, got 7",
        ),
        (
            lambda d: d["metadata"].__setitem__("feature_details", {"neuronpedia_source_set": 3}),
            r"^metadata\.feature_details\.neuronpedia_source_set",
        ),
        (lambda d: d["nodes"][3].__setitem__("ctx_idx", True), r"^nodes\[3\]\.ctx_idx: expected integer, got true"),
        (lambda d: d["nodes"][4].__setitem__("layer", 2.5), r"^nodes\[4\]\.layer: expected string or integer"),
        (lambda d: d["nodes"][5].pop("clerp"), r"^nodes\[5\]\.clerp: required field is missing"),
        (lambda d: d["nodes"][6].__setitem__("influence", "high"), r"^nodes\[6\]\.influence: expected number or null"),
        (lambda d: d["links"][9].__setitem__("weight", "1"), r'^links\[9\]\.weight: expected number, got "1"'),
        (lambda d: d["qParams"].__setitem__("pinnedIds", [1]), r"^qParams\.pinnedIds\[0\]: expected string"),
    ],
)
def test_first_offending_path_is_named(doc: dict, edit, path: str) -> None:
    edit(doc)
    with pytest.raises(GraphSchemaError, match=path):
        validate_graph(doc)


def test_integers_may_be_written_as_floats(doc: dict) -> None:
    doc["nodes"][0]["ctx_idx"] = 0.0  # JSON Schema: an integer is a number with no fraction
    doc["nodes"][0]["feature"] = None
    validate_graph(doc)
