"""SAEs → normalised decoder rows → exact top-k matching → scores, categories, edges → Neo4j.

- ``decoders``  load, validate (NaN/inf, zero rows, d_in ≠ d_model) and L2-normalise decoder rows
- ``matching``  tiled exact inner-product top-k (FAISS CPU/GPU; torch and numpy baselines)
- ``scores``    top-1 scores s_res/s_att/s_mlp, categories, edge lists (pure numpy)
- ``controls``  the null of each SAE pair, the category cuts, the seed ceilings (pure numpy)
- ``layer_matching``  one layer's matching, and ``match_layers``: the one loop over layers (Neo4j-free)
- ``options``   ``IngestOptions`` / ``IngestReport``
- ``writer``    writing one matched layer to Neo4j, overlapped with matching the next
- ``pipeline``  ``ingest_atlas``: the online write path, idempotent and resumable; ``recategorize``
- ``bulk``      the offline path: CSVs for ``neo4j-admin database import`` into a fresh database

Depends on ``saes`` and ``queries`` only; never on ``atlas_api``.
"""
