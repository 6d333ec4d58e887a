"""API settings (env prefix ``ATLAS_API_``), built once at the entry point and passed down."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATLAS_API_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Origins allowed to call the API from a browser (dashboards); comma-separated in the env as JSON list.
    cors_origins: list[str] = Field(default_factory=list)
    # When set, mutations (steer, setLabel) need header `X-API-Key: <key>` or `Authorization: Bearer <key>`.
    api_key: str | None = None
    graphiql: bool = True
    # Limits (per request).
    max_query_depth: int = Field(default=10, ge=1)
    max_aliases: int = Field(default=20, ge=1)
    max_tokens: int = Field(default=2_000, ge=10)
    max_complexity: int = Field(default=20_000, ge=1)
    max_page_size: int = Field(default=1_000, ge=1)
    default_page_size: int = Field(default=50, ge=1)
    max_flow_nodes: int = Field(default=5_000, ge=1)
    max_circuit_seeds: int = Field(default=64, ge=2)
    max_circuit_depth: int = Field(default=30, ge=1)
    # Server-side timeout of every Neo4j statement the API runs (seconds).
    query_timeout_s: float = Field(default=10.0, gt=0)
    neo4j_pool_size: int = Field(default=50, ge=1)
    # Steering off the API replicas: the URL of an `atlas steer-worker` (e.g. http://steer-worker:8100). Unset: the
    # steer mutation runs the model in this process (the default).
    steer_worker_url: str | None = None
    steer_worker_timeout_s: float = Field(default=180.0, gt=0)
