"""Neuronpedia identities of SAEs and features, and the statements that read/write them.

Neuronpedia names an SAE ``{model}/{source}``, e.g. ``gemma-2-2b/20-gemmascope-res-16k``: ``model`` is
its model id (what circuit-tracer's ``metadata.scan`` holds), ``source`` is ``{layer}-{set}`` and the set
(``gemmascope-res-16k``) groups the SAEs of one family across layers. A feature's page is
``https://www.neuronpedia.org/{model}/{source}/{index}``. The SAELens registry carries this id per SAE
(``neuronpedia`` in ``pretrained_saes.yaml``); ingest keeps it on the ``SAE`` node as ``neuronpedia_id``.

SAEs without such an id (our own trained or planted SAEs) still get a stable *export* identity so
that an atlas written with ``atlas export --format neuronpedia`` reads back with ``atlas labels import``:
model = the slug of the atlas's model name, source = ``{layer}-{atlas}-{module}``
(:func:`effective_source`). Only real ids produce ``neuronpediaUrl``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, LiteralString

from queries.errors import InvalidInput

NEURONPEDIA_BASE = "https://www.neuronpedia.org"
_ID_RE = re.compile(r"^(?P<model>[A-Za-z0-9._-]+)/(?P<layer>\d+)-(?P<set>[A-Za-z0-9._-]+)$")


@dataclass(frozen=True)
class NeuronpediaSource:
    """One Neuronpedia source: ``model`` id, ``layer`` and ``set`` (source id = ``{layer}-{set}``)."""

    model: str
    layer: int
    set: str

    @property
    def source(self) -> str:
        return f"{self.layer}-{self.set}"

    @property
    def id(self) -> str:
        return f"{self.model}/{self.source}"

    def feature_url(self, index: int) -> str:
        return f"{NEURONPEDIA_BASE}/{self.model}/{self.source}/{index}"


def parse_neuronpedia_id(text: str) -> NeuronpediaSource:
    """``gemma-2-2b/20-gemmascope-res-16k`` → NeuronpediaSource; InvalidInput naming the form otherwise."""
    m = _ID_RE.match((text or "").strip())
    if not m:
        raise InvalidInput(
            f"Neuronpedia id {text!r} is not valid (expected '{{model}}/{{layer}}-{{set}}', e.g. 'gemma-2-2b/20-gemmascope-res-16k')"
        )
    return NeuronpediaSource(m["model"], int(m["layer"]), m["set"])


def model_slug(model: str | None, fallback: str) -> str:
    """A Neuronpedia-style model id from a model name: ``HuggingFaceTB/SmolLM2-135M-Instruct`` → ``smollm2-135m-instruct``."""
    base = (model or "").rstrip("/").rsplit("/", 1)[-1].lower()
    slug = re.sub(r"[^a-z0-9._-]+", "-", base).strip("-")
    return slug or fallback


def effective_source(sae: dict[str, Any], atlas_model: str | None) -> NeuronpediaSource:
    """The SAE's Neuronpedia source: its stored ``neuronpedia_id``, else the export identity (module doc)."""
    if sae.get("neuronpedia_id"):
        return parse_neuronpedia_id(sae["neuronpedia_id"])
    return NeuronpediaSource(
        model_slug(atlas_model, sae["atlas"]), int(sae["layer"]), f"{sae['atlas']}-{sae['module']}"
    )


def cantor(layer: int, index: int) -> int:
    """Cantor pairing of (layer, index): the integer Neuronpedia's graph JSON puts in a feature node's ``feature``."""
    s = layer + index
    return s * (s + 1) // 2 + index


# -- statements ------------------------------------------------------------------------------------
# Every SAE of the given atlases (all atlases when $atlases is null) with what identifies it on Neuronpedia.
SAE_SOURCES: LiteralString = (
    "MATCH (a:Atlas)-[:HAS_SAE]->(s:SAE) WHERE $atlases IS NULL OR a.name IN $atlases "
    "RETURN s.key AS key, a.name AS atlas, a.model AS atlas_model, s.layer AS layer, s.module AS module, "
    "s.d_sae AS d_sae, s.neuronpedia_id AS neuronpedia_id, s.hook_name AS hook_name "
    "ORDER BY atlas, layer, module"
)

# Neuronpedia ids by SAE key (the API's DataLoader batches on this).
NEURONPEDIA_IDS: LiteralString = (
    "UNWIND $keys AS key MATCH (s:SAE {key: key}) RETURN key, s.neuronpedia_id AS neuronpedia_id"
)

# Features of one SAE in index order, from $after (exclusive), $limit at a time (keyset paging).
SAE_FEATURE_PAGE: LiteralString = (
    "MATCH (f:Feature {atlas: $atlas, layer: $layer, module: $module}) WHERE f.index > $after "
    "RETURN f.index AS index, f.label AS label, f.frequency AS frequency, f.max_activation AS max_activation, "
    "f.label_source AS label_source "
    "ORDER BY f.index LIMIT $limit"
)

# rows: [{uid, label, source}] — imported explanations become the feature's label; returns how many features exist.
SET_IMPORTED_LABELS: LiteralString = (
    "UNWIND $rows AS row MATCH (f:Feature {uid: row.uid}) "
    "SET f.label = row.label, f.label_source = row.source "
    "RETURN count(f) AS n"
)
