"""API settings (env prefix ``ATLAS_API_``), built once at the entry point and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from atlas_api.keys import default_keys_file


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATLAS_API_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Origins allowed to call the API from a browser (dashboards), as a JSON list in the env. Empty: CORS closed.
    cors_origins: list[str] = Field(default_factory=list)
    # Keys and roles (docs/api.md "Keys and roles"): keys live hashed in keys_file, managed with `atlas keys`.
    # Keys travel as header `X-API-Key: <key>` or `Authorization: Bearer <key>`.
    keys_file: Path = Field(default_factory=default_keys_file)
    reads: Literal["open", "keyed"] = "open"
    # "open" lets anyone who reaches the port mutate; `atlas serve` refuses it on a non-loopback address
    # unless --allow-open-mutations is given.
    mutations: Literal["keyed", "open"] = "keyed"
    # Legacy single shared key: acts as a key with every role (prefer `atlas keys create`).
    api_key: str | None = None
    # Per-key token buckets (0 = off); anonymous callers are limited per client address when anon_* > 0.
    rate_limit_per_minute: int = Field(default=1_200, ge=0)
    anon_rate_limit_per_minute: int = Field(default=0, ge=0)
    steer_rate_limit_per_minute: int = Field(default=30, ge=0)
    # Steering runs at most steer_concurrency at once per process; steer_queue more wait up to
    # steer_queue_timeout_s; beyond that STEER_BUSY with a retry hint.
    steer_concurrency: int = Field(default=1, ge=1)
    steer_queue: int = Field(default=4, ge=0)
    steer_queue_timeout_s: float = Field(default=60.0, gt=0)
    # Largest request body accepted (bytes); larger ones get 413 before anything is parsed.
    max_body_bytes: int = Field(default=1_000_000, ge=1_024)
    # Schema introspection (__schema/__type) and GraphiQL; turn off in production if the schema is private.
    introspection: bool = True
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
    # One statement for the feature look-ups of every request in the same event-loop turn (atlas_api/coalesce.py).
    coalesce_lookups: bool = True
    # Known query texts (parsed and validated without errors before) skip strawberry's per-request pipeline and
    # plain-attribute objects complete in one step (atlas_api/execution.py); false: every request takes the full
    # pipeline (an escape hatch, and the benchmark's A/B).
    direct_execution: bool = True
    # Admission control (atlas_api.guard.Admission): requests executing at once (None = the pool size, so an admitted
    # request never waits for a connection), of which heavy ones (root fields' own costs ≥ heavy_query_cost: circuit,
    # path, featureOrigins, two lineages) at
    # most max_concurrent_heavy; the rest wait up to request_queue_timeout_s (at most max_queued_requests of them),
    # then OVERLOADED (503 + Retry-After).
    max_concurrent_requests: int | None = Field(default=None, ge=1)
    max_concurrent_heavy: int = Field(default=4, ge=1)
    heavy_query_cost: int = Field(default=100, ge=1)
    max_queued_requests: int = Field(default=1_000, ge=0)
    request_queue_timeout_s: float = Field(default=30.0, gt=0)
    # Steering off the API replicas: the URL of an `atlas steer-worker` (e.g. http://steer-worker:8100). Unset: the
    # steer mutation runs the model in this process (the default).
    steer_worker_url: str | None = None
    steer_worker_timeout_s: float = Field(default=180.0, gt=0)
