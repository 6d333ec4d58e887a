"""Where the project's caches live: ``$ATLAS_CACHE_DIR`` (default ``~/.cache/feature-atlas``), read one way.

Shared by every package (SmolLM2's safetensors copy under ``models/``, corpora under ``corpus/``, trained
atlases under ``atlases/``), so it lives in the small package every runtime package depends on.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CacheSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATLAS_", extra="ignore")

    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "feature-atlas")

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _default_when_empty(cls, v: object) -> object:
        # ATLAS_CACHE_DIR="" means "not set", not the current directory.
        return Path.home() / ".cache" / "feature-atlas" if v in ("", None) else v

    @field_validator("cache_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @property
    def corpus_dir(self) -> Path:
        return self.cache_dir / "corpus"

    @property
    def atlases_dir(self) -> Path:
        """Where ``atlas train`` / ``atlas demo`` write atlases: ``{atlases_dir}/{name}/atlas.toml``."""
        return self.cache_dir / "atlases"

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"
