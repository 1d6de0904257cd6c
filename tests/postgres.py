"""A throw-away PostgreSQL server for the tests: ``initdb`` and ``pg_ctl`` in a temporary
folder, on a free port of 127.0.0.1, password authentication over TCP (PostgreSQL refuses to
run as root, so as root the server runs as the ``postgres`` user)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PASSWORD = "s3cret-Pw"
USER = "raysearch"


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def available() -> bool:
    """The server's binaries, and (as root, where PostgreSQL refuses to run) its user."""
    if _bin("initdb") is None or _bin("pg_ctl") is None:
        return False
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One PostgreSQL cluster: ``start()``, ``url(db)``, ``restart()``, ``stop()``, ``remove()``.
    Its folder is a fresh one under the system's temporary directory: pytest's own (mode 0700,
    the root user's) is closed to the ``postgres`` user."""

    def __init__(self) -> None:
        self.folder, self.port = Path(tempfile.mkdtemp(prefix="raysearch-pg-")), _free_port()
        self.data, self.log = self.folder / "data", self.folder / "server.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            pwd.getpwnam("postgres")  # the image's PostgreSQL user
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, check: bool = True) -> None:
        subprocess.run([*self._as, *args], check=check, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> Server:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._as:
            shutil.chown(self.folder, "postgres", "postgres")
        if not self.data.exists():
            pwfile = self.folder / "pw"
            pwfile.write_text(PASSWORD + "\n")
            if self._as:
                shutil.chown(pwfile, "postgres", "postgres")
            self._run(_bin("initdb") or "initdb", "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}",
                      "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
            pwfile.unlink()
        self._ctl("start", "-w", "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off")
        return self

    def _ctl(self, *args: str, check: bool = True) -> None:
        self._run(_bin("pg_ctl") or "pg_ctl", "-D", str(self.data), "-l", str(self.log), *args, check=check)

    def restart(self) -> None:
        self._ctl("restart", "-w", "-m", "fast", "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off")

    def stop(self) -> None:
        self._ctl("stop", "-w", "-m", "immediate")

    def remove(self) -> None:
        """Stop the server if it runs, and delete its folder."""
        self._ctl("stop", "-w", "-m", "immediate", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    def createdb(self, name: str) -> str:
        self._run(_bin("createdb") or "createdb", "-h", str(self.folder), "-p", str(self.port), "-U", USER, name)
        return self.url(name)

    def url(self, db: str, password: str = PASSWORD) -> str:
        return f"postgresql+psycopg2://{USER}:{password}@127.0.0.1:{self.port}/{db}"
