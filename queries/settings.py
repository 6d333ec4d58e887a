"""Neo4j connection settings, read from the environment as Neo4j's own tools name them.

Built once at an entry point and passed down (no module-level singleton).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The password the project's own local server (`atlas db start`) is initialised with.
LOCAL_DEFAULT_PASSWORD = "feature-atlas"


class Neo4jSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEO4J_", extra="ignore")

    uri: str = "bolt://127.0.0.1:7687"
    username: str = "neo4j"
    password: str = LOCAL_DEFAULT_PASSWORD
    database: str = "neo4j"
    # Server-side timeout applied to every transaction (seconds).
    query_timeout_s: float = Field(default=30.0, gt=0)
    # How long to keep retrying a connection before declaring the database unavailable.
    connect_timeout_s: float = Field(default=5.0, gt=0)
    # Read scale-out (queries/replicas.py): comma-separated bolt:// URIs of servers holding the same atlases.
    read_uris: str = ""

    @property
    def read_uri_list(self) -> list[str]:
        return [u.strip() for u in self.read_uris.split(",") if u.strip()]
