"""The local services: Azurite (npm, pinned in package.json) and an embedded PostgreSQL 16 (PyPI pgserver's
binaries, on a TCP port of 127.0.0.1 so that it can be stopped and restarted like a real server).

Used by `trapalert stack` and by the test fixtures; each service keeps its data under a folder given to it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..adapters.storage import azurite_connection_string

PROJECT_ROOT = Path(__file__).resolve().parents[2]

if not os.environ.get("XDG_RUNTIME_DIR"):  # pgserver's platformdirs wants a private runtime folder
    import tempfile

    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="trapalert-run-")


class ServiceError(RuntimeError):
    """A local service could not be started; the message says what to look at."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float, host: str = "127.0.0.1", proc: subprocess.Popen | None = None,
                  what: str = "service", log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise ServiceError(f"{what} exited with code {proc.returncode} before listening on {port}"
                               f"\n{tail}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise ServiceError(f"{what} did not listen on {host}:{port} within {timeout_s:.0f} s"
                       + (f" (log: {log})" if log else ""))


def stop_process(proc: subprocess.Popen | None = None, pid: int | None = None, timeout_s: float = 10) -> None:
    """SIGTERM, then SIGKILL after timeout_s, of a process we started: its whole group when it leads one
    (the stack starts each service in a session of its own), else the process alone."""
    pid = proc.pid if proc is not None else pid
    if pid is None:
        return
    try:
        group = os.getpgid(pid) == pid
    except ProcessLookupError:
        group = False

    def send(sig: int) -> bool:
        try:
            (os.killpg if group else os.kill)(pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    if not send(signal.SIGTERM):
        if proc is not None:
            proc.poll()
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return
        elif not _alive(pid):
            return
        time.sleep(0.05)
    send(signal.SIGKILL)
    if proc is not None:
        proc.wait(5)
    else:
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


# ------------------------------------------------------------------------------ who holds a port, who is who
def port_holders(port: int) -> list[int | None]:
    """The pids listening on TCP ``port`` (any address); None stands for a listener this user cannot see
    (another user's process, another network namespace). Empty when the port is free."""
    import psutil

    try:
        conns = psutil.net_connections("inet")
    except psutil.AccessDenied:  # macOS without root: fall back to "something answers"
        conns = []
    holders: list[int | None] = []
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid not in holders:
            holders.append(c.pid)
    if not holders:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                holders.append(None)
    return holders


def process_family(pid: int) -> set[int]:
    """``pid`` and all its descendants (a service may listen from a child process)."""
    import psutil

    try:
        return {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
    except psutil.Error:
        return {pid}


def owns_port(pid: int, port: int) -> bool:
    """True when the process ``pid`` (or a child of it) is the only listener on ``port``."""
    holders = port_holders(port)
    return bool(holders) and set(holders) <= process_family(pid)


def describe_process(pid: int | None, width: int = 160) -> str:
    """'pid 123 (its command line)', shortened to about ``width`` characters, for messages."""
    if pid is None:
        return "a process this user cannot inspect (another user's, or another network namespace's)"
    import psutil

    try:
        proc = psutil.Process(pid)
        cmd = " ".join(proc.cmdline()) or proc.name()
    except psutil.Error:
        return f"pid {pid}"
    if len(cmd) > width:
        cmd = cmd[: width - 3] + "..."
    return f"pid {pid} ({cmd})"


# -------------------------------------------------------------------------------------------- Azurite
@dataclass
class Azurite:
    data_dir: Path
    blob_port: int
    queue_port: int
    table_port: int
    proc: subprocess.Popen | None = None

    @property
    def connection_string(self) -> str:
        return azurite_connection_string(self.blob_port, self.queue_port)

    @staticmethod
    def executable() -> Path:
        exe = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"
        if not exe.exists():
            raise ServiceError(f"{exe} not found: run `npm ci` (make does it) to install the pinned Azurite")
        return exe

    def start(self, timeout_s: float = 30, env: dict[str, str] | None = None) -> Azurite:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "azurite.log"
        cmd = [str(self.executable()), "--silent", "--skipApiVersionCheck", "--disableProductStyleUrl",
               "--location", str(self.data_dir),
               "--blobHost", "127.0.0.1", "--blobPort", str(self.blob_port),
               "--queueHost", "127.0.0.1", "--queuePort", str(self.queue_port),
               "--tableHost", "127.0.0.1", "--tablePort", str(self.table_port)]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=PROJECT_ROOT, env=env)
        wait_for_port(self.blob_port, timeout_s, proc=self.proc, what="Azurite", log=log)
        wait_for_port(self.queue_port, timeout_s, proc=self.proc, what="Azurite", log=log)
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


# ----------------------------------------------------------------------------------------- PostgreSQL
@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int
    database: str = "trapalert"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def _bin(name: str) -> Path:
        from pgserver._commands import POSTGRES_BIN_PATH

        return POSTGRES_BIN_PATH / name

    def _run_as(self) -> dict:
        """postgres refuses to run as root: as root, run it as pgserver's system user."""
        if os.geteuid() != 0:
            return {}
        import pwd
        import stat

        from pgserver._commands import POSTGRES_BIN_PATH
        from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists("pgserver")
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH,
                                  stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        entry = pwd.getpwnam("pgserver")
        for path in [self.data_dir, *self.data_dir.rglob("*")]:
            try:
                os.chown(path, entry.pw_uid, entry.pw_gid)
            except FileNotFoundError:
                pass
        return {"user": "pgserver", "group": entry.pw_gid}

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.pgdata.mkdir(exist_ok=True)
        run_as = self._run_as()
        subprocess.run([str(self._bin("initdb")), "-D", str(self.pgdata), "--auth=trust", "--encoding=UTF8",
                        "-U", "postgres", "--no-sync"], check=True, capture_output=True, **run_as)

    def start(self, timeout_s: float = 30) -> EmbeddedPostgres:
        self.init()
        run_as = self._run_as()
        sock_dir = self.data_dir / "sock"
        sock_dir.mkdir(exist_ok=True)
        os.chmod(sock_dir, 0o777)
        log = self.data_dir / "postgres.log"
        if not log.exists():
            log.touch()
        os.chmod(log, 0o666)
        opts = f"-p {self.port} -h 127.0.0.1 -k {sock_dir} -c fsync=off -c max_connections=200"
        result = subprocess.run([str(self._bin("pg_ctl")), "-D", str(self.pgdata), "-l", str(log), "-w",
                                 "-t", str(int(timeout_s)), "-o", opts, "start"], capture_output=True,
                                text=True, **run_as)
        if result.returncode != 0:
            raise ServiceError(f"PostgreSQL did not start: {result.stderr.strip()}\n"
                               f"{log.read_text(errors='replace')[-2000:]}")
        wait_for_port(self.port, timeout_s, what="PostgreSQL", log=log)
        self._ensure_database()
        return self

    def _ensure_database(self) -> None:
        from ..db import DatabaseUnavailable, ensure_database

        try:
            ensure_database(self.admin_url, self.database, wait_s=5.0)
        except DatabaseUnavailable as exc:
            raise ServiceError(f"PostgreSQL accepts no connections: {exc}") from None

    def stop(self, mode: str = "fast") -> None:
        if not (self.pgdata / "postmaster.pid").exists():
            return
        subprocess.run([str(self._bin("pg_ctl")), "-D", str(self.pgdata), "-m", mode, "-w", "stop"],
                       capture_output=True, **self._run_as())

    def postmaster_pid(self) -> int | None:
        """The pid in postmaster.pid (the server of this data folder), or None without one."""
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        result = subprocess.run([str(self._bin("pg_ctl")), "-D", str(self.pgdata), "status"],
                                capture_output=True, **self._run_as())
        return result.returncode == 0

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)
