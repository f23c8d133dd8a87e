"""A real PostgreSQL server for the tests: one cluster per test process, a database per test."""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# The role the application connects as: not a superuser (as in a real deployment), it owns each
# test database and so may create the trusted pg_trgm extension in it. The superuser is for the
# fixture's own work (creating and dropping databases, the fault tests' inspections).
APP_USER = "mailpit"
APP_PASSWORD = "mailpit-test-pw"
ADMIN_USER = "postgres"
ADMIN_PASSWORD = "admin-test-pw"
TEMPLATE_DB = "mailpit_template"

# Where Debian installs each PostgreSQL version's binaries (VERSION/bin/initdb).
PG_LIB = Path("/usr/lib/postgresql")

# PostgreSQL refuses to run as root; when the tests run as root the cluster belongs to this user.
UNPRIVILEGED_USER = "nobody"

# Kept off: fsync (flushing to the disk only matters if the machine itself crashes, which no test
# does; a killed postgres loses nothing the kernel already has, so fault tests that kill it stay
# honest and the tests run faster). Kept on: synchronous_commit, because with it off a commit is
# acknowledged before its WAL leaves postgres's own memory, and a killed server would lose it.
FAST_SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "on",
    "max_connections": "200",
    "shared_buffers": "32MB",
    "max_wal_size": "256MB",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %d '",
}


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.parent.name)) or (0,)


def find_bin_dir() -> Path | None:
    """The newest PostgreSQL server's bin directory (Debian's layout first, then PATH)."""
    found = sorted(PG_LIB.glob("*/bin/initdb"), key=_version_key)
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    return None


