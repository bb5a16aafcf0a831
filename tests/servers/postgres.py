"""A real PostgreSQL cluster of our own: initdb into a temp dir, pg_stat_statements preloaded.

PostgreSQL refuses to run as root. As root (CI containers) initdb and postgres run as the
`postgres` system user that Debian's package creates, in a temp dir that user owns; otherwise
they run as ourselves.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.servers.process import ServerProcess, as_user, clean_env, start_on_free_port

SUPERUSER = "postgres"
DATABASE = "app"


def find_bin_dir() -> Path | None:
    """The directory holding initdb/postgres: PATH first, then Debian's versioned dirs (newest)."""
    on_path = shutil.which("initdb")
    if on_path:
        # Resolve symlinks (/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb) so that
        # postgres, pg_isready and psql all come from the same version.
        return Path(on_path).resolve().parent
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(debian[-1]).parent if debian else None


def tool(bin_dir: Path, name: str) -> str | None:
    candidate = bin_dir / name
    return str(candidate) if os.access(candidate, os.X_OK) else shutil.which(name)


def system_user_for_root() -> str | None:
    """None when we may run postgres ourselves; 'postgres' when we are root; KeyError if absent."""
    if os.geteuid() != 0:
        return None
    pwd.getpwnam(SUPERUSER)  # raises KeyError when the package's system user does not exist
    return SUPERUSER


@dataclass
class PostgresServer:
    dsn: str
    host: str
    port: int
    user: str
    database: str
    socket_dir: Path
    process: ServerProcess
    psql_path: str

    def psql(self, sql: str, database: str | None = None) -> str:
        """Run SQL through psql, return unaligned tuples-only output (`-At`). Raises on SQL errors."""
        return run_psql(self.psql_path, self.port, sql, database or self.database)

    def stop(self) -> None:
        self.process.stop()


def run_psql(psql: str, port: int, sql: str, database: str) -> str:
    argv = [psql, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port),
            "-U", SUPERUSER, "-d", database, "-c", sql]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"psql failed ({done.returncode}) running {sql!r}:\n{done.stderr}")
    return done.stdout.strip()


def start_postgres(bin_dir: Path, workdir: Path, run_as: str | None) -> PostgresServer:
    initdb, postgres = str(bin_dir / "initdb"), str(bin_dir / "postgres")
    pg_isready, psql = tool(bin_dir, "pg_isready"), tool(bin_dir, "psql")
    if pg_isready is None or psql is None:
        raise RuntimeError(f"pg_isready/psql not found next to {initdb} nor on PATH")
    data, sockets = workdir / "data", workdir / "sockets"
    sockets.mkdir()
    if run_as:
        for path in (workdir, sockets):
            shutil.chown(path, run_as, run_as)

    # --no-sync and fsync=off: durability is worthless for a throwaway cluster, speed is not.
    done = subprocess.run(
        [initdb, "-D", str(data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--locale=C",
         "--no-sync", "--no-instructions"],  # fmt: skip
        cwd=workdir, env=clean_env(), capture_output=True, text=True, timeout=120, **as_user(run_as),
    )
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def argv(port: int) -> list[str]:
        return [
            postgres, "-D", str(data), "-p", str(port), "-k", str(sockets),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "shared_preload_libraries=pg_stat_statements",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
        ]  # fmt: skip

    def ready(port: int) -> bool:
        probe = [pg_isready, "-q", "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, "-t", "1"]
        return subprocess.run(probe, env=clean_env(), timeout=10).returncode == 0

    process, port = start_on_free_port(
        "postgres", argv, ready, workdir=workdir, env=clean_env(), user=run_as,
        # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM ("smart") waits for clients to leave.
        stop_signal=signal.SIGINT,
    )  # fmt: skip
    try:
        run_psql(psql, port, f"CREATE DATABASE {DATABASE}", "postgres")
        run_psql(psql, port, "CREATE EXTENSION pg_stat_statements", DATABASE)
    except BaseException:
        process.stop()
        raise
    dsn = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"
    return PostgresServer(dsn, "127.0.0.1", port, SUPERUSER, DATABASE, sockets, process, psql)
