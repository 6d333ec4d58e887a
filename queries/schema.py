"""The graph contract (docs/architecture.md), in one place.

Nodes
- ``(:Atlas {name, model, d_model, n_layers, layers, complete, created_at, updated_at, manifest_sha256})``
  ``complete`` is true only once every SAE, feature and edge of the atlas is written: readers that need
  a whole atlas check it.
- ``(:SAE {key, atlas, layer, module, d_sae, d_in, source, hook_name, architecture, complete,
  explained_variance?, l0?, dead_fraction?, density_edges?, density_counts?, density_dead?})`` with
  ``(:Atlas)-[:HAS_SAE]->(:SAE)``; ``density_*`` is the histogram of log10 firing density over its features.
  The Atlas node may carry ``entry_points``: JSON of its largest lineages (queries.feature_pages).
- ``(:Feature {uid, atlas, layer, module, index, d_sae, decoder_norm, s_res?, s_att?, s_mlp?, category?,
  label?, frequency?, top_contexts?, page?, steer_kl?, steer_tokens?, steer_token_gains?, steer_bench_*?})``;
  ``steer_*`` is the steerability screen and the steering benchmark's per-seed figures (queries.steerability). ``page`` is the feature's page data as one JSON string
  (density, activation histogram, top and quantile examples with per-token activations, logit lens;
  written once after training by training.feature_pages, read only by the API's ``Feature.page``). ``s_*`` are the top-1 cosine scores of a ``res`` feature
  against its predecessors ``res(L-1)``, ``att(L)``, ``mlp(L)`` (absent where that SAE is absent);
  ``category`` is absent where ``s_res`` is (no ``res(L-1)`` SAE: the category is undefined there).
- ``(:IngestRun {id, atlas, started_at, finished_at, status, k, ...})`` ``-[:BUILT]->(:Atlas)``.
- ``(:SteeringRun {id, atlas, created_at, ...})`` ``-[:USED {coefficient}]->(:Feature)``.

Relationships
- ``(:Feature)-[:FLOWS_TO {similarity, target_rank?, source_rank?, method?}]->(:Feature)`` always from the
  earlier module to the later one: ``res(L-1)→res(L)``, ``att(L)→res(L)``, ``mlp(L)→res(L)``.
  ``similarity`` is the cosine of the two unit-normalised decoder rows. ``target_rank`` (0-based) is the
  edge's rank among the target's candidates from that source module (backward matching);
  ``source_rank`` its rank among the source's successors (forward matching, res→res only).
- ``method?, score?, distance?`` on FLOWS_TO (issue #28): which matcher found the edge (``ingest.matchers``;
  absent = ``cosine``, so readers use ``coalesce(r.method, 'cosine')``), that matcher's own score (absent for
  cosine, whose score is ``similarity``; ``similarity`` stays the decoder cosine on every edge so matchers compare
  on one scale) and, for res→res edges across more than one layer, the layer distance. A pair found by two
  matchers is two edges. ``method`` is a property, not one relationship type per matcher: every reader keeps
  one pattern (``-[:FLOWS_TO]->``) and filters or counts matchers in the same traversal (agreement = count of
  distinct methods between the same two features); a type per matcher would multiply each query by the
  matcher list and make a new matcher a schema change. The cost is a property filter on expanded edges,
  which the anchored traversals do anyway (there is no FLOWS_TO property index, see below).
- ``(:Atlas {matchers?})``: the matchers of the ingest (absent = cosine alone); ``--resume`` needs the same.
"""

from __future__ import annotations

from typing import LiteralString

from queries.db import Graph
from queries.domain import CATEGORIES, NO_CATEGORY

__all__ = ["CATEGORIES", "FEATURE", "FLOWS_TO", "NO_CATEGORY", "SCHEMA_STATEMENTS", "ensure_schema"]

FEATURE = "Feature"
FLOWS_TO = "FLOWS_TO"

# Constraints and indexes are created before any write (idempotent: IF NOT EXISTS).
SCHEMA_STATEMENTS: tuple[LiteralString, ...] = (
    "CREATE CONSTRAINT feature_uid IF NOT EXISTS FOR (f:Feature) REQUIRE f.uid IS UNIQUE",
    "CREATE CONSTRAINT atlas_name IF NOT EXISTS FOR (a:Atlas) REQUIRE a.name IS UNIQUE",
    "CREATE CONSTRAINT sae_key IF NOT EXISTS FOR (s:SAE) REQUIRE s.key IS UNIQUE",
    "CREATE CONSTRAINT ingest_run_id IF NOT EXISTS FOR (r:IngestRun) REQUIRE r.id IS UNIQUE",
    "CREATE CONSTRAINT steering_run_id IF NOT EXISTS FOR (r:SteeringRun) REQUIRE r.id IS UNIQUE",
    "CREATE INDEX feature_atlas_layer_module IF NOT EXISTS FOR (f:Feature) ON (f.atlas, f.layer, f.module)",
    "CREATE INDEX feature_category IF NOT EXISTS FOR (f:Feature) ON (f.category)",
    # Dropped: every FLOWS_TO read reaches its edges from an anchored Feature, so a relationship property
    # index on similarity served no query and cost every edge write an index entry (~15% of rel/s).
    "DROP INDEX flows_to_similarity IF EXISTS",
    "CREATE FULLTEXT INDEX feature_text IF NOT EXISTS FOR (f:Feature) ON EACH [f.label, f.top_contexts]",
)


def ensure_schema(graph: Graph) -> None:
    """Create every constraint and index (no-op when they exist) and wait until they are online."""
    for statement in SCHEMA_STATEMENTS:
        graph.write(statement)
    graph.write("CALL db.awaitIndexes(300)", timeout=310)
