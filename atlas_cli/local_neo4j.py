"""The project's own Neo4j server: assembled from Maven Central, started with plain ``java``.

No Docker engine or Neo4j download site is reachable on our machines, so ``deploy/neo4j/pom.xml``
pulls Neo4j Community 5.26 LTS (``org.neo4j:neo4j`` carries Bolt) into ``deploy/neo4j/lib`` and we
run ``org.neo4j.server.CommunityEntryPoint`` ourselves. State (config, data, logs, pid) lives under
``LocalNeo4jSettings.home`` so several servers can run side by side on different ports.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from queries.errors import AtlasError, DatabaseUnavailable
from queries.settings import DEFAULT_LOCAL_HOME, PASSWORD_FILE, local_password, port_password_file

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY_DIR = REPO_ROOT / "deploy" / "neo4j"
ENTRY_POINT = "org.neo4j.server.CommunityEntryPoint"
ADMIN_TOOL = "org.neo4j.cli.AdminTool"


class LocalNeo4jSettings(BaseSettings):
    """Where and how the local server runs (env prefix ``ATLAS_NEO4J_``)."""

    model_config = SettingsConfigDict(env_prefix="ATLAS_NEO4J_", extra="ignore")

    home: Path = DEFAULT_LOCAL_HOME
    listen_address: str = "127.0.0.1"
    bolt_port: int = Field(default=7687, ge=1, le=65535)
    heap: str = "1g"
    pagecache: str = "1g"
    # Serve every database read-only (a copy for analysts: Community has no roles; docs/api.md).
    read_only: bool = False
    # None: the home's password file (generated on first start); set it to choose the initial password.
    password: str | None = None
    start_timeout_s: float = 180.0
    stop_timeout_s: float = 90.0

    @model_validator(mode="after")
    def _home_password(self) -> LocalNeo4jSettings:
        if self.password is None:
            self.password = local_password(self.home)
        return self

    @property
    def password_file(self) -> Path:
        return self.home / PASSWORD_FILE

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def pid_file(self) -> Path:
        return self.home / "neo4j.pid"

    @property
    def bolt_uri(self) -> str:
        return f"bolt://{self.listen_address}:{self.bolt_port}"


@dataclass
class ServerStatus:
    running: bool
    pid: int | None
    bolt_uri: str
    home: Path

    def describe(self) -> str:
        if self.running:
            return f"Neo4j is running (pid {self.pid}) at {self.bolt_uri}, home {self.home}"
        return f"Neo4j is not running (home {self.home}); start it with `atlas db start`"


def lib_dir() -> Path:
    return DEPLOY_DIR / "lib"


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate and candidate.exists():
        return str(candidate)
    found = shutil.which("java")
    if not found:
        raise AtlasError("java was not found (install a JDK 17 or 21, or set JAVA_HOME)")
    return found


def assemble(force: bool = False) -> Path:
    """Download the Neo4j jars with Maven into deploy/neo4j/lib (once; cached in ~/.m2 as well)."""
    lib = lib_dir()
    marker = lib / ".complete"
    if marker.exists() and not force:
        return lib
    mvn = shutil.which("mvn")
    if not mvn:
        raise AtlasError("mvn (Apache Maven) was not found; install it (apt-get install maven) to assemble Neo4j")
    log.info("assembling Neo4j from Maven Central into %s", lib)
    tmp = lib.with_name("lib.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    proc = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(DEPLOY_DIR / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise AtlasError(
            f"Maven could not assemble Neo4j (exit {proc.returncode}): {(proc.stdout + proc.stderr).strip()[-800:]}"
        )
    shutil.rmtree(lib, ignore_errors=True)
    tmp.rename(lib)
    marker.touch()
    return lib


def _write_config(s: LocalNeo4jSettings) -> None:
    template = string.Template((DEPLOY_DIR / "neo4j.conf.template").read_text())
    s.conf_dir.mkdir(parents=True, exist_ok=True)
    for d in (s.data_dir, s.logs_dir, s.home / "import"):
        d.mkdir(parents=True, exist_ok=True)
    (s.conf_dir / "neo4j.conf").write_text(
        template.substitute(
            listen_address=s.listen_address,
            bolt_port=s.bolt_port,
            data_dir=s.data_dir,
            logs_dir=s.logs_dir,
            import_dir=s.home / "import",
            heap=s.heap,
            pagecache=s.pagecache,
        )
        + ("server.databases.default_to_read_only=true\n" if s.read_only else "")
    )


def _write_password_file(path: Path, password: str) -> None:
    """Write the password readable by its owner only (0600 from creation, replaced atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    tmp.replace(path)


def _initialise_auth(s: LocalNeo4jSettings) -> None:
    """A fresh home's password: random unless the user chose one (ATLAS_NEO4J_PASSWORD), kept in the home (0600)."""
    password = s.password or secrets.token_urlsafe(24)
    proc = admin(s, "dbms", "set-initial-password", password)
    if proc.returncode != 0:
        raise AtlasError(f"could not set Neo4j's initial password: {(proc.stdout + proc.stderr).strip()[-500:]}")
    _write_password_file(s.password_file, password)
    s.password = password


def _env(s: LocalNeo4jSettings) -> dict[str, str]:
    return {**os.environ, "NEO4J_HOME": str(s.home), "NEO4J_CONF": str(s.conf_dir)}


def admin(s: LocalNeo4jSettings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``neo4j-admin`` (e.g. ``database import full``) against the local server's home."""
    assemble()
    _write_config(s)
    return subprocess.run(
        [_java(), "-cp", f"{lib_dir()}/*", ADMIN_TOOL, *args], env=_env(s), capture_output=True, text=True
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as dead.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        return state != "Z"
    except OSError:
        return True


def _read_pid(s: LocalNeo4jSettings) -> int | None:
    try:
        pid = int(s.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def status(s: LocalNeo4jSettings) -> ServerStatus:
    pid = _read_pid(s)
    return ServerStatus(
        running=pid is not None and _port_open(s.listen_address, s.bolt_port), pid=pid, bolt_uri=s.bolt_uri, home=s.home
    )


def _wait_ready(s: LocalNeo4jSettings, pid: int) -> None:
    from neo4j import GraphDatabase

    deadline = time.monotonic() + s.start_timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            raise DatabaseUnavailable(
                f"Neo4j exited during start-up; see {s.logs_dir / 'console.log'}: {_tail(s.logs_dir / 'console.log')}"
            )
        if _port_open(s.listen_address, s.bolt_port):
            try:
                with GraphDatabase.driver(s.bolt_uri, auth=("neo4j", s.password or ""), connection_timeout=2) as driver:
                    driver.execute_query("RETURN 1", database_="neo4j")
                return
            except Exception as exc:  # noqa: BLE001 - any failure here means "not ready yet"
                last_error = exc
        time.sleep(0.5)
    raise DatabaseUnavailable(
        f"Neo4j did not become ready within {s.start_timeout_s:.0f}s at {s.bolt_uri} (last error: {last_error}); see {s.logs_dir}"
    )


def _tail(path: Path, n: int = 600) -> str:
    try:
        return path.read_text(errors="replace")[-n:].strip()
    except OSError:
        return "(no log)"


def start(s: LocalNeo4jSettings) -> ServerStatus:
    """Start the server unless it is already running; returns once Bolt answers a query."""
    current = status(s)
    if current.running:
        if s.password:
            _write_password_file(port_password_file(s.bolt_port), s.password)
        return current
    if _port_open(s.listen_address, s.bolt_port):
        raise DatabaseUnavailable(
            f"port {s.bolt_port} on {s.listen_address} is taken by another process "
            "(stop it, or choose another port with ATLAS_NEO4J_BOLT_PORT and set NEO4J_URI to match)"
        )
    assemble()
    _write_config(s)
    if not (s.data_dir / "dbms").exists():
        _initialise_auth(s)
    console = open(s.logs_dir / "console.log", "ab")  # noqa: SIM115 - handed to the server process, which outlives this call
    heap_flags = [f"-Xms{s.heap}", f"-Xmx{s.heap}"]
    cmd = [
        _java(),
        *heap_flags,
        "-XX:+UseG1GC",
        "-cp",
        f"{lib_dir()}/*",
        ENTRY_POINT,
        f"--home-dir={s.home}",
        f"--config-dir={s.conf_dir}",
    ]
    server = subprocess.Popen(
        cmd, env=_env(s), stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    s.pid_file.write_text(str(server.pid))
    _wait_ready(s, server.pid)
    if s.password:  # clients that know only this server's URI find its password by port (queries.settings)
        _write_password_file(port_password_file(s.bolt_port), s.password)
    return status(s)


def stop(s: LocalNeo4jSettings) -> bool:
    """Stop the server cleanly (SIGTERM, then SIGKILL after the timeout). Returns False if none ran."""
    pid = _read_pid(s)
    if pid is None:
        s.pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + s.stop_timeout_s
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.3)
    if _pid_alive(pid):
        log.warning("Neo4j (pid %d) ignored SIGTERM for %.0fs; killing it", pid, s.stop_timeout_s)
        os.kill(pid, signal.SIGKILL)
    s.pid_file.unlink(missing_ok=True)
    return True


# -- dump / load: the one neo4j-admin wrapper for copying a database between servers ---------------------------------
DUMP_META = "atlas-dump.json"


def neo4j_version() -> str:
    """The assembled Neo4j's version, read from the kernel jar's name (e.g. ``5.26.19``)."""
    for jar in sorted(assemble().glob("neo4j-kernel-[0-9]*.jar")):
        return jar.stem.removeprefix("neo4j-kernel-")
    raise AtlasError(
        f"no neo4j-kernel jar in {lib_dir()}; re-assemble Neo4j (delete {lib_dir()} and run `atlas db start`)"
    )


def dump(s: LocalNeo4jSettings, to_dir: Path, database: str = "neo4j") -> Path:
    """``neo4j-admin database dump`` of a stopped server into ``to_dir/<database>.dump`` (+ the Neo4j version beside it).

    Community Edition dumps offline only: stop the server first (`atlas db stop`)."""
    import json

    if status(s).running:
        raise AtlasError(
            f"the Neo4j server at {s.bolt_uri} is running; Community Edition dumps a stopped database: run `atlas db stop` first"
        )
    if not (s.data_dir / "databases" / database).exists():
        raise AtlasError(
            f"there is no database {database!r} under {s.data_dir} (is ATLAS_NEO4J_HOME={s.home} the server you meant?)"
        )
    to_dir.mkdir(parents=True, exist_ok=True)
    target = to_dir / f"{database}.dump"
    proc = admin(s, "database", "dump", database, f"--to-path={to_dir}", "--overwrite-destination=true")
    if proc.returncode != 0 or not target.exists():
        raise AtlasError(
            f"neo4j-admin could not dump {database!r} (exit {proc.returncode}): {(proc.stdout + proc.stderr).strip()[-600:]}"
        )
    (to_dir / DUMP_META).write_text(json.dumps({"neo4j_version": neo4j_version(), "database": database}))
    return target


def load(s: LocalNeo4jSettings, from_dir: Path, database: str = "neo4j") -> None:
    """``neo4j-admin database load`` of ``from_dir/<database>.dump`` into a stopped server, replacing its database.

    A dump from another Neo4j major version is refused before anything is touched."""
    import json

    source = from_dir / f"{database}.dump"
    if not source.exists():
        raise AtlasError(f"no dump {source} (make one with `atlas db dump {from_dir}` on the source server)")
    if status(s).running:
        raise AtlasError(
            f"the Neo4j server at {s.bolt_uri} is running; stop it (`atlas db stop`) before loading a dump into it"
        )
    mine = neo4j_version()
    try:
        theirs = str(json.loads((from_dir / DUMP_META).read_text())["neo4j_version"])
    except (OSError, ValueError, KeyError):
        theirs = None
    if theirs is None:
        log.warning("%s has no %s: cannot check the Neo4j version it was made with", from_dir, DUMP_META)
    elif theirs.split(".")[0] != mine.split(".")[0]:
        raise AtlasError(
            f"the dump in {from_dir} was made by Neo4j {theirs}, this server is Neo4j {mine}: a store from another major version "
            f"cannot be loaded; dump it again from a Neo4j {mine.split('.')[0]}.x server, or migrate it with that version's neo4j-admin"
        )
    _write_config(s)
    if not (s.data_dir / "dbms").exists():  # a fresh home: initialise its auth like `start` does
        _initialise_auth(s)
    proc = admin(s, "database", "load", database, f"--from-path={from_dir}", "--overwrite-destination=true")
    if proc.returncode != 0:
        raise AtlasError(
            f"neo4j-admin could not load {source} (exit {proc.returncode}): {(proc.stdout + proc.stderr).strip()[-600:]}"
        )


def backup(s: LocalNeo4jSettings, to_dir: Path, database: str = "neo4j") -> Path:
    """``atlas db backup``: :func:`dump` into ``to_dir``, stopping the server for it (Community dumps offline)
    and starting it again when it was running, even when the dump fails."""
    was_running = stop(s)
    try:
        return dump(s, Path(to_dir).expanduser(), database)
    finally:
        if was_running:
            start(s)


def restore(s: LocalNeo4jSettings, from_dir: Path, database: str = "neo4j") -> None:
    """``atlas db restore``: :func:`load` a backup, stopping the server for it and starting it again when it was
    running. Users and passwords (the system database) are not part of a dump and stay as they are."""
    was_running = stop(s)
    try:
        load(s, Path(from_dir).expanduser(), database)
    finally:
        if was_running:
            start(s)
