"""Train sparse autoencoders for a causal LM at chosen (layer, module) hook points.

Modules:

- ``settings``   where caches live (``ATLAS_CACHE_DIR``) and other knobs of this package
- ``corpus``     the default corpus (registry packages) and any local text/jsonl/parquet; train/held-out split
- ``activations`` one forward pass per batch records every chosen hook point, streamed batch by batch
- ``sae``        the TopK SAE trainer (AuxK for dead features), its metrics and checkpoints
- ``train``      the whole job: corpus → activations → SAEs (SAELens format) → ``atlas.toml``
- ``labels``     top-activating contexts and activation frequency per feature (stored on Feature nodes)
- ``demo``       ``atlas demo``: Neo4j, SmolLM2, corpus, train, ingest, labels, serve — cached
"""
