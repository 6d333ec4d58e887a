"""SAEs → normalised decoder rows → exact top-k matching → scores, categories, edges → Neo4j.

- ``decoders``  load, validate (NaN/inf, zero rows, d_in ≠ d_model) and L2-normalise decoder rows
- ``matching``  tiled exact inner-product top-k (FAISS CPU/GPU; torch and numpy baselines)
- ``scores``    top-1 scores s_res/s_att/s_mlp, categories, edge lists (pure numpy)
- ``pipeline``  ``ingest_atlas``: the online write path, idempotent and resumable
- ``bulk``      the offline path: CSVs for ``neo4j-admin database import`` into a fresh database

Depends on ``saes`` and ``queries`` only; never on ``atlas_api``.
"""
