"""Train sparse autoencoders for a causal LM at chosen (layer, module) hook points.

Modules:

- ``settings``   where caches live (``ATLAS_CACHE_DIR``) and other knobs of this package
- ``corpus``     the default corpus (registry packages) and any local text/jsonl/parquet; train/held-out split
- ``activations`` one forward pass per batch records every chosen hook point, streamed batch by batch
- ``sae``        the TopK SAE trainer (AuxK for dead features), its metrics and checkpoints
- ``spec``       what determines a trained atlas (``TrainSpec``, its hash names the cache entry), hook names
- ``job``        one job's prepared state: model, hook points, corpus split, the bank and its trainer
- ``phases``     training the bank (streamed forwards, then cached epochs) and the held-out pass
- ``checkpoint`` the resumable checkpoint (bank, optimiser, stream position)
- ``writer``     SAELens dirs, labels, ``atlas.toml``
- ``train``      the whole job in order, cached by spec: corpus → activations → SAEs → ``atlas.toml``
- ``feature_pages`` per-feature page data (density, quantile examples, logit lens); ``feature_pages_publish``
  its files, cache and the store onto the graph
- ``labels``     top-activating contexts and activation frequency per feature (stored on Feature nodes)
- ``demo``       ``atlas demo``: Neo4j, SmolLM2, corpus, train, ingest, labels, serve — cached
"""
