"""Settings of the training package (env prefix ``ATLAS_``), built once at the entry point and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TrainingSettings(BaseSettings):
    """Where downloads, corpora, activations caches and trained SAEs live.

    ``ATLAS_CACHE_DIR`` (default ``~/.cache/feature-atlas``) is shared with the rest of the project; this
    package only writes below ``corpus/`` and ``atlases/`` in it.
    """

    model_config = SettingsConfigDict(env_prefix="ATLAS_", extra="ignore")

    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "feature-atlas")

    @property
    def corpus_dir(self) -> Path:
        return self.cache_dir / "corpus"

    @property
    def atlases_dir(self) -> Path:
        return self.cache_dir / "atlases"
