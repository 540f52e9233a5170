"""A throwaway PostgreSQL server for tests and benchmarks, on 127.0.0.1 and a free port.

Finds Debian's server binaries (`/usr/lib/postgresql/<version>/bin`), installing the
`postgresql` package with apt-get when they are missing (CI machines are fresh; we are root
there). The cluster lives in a temporary directory owned by the `postgres` user, because the
server refuses to run as root; everything started here is stopped by `stop()`.

Fixtures (import them into a test module and list them in its `__all__`):
`database_url` runs a test on SQLite and on a fresh PostgreSQL database (marked `postgres`);
`postgres_server` is the session's running `PostgresServer` (`server.create_database()`).
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

APT_TIMEOUT_S = 900
_names = itertools.count(1)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be run here; the message says why."""


def find_bindir() -> Path | None:
    """Directory holding initdb and pg_ctl: Debian's newest version, else the PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if candidates:
        return Path(candidates[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).resolve().parent if on_path else None


def install_postgres() -> Path:
    """apt-get install Debian's postgresql (root only); returns the binaries' directory."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PostgresUnavailable(
            "PostgreSQL is not installed and cannot be installed here (needs root and "
            "apt-get); install the `postgresql` package to run the postgres tests"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    for command in (
        ["apt-get", *lock, "update"],
        ["apt-get", *lock, "install", "-y", "--no-install-recommends", "postgresql"],
    ):
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"`{' '.join(command)}` failed ({done.returncode}): {done.stderr.strip()[-800:]}"
            )
    _stop_debian_clusters()
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable("apt-get installed postgresql but no pg_ctl was found")
    return bindir


def _stop_debian_clusters() -> None:
    """The package may start its default cluster; tests only use their own."""
    if shutil.which("pg_lsclusters") is None:
        return
    listing = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=False)
    for line in listing.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[3] == "online":
            subprocess.run(["pg_ctlcluster", parts[0], parts[1], "stop"], check=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One initdb'd cluster in a temp directory, running on 127.0.0.1:`port`."""

    def __init__(self, bindir: Path, *, durable: bool = False):
        self.bindir = bindir
        self.durable = durable  # False: fsync off, for fast tests; True for benchmarks
        self.root = Path(tempfile.mkdtemp(prefix="spillway-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        self.user = "postgres"
        self.running = False
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise PostgresUnavailable(
                f"{args[0]} failed ({done.returncode}): {done.stderr.strip()[-800:]}\n{tail}"
            )
        return done

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
            "--no-locale", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.root}",
            "-c max_connections=50",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", " ".join(options), "-w", "-t", "60", "start",
        )  # fmt: skip
        self.running = True

    def stop(self) -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
            self.running = False

    def kill(self) -> None:
        """SIGKILL the server's postmaster, as a crash would; its backends exit after it."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.running = False

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = name or f"t{os.getpid()}_{next(_names)}"
        dsn = f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def start_server(*, durable: bool = False) -> PostgresServer:
    """Install if needed, init and start a server; it is stopped at interpreter exit too."""
    bindir = find_bindir() or install_postgres()
    server = PostgresServer(bindir, durable=durable)
    atexit.register(server.destroy)
    server.init()
    deadline = time.monotonic() + 30
    while True:  # a port taken between free_port() and start: pick another
        try:
            server.start()
            return server
        except PostgresUnavailable:
            if time.monotonic() > deadline:
                raise
            server.port = free_port()


_shared: dict[str, PostgresServer | str] = {}


def shared_server(config: pytest.Config) -> PostgresServer:
    """The session's server, started on first use and stopped when the session ends.

    Skips the calling test (every time, without retrying the install) when none can run."""
    if "server" not in _shared:
        try:
            server = start_server()
        except PostgresUnavailable as error:
            _shared["server"] = f"no PostgreSQL server: {error}"
        else:
            _shared["server"] = server
            config.add_cleanup(_stopper(server))
    found = _shared["server"]
    if isinstance(found, str):
        pytest.skip(found)
    return found


def _stopper(server: PostgresServer) -> Callable[[], None]:
    def stop() -> None:
        _shared.pop("server", None)
        server.destroy()
        atexit.unregister(server.destroy)

    return stop


@pytest.fixture(scope="session")
def postgres_server(pytestconfig: pytest.Config) -> PostgresServer:
    """A running server shared by the session (tests may create databases, not stop it)."""
    return shared_server(pytestconfig)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend: a SQLite file, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return shared_server(request.config).create_database()
