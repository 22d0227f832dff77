"""A throwaway PostgreSQL server on 127.0.0.1 for the database-input tests (issue 16).

Uses the server binaries of Debian's ``postgresql`` package (``.ci/run``
installs it when missing): ``initdb`` into a fresh temporary folder, then
``pg_ctl start`` on a free port, listening on 127.0.0.1 only, with password
(SCRAM) authentication for one user. PostgreSQL refuses to run as root, so
under root the folder is given to the ``postgres`` user (or ``nobody``) and
the binaries run as that user through ``runuser``. The server is stopped and
its folder removed when the context ends.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

USER = "analyst"
DATABASE = "handbook"


@dataclass
class Server:
    port: int
    user: str
    password: str
    database: str

    def url(self, with_password: bool = False, **query: str) -> str:
        from urllib.parse import urlencode

        auth = f"{self.user}:{self.password}" if with_password else self.user
        tail = f"?{urlencode(query)}" if query else ""
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{self.database}{tail}"


def server_binaries() -> Path | None:
    """The folder of initdb and pg_ctl (Debian keeps them under /usr/lib/postgresql/VERSION/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(password: str) -> Iterator[Server]:
    """Start a server with user :data:`USER` (this password) and database :data:`DATABASE`."""
    bindir = server_binaries()
    if bindir is None:
        raise FileNotFoundError(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
        )
    base = Path(tempfile.mkdtemp(prefix="handbook-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        owner = next((u for u in ("postgres", "nobody") if _user_exists(u)), None)
        if owner is None:
            raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")
        record = pwd.getpwnam(owner)
        os.chown(base, record.pw_uid, record.pw_gid)
        prefix = ["runuser", "-u", owner, "--"]
        uid, gid = record.pw_uid, record.pw_gid
    else:
        uid, gid = os.getuid(), os.getgid()
    data, sock, log, pwfile = base / "data", base / "sock", base / "server.log", base / "pw"
    sock.mkdir()
    pwfile.write_text(password + "\n")
    for p in (sock, pwfile):
        os.chown(p, uid, gid)
    pwfile.chmod(0o600)
    port = _free_port()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*prefix, *args], check=True, capture_output=True, text=True, timeout=120, cwd=base
        )

    started = False
    try:
        run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
        )
        run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1",
            "start",
        )
        started = True
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=port, user=USER, password=password, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        yield Server(port, USER, password, DATABASE)
    finally:
        if started:
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                timeout=120,
                cwd=base,
            )
        shutil.rmtree(base, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def load_csv(server: Server, csv: Path, table: str, types: dict[str, str]) -> int:
    """Create ``table`` (schema-qualified) with these column types and COPY the CSV into it; return its rows."""
    import psycopg

    schema = table.split(".")[0] if "." in table else None
    columns = ", ".join(f'"{c}" {t}' for c, t in types.items())
    with psycopg.connect(
        host="127.0.0.1",
        port=server.port,
        user=server.user,
        password=server.password,
        dbname=server.database,
        autocommit=True,
    ) as conn:
        if schema:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.execute(f"CREATE TABLE {table} ({columns})")
        with conn.cursor() as cur:
            with cur.copy(
                f"COPY {table} ({', '.join(chr(34) + c + chr(34) for c in types)}) FROM STDIN "
                "WITH (FORMAT csv, HEADER true)"
            ) as copy:
                copy.write(csv.read_bytes())
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
