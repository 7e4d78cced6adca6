"""A throwaway PostgreSQL cluster for the tests, started the way pytest-postgresql does.

    with PostgresCluster() as pg:
        pg.url                  # postgresql://koji:<password>@127.0.0.1:<port>/postgres (superuser)
        url = pg.new_database()  # a fresh, empty database (CREATE DATABASE ... TEMPLATE template0)

`initdb` + `pg_ctl` on a temp dir (in /dev/shm when roomy), a free TCP port on 127.0.0.1, the unix socket
inside the temp dir, scram-sha-256 everywhere (a URL without the right password is refused), fast and unsafe settings
(fsync off: the data is thrown away). initdb and the server refuse to run as root, so as root they run as
the `postgres` system user (runuser). Anything that keeps the cluster from starting raises
PostgresUnavailable with one line saying why; nothing here skips.

Only the standard library, plus psycopg for new_database()/drop_database().
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

SEARCH_DIRS_GLOB = "/usr/lib/postgresql/*/bin"
BIN_DIR_ENV = "KOJI_MCP_TEST_PG_BIN"  # force one bin dir (a given version); else PATH, then SEARCH_DIRS_GLOB
SYSTEM_USER = "postgres"  # who runs initdb/postgres when we are root
SUPERUSER = "koji"
SHM_MIN_FREE = 1 << 30  # a fresh database is ~8 MB; the per-test ones are dropped after each test
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class PostgresUnavailable(RuntimeError):
    """The cluster cannot be started (binaries missing, initdb or pg_ctl failed); the message is one line."""


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name)) or (0,)


def find_pg_bin_dir() -> Path:
    """The directory holding initdb and pg_ctl: PATH first, then /usr/lib/postgresql/*/bin, newest first."""
    on_path = shutil.which("initdb")
    if on_path:
        bin_dir = Path(on_path).resolve().parent
        if (bin_dir / "pg_ctl").exists():
            return bin_dir
    candidates = sorted((p for p in Path("/").glob(SEARCH_DIRS_GLOB.lstrip("/")) if (p / "initdb").exists()),
                        key=_version_key, reverse=True)
    for bin_dir in candidates:
        if (bin_dir / "pg_ctl").exists():
            return bin_dir
    raise PostgresUnavailable(f"PostgreSQL server binaries not found (no initdb on PATH or in {SEARCH_DIRS_GLOB}); "
                              "`make test-postgres` installs them (apt-get install postgresql)")


def default_parent_dir() -> str:
    """/dev/shm when it is a roomy tmpfs (CREATE DATABASE is ~10x faster in RAM than on a busy disk), else TMPDIR."""
    shm = "/dev/shm"
    try:
        stats = os.statvfs(shm)
    except OSError:
        return tempfile.gettempdir()
    if os.access(shm, os.W_OK | os.X_OK) and stats.f_bavail * stats.f_frsize >= SHM_MIN_FREE:
        return shm
    return tempfile.gettempdir()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(text: str, limit: int = 300) -> str:
    """The last meaningful line(s) of a tool's output, on one line, for an error message."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"\b(FATAL|ERROR|PANIC|error|could not)\b", line)]
    picked = (errors or lines)[-2:]
    return " | ".join(picked)[-limit:] or "no output"


class PostgresCluster:
    """One PostgreSQL cluster in a temp dir; use as a context manager (or start()/stop())."""

    def __init__(self, bin_dir: str | Path | None = None, start_timeout: float = 30.0,
                 parent_dir: str | Path | None = None) -> None:
        self.parent_dir = Path(parent_dir) if parent_dir else Path(default_parent_dir())
        bin_dir = bin_dir or os.environ.get(BIN_DIR_ENV)
        self._bin_dir_arg = Path(bin_dir) if bin_dir else None
        self.start_timeout = start_timeout
        self.password = secrets.token_urlsafe(18)  # URL-safe: no quoting surprises in the URL
        self.user = SUPERUSER
        self.host = "127.0.0.1"
        self.port = 0
        self.base_dir: Path | None = None
        self.bin_dir: Path | None = None
        self.run_as: str | None = None  # the system user running the server, when we are root
        self.version = ""
        self.start_seconds = 0.0
        self._lock = threading.Lock()
        self._admin: Any = None  # a psycopg connection, opened on first new_database()
        self.databases_created = 0
        self.create_seconds = 0.0  # total time spent in new_database()

    # -- paths ---------------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        assert self.base_dir is not None, "cluster not started"
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.base_dir is not None, "cluster not started"
        return self.base_dir / "sock"

    @property
    def url(self) -> str:
        """The superuser's URL on the default `postgres` database, over TCP, with the password."""
        return self.url_for("postgres")

    def url_for(self, dbname: str, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://{quote(self.user, safe='')}:{quote(secret, safe='')}@{self.host}:{self.port}/{dbname}"

    def __repr__(self) -> str:  # never the password
        return f"PostgresCluster(port={self.port}, dir={self.base_dir}, version={self.version!r})"

    # -- lifecycle -----------------------------------------------------------------------------------
    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _cmd(self, *argv: str | Path) -> list[str]:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        return prefix + [str(a) for a in argv]

    def _run(self, what: str, *argv: str | Path, timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(self._cmd(*argv), capture_output=True, text=True, timeout=timeout,
                                  cwd=self.base_dir, env=self._env())
        except FileNotFoundError as exc:
            raise PostgresUnavailable(f"{what} could not run: {exc}") from None
        except subprocess.TimeoutExpired:
            raise PostgresUnavailable(f"{what} did not finish within {timeout:.0f}s") from None
        return proc

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return env

    def _give_to_run_as(self, *paths: Path) -> None:
        if self.run_as:
            user = pwd.getpwnam(self.run_as)
            for path in paths:
                os.chown(path, user.pw_uid, user.pw_gid)

    def start(self) -> PostgresCluster:
        t0 = time.perf_counter()
        self.bin_dir = self._bin_dir_arg or find_pg_bin_dir()
        missing = [name for name in ("initdb", "pg_ctl") if not (self.bin_dir / name).is_file()]
        if missing:
            raise PostgresUnavailable(f"PostgreSQL server binaries not found: no {' or '.join(missing)} "
                                      f"in {self.bin_dir}")
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                raise PostgresUnavailable(f"running as root and there is no `{SYSTEM_USER}` system user to run "
                                          "initdb/postgres as (they refuse root)") from None
            if shutil.which("runuser") is None:
                raise PostgresUnavailable("running as root and `runuser` is missing (util-linux)")
            self.run_as = SYSTEM_USER
        self.base_dir = Path(tempfile.mkdtemp(prefix="koji-mcp-pg-", dir=self.parent_dir))
        try:
            self._init_and_start()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.perf_counter() - t0
        return self

    def _init_and_start(self) -> None:
        assert self.base_dir is not None and self.bin_dir is not None
        os.chmod(self.base_dir, 0o755)  # the postgres user must reach data/ and sock/ inside it
        self.data_dir.mkdir(mode=0o700)
        self.socket_dir.mkdir(mode=0o700)
        pwfile = self.base_dir / "pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.password + "\n")
        self._give_to_run_as(self.data_dir, self.socket_dir, pwfile)

        proc = self._run("initdb", self.bin_dir / "initdb", "-D", self.data_dir, "-U", self.user,
                         "--pwfile", pwfile, "-A", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync",
                         timeout=120)
        pwfile.unlink()
        if proc.returncode != 0:
            raise PostgresUnavailable(f"initdb failed (exit {proc.returncode}): {_tail(proc.stderr + proc.stdout)}")
        self.version = (self.data_dir / "PG_VERSION").read_text().strip()

        for attempt in range(3):  # the free port may be taken between free_port() and bind(): retry
            self.port = free_port()
            settings = dict(FAST_SETTINGS, port=str(self.port), listen_addresses=f"'{self.host}'",
                            unix_socket_directories=f"'{self.socket_dir}'", password_encryption="'scram-sha-256'")
            with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
                conf.write("".join(f"{key} = {value}\n" for key, value in settings.items()))
            log = self.base_dir / "server.log"
            log.touch()
            self._give_to_run_as(log)
            proc = self._run("pg_ctl start", self.bin_dir / "pg_ctl", "-D", self.data_dir, "-l", log, "-w",
                             "-t", str(int(self.start_timeout)), "start", timeout=self.start_timeout + 10)
            if proc.returncode == 0:
                return
            server_log = log.read_text(encoding="utf-8", errors="replace")
            if "could not bind" in server_log and attempt < 2:
                continue
            raise PostgresUnavailable(f"pg_ctl start failed (exit {proc.returncode}): "
                                      f"{_tail(server_log + proc.stderr + proc.stdout)}")

    def stop(self) -> None:
        """Stop the server at once (-m immediate: the data is thrown away) and remove the temp dir."""
        with self._lock:
            if self._admin is not None:
                try:
                    self._admin.close()
                finally:
                    self._admin = None
        if self.base_dir is None:
            return
        try:
            if self.bin_dir and (self.data_dir / "postmaster.pid").exists():
                self._run("pg_ctl stop", self.bin_dir / "pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w",
                          "stop", timeout=30)
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    # -- databases -----------------------------------------------------------------------------------
    def _admin_connection(self) -> Any:
        import psycopg

        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        return self._admin

    def new_database(self, name: str | None = None) -> str:
        """CREATE DATABASE (from template0: empty, fast) and return its URL, with the password."""
        from psycopg import sql

        name = name or f"t_{secrets.token_hex(6)}"
        t0 = time.perf_counter()
        with self._lock:
            self._admin_connection().execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
            self.databases_created += 1
            self.create_seconds += time.perf_counter() - t0
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE ... WITH (FORCE): connections still open to it are ended."""
        from psycopg import sql

        with self._lock:
            self._admin_connection().execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def server_user(self) -> str:
        """The system user the postmaster runs as (from its pid file and /proc)."""
        pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        uid = os.stat(f"/proc/{pid}").st_uid
        return pwd.getpwuid(uid).pw_name
