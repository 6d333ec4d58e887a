"""What an ingest is asked to do (:class:`IngestOptions`) and what it reports back (:class:`IngestReport`).

Shared by the online path (``ingest.pipeline``), the bulk export (``ingest.bulk``) and the Ray tasks
(``ingest.ray_matching``), so none of them imports another for its options.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.matchers import DEFAULT_MATCHERS
from ingest.matching import Backend
from ingest.prefilter import Prefilter
from ingest.scores import Thresholds
from ingest.streaming import DEFAULT_TILE_ROWS
from saes.controls import DEFAULT_NULL_ROWS
from saes.projections import OutputProjections

DEFAULT_K = 5
NODE_BATCH = 20_000
EDGE_BATCH = 50_000


@dataclass
class IngestOptions:
    k: int = DEFAULT_K
    thresholds: Thresholds = field(default_factory=Thresholds)
    backend: Backend = "faiss"
    prefilter: Prefilter = "auto"  # bf16 pre-filter for the CPU (ingest/prefilter.py); never changes results
    null_rows: int = DEFAULT_NULL_ROWS  # null samples per SAE pair (saes.controls); 0 = no null (not with a null rule)
    resume: bool = False
    # Edge matchers (ingest/matchers): cosine first (scores, categories), then any others, each writing its own
    # FLOWS_TO edges with ``method`` = its name. Parse user input with ingest.matchers.parse_matchers.
    matchers: tuple[str, ...] = DEFAULT_MATCHERS
    progress: bool = False
    node_batch: int = NODE_BATCH
    edge_batch: int = EDGE_BATCH
    # Match on a Ray cluster (ingest/ray_matching.py): its address, or "auto" for a local one; None = in this process.
    ray: str | None = None
    gpu: bool = False  # with ray: one GPU per matching task (an error when the cluster has none)
    ray_num_cpus: int | None = None  # with ray="auto": CPUs of the local cluster (None: all)
    # W_O per layer for attention SAEs on hook_z (steering.model.model_projections(manifest.model))
    projections: OutputProjections | None = None
    # Decoders validation read are kept for matching up to this size instead of being read again (ingest/decoders.py).
    decoder_cache_bytes: int = 1 << 30
    # A layer whose largest SAE pair's decoders (fp32) exceed this many bytes is matched by streaming tiles from the
    # files (ingest.layer_matching.match_layer_streamed) when its SAEs allow it; None: IngestSettings.match_memory_budget
    # (25% of RAM).
    memory_budget: int | None = None
    stream_tile_rows: int = DEFAULT_TILE_ROWS
    # Write layer L to Neo4j on a background thread while layer L+1 is matched (at most one layer waits, so memory
    # holds two layers' results; layers are still written in order, so resume is unchanged). False: one after the other.
    overlap_writes: bool = True


@dataclass
class IngestReport:
    atlas: str
    layers_written: list[int]
    layers_skipped: list[int]
    n_features: int
    n_edges: int
    match_s: float = 0.0
    write_s: float = 0.0
    nodes_written: int = 0
    edges_written: int = 0
    node_write_s: float = 0.0
    edge_write_s: float = 0.0
    streamed_layers: list[int] = field(default_factory=list)  # matched by streaming tiles (over the memory budget)
    # Time the main thread waited for a background write (overlap_writes): what overlapping did not hide.
    write_wait_s: float = 0.0
