"""SAE inputs of Feature Atlas: the ``atlas.toml`` manifest and the SAE sources it names.

- ``manifest``        ``AtlasManifest`` / ``SAEEntry`` / ``load_manifest`` (validated, clear errors)
- ``sources``         ``SAEWeights`` (numpy) and ``load_sae(entry, base_dir)`` for every source kind
- ``saelens_format``  read and write SAELens-format directories (cfg.json + sae_weights.safetensors)
- ``synthetic``       random SAEs and planted atlases whose true lineage and categories are known

Depends on ``queries`` (errors, ids), numpy and safetensors; sae_lens and torch are imported lazily.
"""
