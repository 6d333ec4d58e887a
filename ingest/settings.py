"""Settings of the ingest package (env prefix ``ATLAS_``), built once at the entry point and passed down."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATLAS_", extra="ignore")

    # ATLAS_MATCH_PREFILTER: auto | bf16 | off, used where no explicit choice is given (docs/ingest.md).
    # A plain string, checked where it is used, so a bad value is one AtlasError rather than a pydantic trace.
    match_prefilter: str = "auto"
