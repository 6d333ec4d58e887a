"""Neo4j connection settings, read from the environment as Neo4j's own tools name them.

Built once at an entry point and passed down (no module-level singleton).

Password: ``NEO4J_PASSWORD`` when set. Otherwise, for a loopback URI, the password of the project's own
server (``atlas db start``), which generates a random one on first start and keeps it in
``$ATLAS_NEO4J_HOME/password`` (mode 0600). Every start also records it per Bolt port
(:func:`port_password_file`), so a client that knows only the URI of a server started elsewhere (a test's
private server in a temporary home, a subprocess) finds it too. A home initialised before password files
existed (data, no password file) still uses the old constant :data:`LEGACY_LOCAL_PASSWORD`.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The password local servers were initialised with before they got a generated one (and the Docker compose file's).
LEGACY_LOCAL_PASSWORD = "feature-atlas"
PASSWORD_FILE = "password"
DEFAULT_LOCAL_HOME = Path(__file__).resolve().parent.parent / ".atlas" / "neo4j"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def local_home() -> Path:
    """The project's own server's home: ``ATLAS_NEO4J_HOME`` or ``<repo>/.atlas/neo4j``."""
    return Path(os.environ.get("ATLAS_NEO4J_HOME") or DEFAULT_LOCAL_HOME).expanduser()


def port_password_file(port: int) -> Path:
    """Where ``atlas db start`` records the password of the local server it started on ``port`` (0600, dir 0700)."""
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "feature-atlas" / "neo4j" / f"bolt-{port}.password"


def local_password(home: Path) -> str | None:
    """The password of the local server at ``home``: its password file; the legacy constant for a home
    initialised before password files existed; None for a server never started."""
    try:
        return (home / PASSWORD_FILE).read_text().strip()
    except FileNotFoundError:
        pass
    return LEGACY_LOCAL_PASSWORD if (home / "data" / "dbms").exists() else None


class Neo4jSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEO4J_", extra="ignore")

    uri: str = "bolt://127.0.0.1:7687"
    username: str = "neo4j"
    # None: found from the local server's home (see the module docstring); never sent to a non-loopback URI.
    password: str | None = None
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

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password or "")

    @model_validator(mode="after")
    def _local_password(self) -> Neo4jSettings:
        url = urlparse(self.uri)
        if self.password is None and (url.hostname or "") in _LOOPBACK:
            try:
                self.password = port_password_file(url.port or 7687).read_text().strip()
            except (FileNotFoundError, ValueError):
                self.password = local_password(local_home())
        return self
