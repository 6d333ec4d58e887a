"""API keys with roles, stored hashed in a 0600 JSON file (``ApiSettings.keys_file``).

A key is ``fa_<id>_<secret>``: ``id`` (8 hex digits) is public and names the key in lists, logs and rate
limits; the file keeps only ``sha256(key)``. The secrets are 256-bit random, so a fast hash is enough (a
slow KDF would defend guessable passwords, which these are not) and costs nothing per request.

Why a file and not Neo4j nodes: checking a key must not cost a database round trip on every request (the
API's reads take ~1 ms), keys must keep working while Neo4j restarts (a clean UNAUTHENTICATED instead of
DATABASE_UNAVAILABLE), and credentials must stay out of what analysts can read with ``atlas cypher`` and out
of backups and exported atlases. Several API processes on one host share the file; the server re-reads it
when it changes (at most once a second), so ``atlas keys revoke`` takes effect without a restart.

Roles: ``read`` (queries), ``label`` (setLabel), ``steer`` (steer), ``admin`` (everything, including
mutations added later that no narrower role names). Every key may read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from queries.errors import InvalidInput, NotFound

_PREFIX = "fa_"


class Role(str, enum.Enum):
    READ = "read"
    LABEL = "label"
    STEER = "steer"
    ADMIN = "admin"


# The role each mutation needs; a mutation not listed needs ADMIN.
MUTATION_ROLES: dict[str, Role] = {"setLabel": Role.LABEL, "steer": Role.STEER}


def parse_roles(names: list[str]) -> frozenset[Role]:
    out = set()
    for n in names:
        for part in n.split(","):
            part = part.strip().lower()
            if not part:
                continue
            try:
                out.add(Role(part))
            except ValueError:
                raise InvalidInput(f"unknown role {part!r} (valid: {', '.join(r.value for r in Role)})") from None
    if not out:
        raise InvalidInput(f"give at least one role with --role (valid: {', '.join(r.value for r in Role)})")
    return frozenset(out)


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    roles: frozenset[Role]
    sha256: str = field(repr=False)
    created: str = ""
    revoked: str | None = None

    def allows(self, role: Role) -> bool:
        return self.revoked is None and (Role.ADMIN in self.roles or role is Role.READ or role in self.roles)

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["roles"] = sorted(r.value for r in self.roles)
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> ApiKey:
        revoked = d.get("revoked")
        return ApiKey(
            id=str(d["id"]),
            name=str(d["name"]),
            roles=frozenset(Role(r) for r in d["roles"]),
            sha256=str(d["sha256"]),
            created=str(d.get("created") or ""),
            revoked=str(revoked) if revoked else None,
        )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def default_keys_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "feature-atlas" / "api-keys.json"


class KeyStore:
    """The keys file: create, list, revoke (CLI) and verify (server, re-reading the file when it changes)."""

    def __init__(self, path: Path, *, recheck_s: float = 1.0) -> None:
        self.path = Path(path).expanduser()
        self._recheck_s = recheck_s
        self._keys: dict[str, ApiKey] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0

    # -- reading -------------------------------------------------------------------------------
    def _load(self) -> dict[str, ApiKey]:
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return {}
        try:
            return {k["id"]: ApiKey.from_json(k) for k in json.loads(raw)["keys"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(
                f"the API keys file {self.path} is damaged ({exc}); restore it or move it away and create new keys"
            ) from None

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self._recheck_s and self._stamp is not None:
            return
        self._checked = now
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp != self._stamp:
            self._keys = self._load()
            self._stamp = stamp

    def all_keys(self) -> list[ApiKey]:
        self._refresh()
        return sorted(self._keys.values(), key=lambda k: (k.created, k.id))

    def active(self) -> list[ApiKey]:
        return [k for k in self.all_keys() if k.revoked is None]

    def verify(self, token: str) -> ApiKey | None:
        """The active key ``token`` belongs to, or None (constant-time comparison of the hashes)."""
        if not token.startswith(_PREFIX):
            return None
        kid, _, secret = token[len(_PREFIX) :].partition("_")
        if not secret:
            return None
        self._refresh()
        key = self._keys.get(kid)
        if key is None or key.revoked is not None:
            return None
        return key if hmac.compare_digest(_digest(token), key.sha256) else None

    # -- writing (CLI) -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, ApiKey]]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            keys = self._load()
            yield keys
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.unlink(missing_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"version": 1, "keys": [k.to_json() for k in keys.values()]}, f, indent=1)
            tmp.replace(self.path)
            self._stamp = None

    def create(self, name: str, roles: frozenset[Role]) -> tuple[ApiKey, str]:
        """A new key: returns it and the token, which is shown once and never stored."""
        if not name.strip() or len(name) > 100:
            raise InvalidInput(f"key name {name!r} must be 1-100 characters (e.g. the team or service using it)")
        with self._locked() as keys:
            kid = secrets.token_hex(4)
            while kid in keys:
                kid = secrets.token_hex(4)
            token = f"{_PREFIX}{kid}_{secrets.token_urlsafe(32)}"
            key = ApiKey(
                id=kid,
                name=name.strip(),
                roles=roles,
                sha256=_digest(token),
                created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            )
            keys[kid] = key
        return key, token

    def revoke(self, kid_or_name: str) -> list[ApiKey]:
        with self._locked() as keys:
            hits = [k for k in keys.values() if k.revoked is None and kid_or_name in (k.id, k.name)]
            if not hits:
                raise NotFound(f"no active API key with id or name {kid_or_name!r} (see `atlas keys list`)")
            now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            for k in hits:
                keys[k.id] = ApiKey(
                    id=k.id, name=k.name, roles=k.roles, sha256=k.sha256, created=k.created, revoked=now
                )
        return hits
