"""Interop with the field's tools: Neuronpedia exports and ids, circuit-tracer attribution graphs, semantic search,
neighbours on demand. Depends on ``queries`` (and ``saes`` for SAE files); heavy imports stay inside functions."""
