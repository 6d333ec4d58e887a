"""Settings of the training package (env prefix ``ATLAS_``), built once at the entry point and passed down."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from saes.cache import CacheSettings


class TrainingSettings(CacheSettings):
    """Where downloads, corpora, activations caches and trained SAEs live.

    ``ATLAS_CACHE_DIR`` (default ``~/.cache/feature-atlas``) is shared with the rest of the project; this
    package only writes below ``corpus/`` and ``atlases/`` in it.
    """

    model_config = SettingsConfigDict(env_prefix="ATLAS_", extra="ignore")
