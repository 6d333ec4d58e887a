"""API keys file, rate limiter, steering gate, `atlas serve` exposure check, Neo4j password lookup (no services)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from atlas_api.guard import RateLimiter, SteerGate
from atlas_api.keys import KeyStore, Role, parse_roles
from atlas_api.settings import ApiSettings
from atlas_cli.commands.serve import check_exposure
from queries.errors import InvalidInput, NotFound, RateLimited, SteerBusy
from queries.settings import LEGACY_LOCAL_PASSWORD, Neo4jSettings, port_password_file


def test_keys_are_stored_hashed_0600_and_verified(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "cfg" / "keys.json", recheck_s=0)
    key, token = store.create("dash", parse_roles(["read,label"]))
    text = store.path.read_text()
    assert token not in text and token.split("_")[-1] not in text and key.sha256 in text
    assert store.path.stat().st_mode & 0o777 == 0o600 and store.path.parent.stat().st_mode & 0o777 == 0o700
    assert (
        store.verify(token) == key and key.allows(Role.LABEL) and key.allows(Role.READ) and not key.allows(Role.STEER)
    )
    assert store.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert store.verify("fa_" + key.id + "_") is None and store.verify("nonsense") is None
    admin, admin_token = store.create("ops", frozenset({Role.ADMIN}))
    assert (
        admin.allows(Role.STEER) and KeyStore(store.path).verify(admin_token) == admin
    )  # another process reads the same file
    assert [k.name for k in store.revoke("dash")] == ["dash"]
    assert store.verify(token) is None and [k.name for k in store.active()] == ["ops"]
    assert json.loads(store.path.read_text())["keys"][0]["revoked"]
    with pytest.raises(NotFound, match="dash"):
        store.revoke("dash")


def test_bad_roles_names_and_damaged_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown role 'write'"):
        parse_roles(["read", "write"])
    with pytest.raises(InvalidInput, match="at least one role"):
        parse_roles([""])
    store = KeyStore(tmp_path / "keys.json")
    with pytest.raises(InvalidInput, match="1-100 characters"):
        store.create(" ", frozenset({Role.READ}))
    store.path.write_text("{not json")
    with pytest.raises(InvalidInput, match="damaged"):
        store.all_keys()


def test_rate_limiter_bursts_then_refuses_with_retry_hint() -> None:
    now = [1000.0]  # a fake clock: the outcome must not depend on how fast this machine runs the loop
    lim = RateLimiter(60, clock=lambda: now[0])  # 1/s, bursts of 10
    for _ in range(10):
        lim.check("key a")
    with pytest.raises(RateLimited, match="retry after") as info:
        lim.check("key a")
    assert info.value.retry_after == 2  # 1 s to the next token, rounded up with a margin
    now[0] += 0.5  # half a token back: still refused, the hint shrinks with it
    with pytest.raises(RateLimited) as info:
        lim.check("key a")
    assert info.value.retry_after == 1
    now[0] += 1.0  # a whole token: one more request, not two
    lim.check("key a")
    with pytest.raises(RateLimited):
        lim.check("key a")
    lim.check("key b")  # per principal
    now[0] += 60.0  # refills up to the burst, not beyond
    for _ in range(10):
        lim.check("key a")
    with pytest.raises(RateLimited):
        lim.check("key a")
    RateLimiter(0).check("x")  # 0 = off


def test_steer_gate_caps_concurrency_queues_then_refuses() -> None:
    async def run() -> list[str]:
        gate = SteerGate(concurrency=1, queue=1, timeout_s=5)
        out: list[str] = []

        async def one(i: int) -> None:
            try:
                t = await gate.acquire()
            except SteerBusy as exc:
                out.append(f"busy {exc.retry_after >= 1}")
                return
            assert gate.running == 1
            await asyncio.sleep(0.05)
            gate.release(t)
            out.append("ran")

        await asyncio.gather(*(one(i) for i in range(4)))
        assert gate.running == gate.waiting == 0
        await one(5)  # free again
        short = SteerGate(concurrency=1, queue=5, timeout_s=0.05)
        t = await short.acquire()
        with pytest.raises(SteerBusy, match="stayed busy"):
            await short.acquire()
        short.release(t)
        return out

    assert sorted(asyncio.run(run())) == ["busy True", "busy True", "ran", "ran", "ran"]


def test_serve_refuses_open_mutations_beyond_loopback(tmp_path: Path) -> None:
    keys = tmp_path / "k.json"
    with pytest.raises(InvalidInput, match="refusing to bind 0.0.0.0"):
        check_exposure(ApiSettings(host="0.0.0.0", mutations="open", keys_file=keys), False)
    check_exposure(ApiSettings(host="0.0.0.0", mutations="open", keys_file=keys), True)
    check_exposure(ApiSettings(host="127.0.0.1", mutations="open", keys_file=keys), False)
    check_exposure(ApiSettings(host="::1", mutations="open", keys_file=keys), False)
    check_exposure(ApiSettings(host="0.0.0.0", keys_file=keys), False)  # keyed: fine (warns: no keys yet)


def test_neo4j_password_comes_from_the_local_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEO4J_PASSWORD", raising=False)
    monkeypatch.setenv("ATLAS_NEO4J_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert Neo4jSettings(uri="bolt://127.0.0.1:7999").password is None  # never started
    (tmp_path / "data" / "dbms").mkdir(parents=True)
    assert (
        Neo4jSettings(uri="bolt://127.0.0.1:7999").password == LEGACY_LOCAL_PASSWORD
    )  # initialised before password files
    (tmp_path / "password").write_text("s3cret-from-file\n")
    assert Neo4jSettings(uri="bolt://localhost:7999").password == "s3cret-from-file"
    assert Neo4jSettings(uri="neo4j+s://db.example.com:7687").password is None  # never sent to a remote server
    port_password_file(7998).parent.mkdir(parents=True)
    port_password_file(7998).write_text("per-port\n")  # what `atlas db start` records for a server started elsewhere
    assert Neo4jSettings(uri="bolt://127.0.0.1:7998").password == "per-port"
    assert Neo4jSettings(uri="bolt://127.0.0.1:7999").password == "s3cret-from-file"
    monkeypatch.setenv("NEO4J_PASSWORD", "given")
    assert Neo4jSettings(uri="bolt://127.0.0.1:7999").password == "given"