def need_bin_dir() -> Path:
    """The server binaries; absent, the test skips, except under CI=true where it fails."""
    bin_dir = find_bin_dir()
    if bin_dir:
        return bin_dir
    why = "the PostgreSQL server is not installed (no /usr/lib/postgresql/*/bin/initdb)"
    how = "install it with `make test` as root or `sudo apt-get install -y postgresql`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why}: the PostgreSQL tests must run in CI; {how}")
    pytest.skip(f"{why}: {how}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServerError(RuntimeError):
    """The cluster could not be created, started or queried; the message holds its log's tail."""


class PgServer:
    """One PostgreSQL cluster in a temporary directory, on a free port of 127.0.0.1.

    stop() and start() may be called within a test (fault tests); the port stays the same so
    clients holding the URL reconnect to the restarted server.
    """

    def __init__(self, bin_dir: Path, fsync: bool = False) -> None:
        self.bin_dir = bin_dir
        self.fsync = fsync
        self.root = Path(tempfile.mkdtemp(prefix="mailpit-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self._as_user: list[str] = []
        self._env = dict(os.environ, HOME=str(self.root), PGDATA=str(self.data), LC_ALL="C")
        self._env.pop("PGHOST", None)
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        if os.geteuid() == 0:
            # runuser keeps the environment we pass (HOME/PGDATA point into the temp dir, as
            # nobody's home does not exist); the temp dir is handed over to that user.
            self._as_user = ["runuser", "-u", UNPRIVILEGED_USER, "--"]
            entry = pwd.getpwnam(UNPRIVILEGED_USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.socket_dir.mkdir()
        self.log.touch()
        if self._as_user:
            for path in (self.socket_dir, self.log):
                os.chown(path, pwd.getpwnam(UNPRIVILEGED_USER).pw_uid, -1)

    # -- running the binaries -------------------------------------------------------------------

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [*self._as_user, str(self.bin_dir / args[0]), *args[1:]]
        proc = subprocess.run(
            cmd,
            env=self._env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, not postgres
        )
        if proc.returncode != 0:
            raise PgServerError(
                f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip()}\n"
                f"{self.log_tail()}"
            )
        return proc

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "postgres log:\n" + "\n".join(text[-lines:])

    def init(self) -> PgServer:
        """initdb, the settings, the application role and the template database."""
        pwfile = self.root / "pwfile"
        pwfile.write_text(ADMIN_PASSWORD + "\n")
        if self._as_user:
            os.chown(pwfile, pwd.getpwnam(UNPRIVILEGED_USER).pw_uid, -1)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            ADMIN_USER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        pwfile.unlink()
        settings = dict(FAST_SETTINGS, fsync="on" if self.fsync else "off")
        settings["full_page_writes"] = "on" if self.fsync else "off"
        settings.update(
            listen_addresses="'127.0.0.1'",
            port=str(self.port),
            unix_socket_directories=f"'{self.socket_dir}'",
        )
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# written by tests/pgserver.py\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self._start_on_a_free_port()
        self.sql(f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}'")
        self.sql(f"CREATE DATABASE {TEMPLATE_DB} OWNER {APP_USER}")
        self.sql(f"ALTER DATABASE {TEMPLATE_DB} IS_TEMPLATE true")
        return self

    def _start_on_a_free_port(self, tries: int = 5) -> None:
        """The first start: the free port found may have been taken since by another process
        (other tests bind ports too), so another is tried; later restarts keep the port."""
        for attempt in range(tries):
            try:
                self.start()
                return
            except PgServerError as exc:
                if "could not bind" not in str(exc) or attempt == tries - 1:
                    raise
            self.port = free_port()
            with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
                conf.write(f"port = {self.port}\n")  # the last setting of a name wins

    def start(self) -> None:
        """Start the cluster (waits until it accepts connections); a no-op when running."""
        with self._lock:
            if self.is_running():
                return
            data, log = str(self.data), str(self.log)
            self._run("pg_ctl", "start", "-w", "-t", "60", "-D", data, "-l", log)
            self._start_watchdog()

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster: "fast" (clients disconnected, clean shutdown), "immediate" (as if
        the server crashed: no checkpoint, recovery at next start) or "smart"."""
        with self._lock:
            if self.is_running():
                self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data))

    def kill(self) -> None:
        """Crash the server (SIGQUIT to the postmaster, as pg_ctl's immediate mode does)."""
        self.stop("immediate")

    def is_running(self) -> bool:
        cmd = [*self._as_user, str(self.bin_dir / "pg_ctl"), "status", "-D", str(self.data)]
        if not self.data.exists():
            return False
        status = subprocess.run(cmd, env=self._env, cwd=self.root, capture_output=True)
        return status.returncode == 0

    @contextlib.contextmanager
    def down(self, mode: str = "fast") -> Iterator[None]:
        """The server stopped for the body of a with block, started again after it."""
        self.stop(mode)
        try:
            yield
        finally:
            self.start()

    def _start_watchdog(self) -> None:
        """A process that stops the cluster and removes its directory if this process dies
        without doing it (killed, or a worker pytest-xdist tore down): it waits for its standard
        input to close, and does nothing if told "done" first."""
        if self._watchdog and self._watchdog.poll() is None:
            return
        script = (
            "import shutil, subprocess, sys\n"
            "if sys.stdin.read() != 'done':\n"
            "    subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
            "stderr=subprocess.DEVNULL)\n"
            f"    shutil.rmtree({str(self.root)!r}, ignore_errors=True)\n"
        )
        stop = [*self._as_user, str(self.bin_dir / "pg_ctl"), "stop", "-m", "immediate"]
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", script, *stop, "-D", str(self.data)],
            stdin=subprocess.PIPE,
            env=self._env,
            cwd=self.root,
            start_new_session=True,
        )

    def close(self) -> None:
        """Stop the cluster and remove its files (idempotent)."""
        try:
            if self.data.exists():
                self.stop("immediate")
        finally:
            watchdog, self._watchdog = self._watchdog, None
            if watchdog and watchdog.stdin:
                with contextlib.suppress(OSError):
                    watchdog.stdin.write(b"done")
                    watchdog.stdin.close()
                watchdog.wait(10)
            shutil.rmtree(self.root, ignore_errors=True)

    # -- SQL and databases ----------------------------------------------------------------------

    def sql(self, query: str, db: str = "postgres", user: str = ADMIN_USER) -> str:
        """Run `query` with psql over TCP (as the superuser unless told); its unaligned output."""
        password = ADMIN_PASSWORD if user == ADMIN_USER else APP_PASSWORD
        proc = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                user,
                "-d",
                db,
                "-c",
                query,
            ],
            env=dict(self._env, PGPASSWORD=password, PGCONNECT_TIMEOUT="10"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            raise PgServerError(f"psql failed on {query!r}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def url(self, db: str, user: str = APP_USER) -> str:
        """The URL the application is given: postgresql://user:password@127.0.0.1:PORT/db."""
        password = ADMIN_PASSWORD if user == ADMIN_USER else APP_PASSWORD
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{db}"

    def create_database(self) -> str:
        """A new empty database owned by the application role; its name."""
        self.start()  # a fault test before may have left it stopped
        name = "t_" + uuid.uuid4().hex[:16]
        self.sql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB} OWNER {APP_USER}")
        return name

    def drop_database(self, name: str) -> None:
        self.start()
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def start_server(fsync: bool = False) -> PgServer:
    """A new initialised and running cluster, stopped at exit if nobody closes it before."""
    server = PgServer(need_bin_dir(), fsync=fsync)
    atexit.register(server.close)
    try:
        return server.init()
    except BaseException:
        server.close()
        raise


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The test process's PostgreSQL cluster (each pytest-xdist worker has its own)."""
    server = start_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """postgresql://mailpit:...@127.0.0.1:PORT/t_... : a fresh empty database, dropped after."""
    name = pg_server.create_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)
