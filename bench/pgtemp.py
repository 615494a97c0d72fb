"""A throwaway PostgreSQL server for the benches (Debian's postgresql, as `make setup`
installs it): initdb in a temp dir, listening on 127.0.0.1 only, trust auth, removed at the
end. The tests have their own (tests/conftest.py's PgCluster): benches and tests share no
code with each other's harness.

    with PgServer() as pg:
        url = pg.database("bench")      # postgresql://pj@127.0.0.1:PORT/bench
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    base = "/usr/lib/postgresql"
    for d in sorted(os.listdir(base), reverse=True) if os.path.isdir(base) else []:
        p = f"{base}/{d}/bin/{name}"
        if os.path.exists(p):
            return p
    return None


def available() -> bool:
    return bool(_pg_bin("initdb") and _pg_bin("pg_ctl"))


class PgServer:
    def __init__(self, options: str = "") -> None:
        self.options = options  # more server flags (`-c name=value ...`)
        self.initdb, self.pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if not self.initdb or not self.pg_ctl:
            raise SystemExit("PostgreSQL server binaries not found (make setup installs them)")
        self.dir = tempfile.mkdtemp(prefix="pingjia-bench-pg-")
        # initdb refuses root: run the server as the postgres user then
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self.data = os.path.join(self.dir, "data")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql://pj@127.0.0.1:{self.port}/postgres"
        self._started = False

    def __enter__(self) -> PgServer:
        subprocess.run(self.as_user + [self.initdb, "-D", self.data, "-A", "trust", "-U", "pj",
                                       "-E", "UTF8"], check=True, capture_output=True,
                       timeout=120)
        # fsync stays on: the figures are those of a server that keeps what it acks
        subprocess.run(self.as_user + [self.pg_ctl, "-D", self.data, "-l",
                                       os.path.join(self.dir, "log"), "-w", "-t", "60", "-o",
                                       f"-p {self.port} -k {self.dir} -h 127.0.0.1 {self.options}",
                                       "start"],
                       check=True, capture_output=True, timeout=120)
        self._started = True
        return self

    def database(self, name: str) -> str:
        """A fresh database of that name; its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + "/" + name

    def __exit__(self, *exc: object) -> None:
        if self._started:
            subprocess.run(self.as_user + [self.pg_ctl, "-D", self.data, "-m", "immediate",
                                           "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)
