"""`trapalert stack up|down|status`: the whole pipeline on one machine, with no account anywhere.

State (ports, pids, addresses) is kept in .trapalert/stack.json; data and logs under .trapalert/.

What `up` guarantees:
- all or nothing: when a step fails (or the call is interrupted), what this call started is stopped and
  the error names the step and the cause in one line (StackError; ``details`` has the rest);
- a component counts as up only when the process the stack started is the one listening on its port(s)
  and its health check passes (Azurite answers as Azurite, PostgreSQL accepts connections, the scoring
  service is ready with the configured backend, the Functions host is running);
- a port held by another process is named (pid and command line) before anything starts;
- every process the stack starts carries TRAPALERT_STACK_DIR=<its state folder> in its environment, so
  that leftovers of an earlier run (a killed `stack up`) are found by that mark and their working folder,
  never by name: `up` stops them before starting, `down` stops them with the recorded ones;
- `up` and `down` on one state folder are serialized by a lock file (stack.lock); the second call waits
  (TRAPALERT_STACK_LOCK_WAIT_S, default 300 s) and says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from .. import names
from ..adapters.storage import Storage
from ..console.urls import console_url
from .services import (
    PROJECT_ROOT,
    Azurite,
    EmbeddedPostgres,
    ServiceError,
    _alive,
    describe_process,
    owns_port,
    port_holders,
    process_family,
    stop_process,
)

DEFAULT_PORTS = {"host": 7071, "scoring": 8081, "blob": 10000, "queue": 10001, "table": 10002,
                 "postgres": 54329}
MARKER_ENV = "TRAPALERT_STACK_DIR"  # set on every process the stack starts: the state folder's path
LOCK_WAIT_ENV = "TRAPALERT_STACK_LOCK_WAIT_S"
DEFAULT_LOCK_WAIT_S = 300.0
STOP_ORDER = ("host", "scoring", "azurite")  # processes; PostgreSQL (pg_ctl) last


class StackError(ServiceError):
    """`stack up|down` could not do its job. The message is one line (the step and the cause);
    ``details`` holds what `--verbose` shows (the traceback, the end of the component's log)."""

    def __init__(self, message: str, *, step: str | None = None, details: str = ""):
        super().__init__(_one_line(message, 600))
        self.step = step
        self.details = details


class _Interrupted(BaseException):  # noqa: N818 - like KeyboardInterrupt
    pass


def _one_line(text: str, width: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[: width - 3] + "..."


def describe_error(exc: BaseException) -> str:
    """An exception in one line: its message (with its type when it is not a ServiceError)."""
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    if isinstance(exc, ServiceError) and first:
        return _one_line(first)
    return _one_line(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)


_ERRORISH = re.compile(r"error|exception|fail|refused|denied|in use|not found|no such|invalid|^scoring:",
                       re.IGNORECASE)


def _log_hint(path: Path | None) -> str:
    """The last line of a log that looks like the reason (for a one-line message)."""
    if path is None or not path.exists():
        return ""
    lines = [ln.strip() for ln in path.read_text(errors="replace")[-6000:].splitlines() if ln.strip()]
    for line in reversed(lines):
        if _ERRORISH.search(line):
            return _one_line(line, 200)
    return _one_line(lines[-1], 200) if lines else ""


def _log_tail(path: Path | None, chars: int = 3000) -> str:
    if path is None or not path.exists():
        return ""
    return f"--- end of {path} ---\n{path.read_text(errors='replace')[-chars:]}"


class Stack:
    def __init__(self, root: Path = PROJECT_ROOT, state_dir: Path | None = None,
                 settings_file: Path | None = None):
        self.root = root
        self.dir = (state_dir or root / ".trapalert").resolve()
        self.state_file = self.dir / "stack.json"
        self.lock_file = self.dir / "stack.lock"
        self.logs = self.dir / "logs"
        self.settings_file = settings_file or root / "local.settings.json"

    # -- local.settings.json ----------------------------------------------------------------------
    def local_values(self) -> dict[str, str]:
        if not self.settings_file.exists():
            example = json.loads((self.root / "local.settings.example.json").read_text())
            example["Values"]["TRAPALERT_LOCAL_FUNCTION_KEY"] = secrets.token_urlsafe(24)
            example["Values"]["TRAPALERT_LOCAL_MASTER_KEY"] = secrets.token_urlsafe(24)
            self.settings_file.write_text(json.dumps(example, indent=2) + "\n")
            os.chmod(self.settings_file, 0o600)
        values = json.loads(self.settings_file.read_text()).get("Values", {})
        return {k: str(v) for k, v in values.items() if v not in (None, "")}

    def _values_or_empty(self) -> dict[str, str]:
        try:
            values = json.loads(self.settings_file.read_text()).get("Values", {})
        except (OSError, ValueError, AttributeError):
            return {}
        return {k: str(v) for k, v in values.items() if v not in (None, "")}

    def read_state(self) -> dict[str, Any] | None:
        if not self.state_file.exists():
            return None
        try:
            return json.loads(self.state_file.read_text())
        except ValueError:  # cut short by a killed `stack up`: what it started is found by its mark
            return {"components": {}, "phase": "starting"}

    def _write_state(self, state: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(self.state_file)

    def _port(self, name: str) -> int:
        return int(os.environ.get(f"TRAPALERT_{name.upper()}_PORT", DEFAULT_PORTS[name]))

    # -- the lock -----------------------------------------------------------------------------------
    def lock_holder(self) -> dict[str, Any] | None:
        """The `stack up|down` call in progress on this state folder ({'pid', 'action'}), or None."""
        if not self.lock_file.exists():
            return None
        with open(self.lock_file, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return self._lock_info()
            fcntl.flock(f, fcntl.LOCK_UN)
        return None

    def _lock_info(self) -> dict[str, Any]:
        try:
            return json.loads(self.lock_file.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    @contextlib.contextmanager
    def _locked(self, action: str, echo: Callable[[str], Any], wait_s: float | None) -> Iterator[None]:
        """Hold stack.lock for one `up` or `down`; the kernel frees it when the holder dies."""
        if wait_s is None:
            wait_s = float(os.environ.get(LOCK_WAIT_ENV, DEFAULT_LOCK_WAIT_S))
        self.dir.mkdir(parents=True, exist_ok=True)
        f = open(self.lock_file, "a+")  # noqa: SIM115 - held until the end of the with block
        held = False
        try:
            deadline = time.monotonic() + wait_s
            told = False
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held = True
                    break
                except BlockingIOError:
                    info = self._lock_info()
                    other = f"another `trapalert stack {info.get('action', 'up|down')}` " \
                            f"(pid {info.get('pid', '?')}) is in progress on {self.dir}"
                    if time.monotonic() >= deadline:
                        raise StackError(
                            f"{other}" + (f" after waiting {wait_s:.0f} s" if wait_s > 0 else "")
                            + "; let it finish, then try again (`trapalert stack status` shows the stack)",
                            step="lock") from None
                    if not told:
                        echo(f"{other}; waiting for it (up to {wait_s:.0f} s)")
                        told = True
                    time.sleep(0.2)
            f.seek(0)
            f.truncate()
            f.write(json.dumps({"pid": os.getpid(), "action": action, "since": time.time()}))
            f.flush()
            yield
        finally:
            if held:  # a call that never got the lock leaves the holder's note alone
                with contextlib.suppress(OSError):
                    f.truncate(0)
            f.close()  # releases the lock

    # -- which processes are ours -----------------------------------------------------------------
    def _marked(self, pid: int | None) -> bool:
        """True when ``pid`` is alive and carries this stack's mark (never a recycled pid)."""
        if not pid or not _alive(pid):
            return False
        import psutil

        try:
            return psutil.Process(pid).environ().get(MARKER_ENV) == str(self.dir)
        except psutil.Error:
            return False

    def _child_env(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, MARKER_ENV: str(self.dir)}

    def find_leftovers(self, known: set[int] = frozenset()) -> list[tuple[str, int]]:
        """Processes of this stack (its mark in their environment, this checkout as their working folder)
        other than ``known`` pids and their children: [(component, pid)], top-level processes only."""
        import psutil

        found: dict[int, str] = {}
        parents: dict[int, int] = {}
        me = os.getpid()
        for proc in psutil.process_iter(["pid", "ppid", "cmdline", "cwd"]):
            try:
                if proc.pid == me or proc.info["cwd"] != str(self.root):
                    continue
                if proc.environ().get(MARKER_ENV) != str(self.dir):
                    continue
            except psutil.Error:
                continue
            cmd = " ".join(proc.info["cmdline"] or [])
            name = ("scoring" if "-m scoring" in cmd else "host" if "functions.localhost" in cmd
                    else "azurite" if "azurite" in cmd else "process")
            found[proc.pid] = name
            parents[proc.pid] = proc.info["ppid"]
        known_family: set[int] = set()
        for pid in known:
            known_family |= process_family(pid)
        return [(name, pid) for pid, name in sorted(found.items())
                if pid not in known_family and parents.get(pid) not in found]

    def _leftover_postgres(self) -> EmbeddedPostgres | None:
        pg = EmbeddedPostgres(self.dir / "postgres", self._port("postgres"))
        pid = pg.postmaster_pid()
        return pg if pid and _alive(pid) else None

    def _stop_leftovers(self, known: set[int], echo: Callable[[str], Any]) -> list[str]:
        stopped = []
        leftovers = self.find_leftovers(known)
        rank = {n: i for i, n in enumerate(STOP_ORDER)}
        for name, pid in sorted(leftovers, key=lambda x: rank.get(x[0], len(rank))):
            stop_process(pid=pid, timeout_s=35 if name == "host" else 10)
            stopped.append(f"leftover {name} (pid {pid})")
        pg = self._leftover_postgres()
        if pg is not None:
            pid = pg.postmaster_pid()
            pg.stop()
            stopped.append(f"leftover postgres (pid {pid})")
        if stopped:
            echo(f"stopped what an earlier run of this checkout left running: {', '.join(stopped)}")
        return stopped

    # -- health -------------------------------------------------------------------------------------
    def _ports_of(self, name: str, info: dict[str, Any]) -> list[int]:
        if name == "azurite":
            return [p for p in (info.get("blob_port"), info.get("queue_port"), info.get("table_port")) if p]
        return [info["port"]] if info.get("port") else []

    def check(self, name: str, info: dict[str, Any]) -> str | None:
        """None when the component is up (the process the stack started answers on its port and passes its
        health check); otherwise what is wrong, in a few words."""
        if name == "postgres":
            if not info.get("embedded"):
                return None
            pg = EmbeddedPostgres(Path(info["data_dir"]), info["port"])
            pid = pg.postmaster_pid()
            if not pid or not _alive(pid):
                return "not running"
            return self._check_ports(pid, [pg.port]) or self._check_postgres(pg.url)
        pid = info.get("pid")
        if not self._marked(pid):
            return "not running" if not pid or not _alive(pid) else f"pid {pid} is not the process it started"
        problem = self._check_ports(pid, self._ports_of(name, info))
        if problem:
            return problem
        try:
            if name == "azurite":
                for port in (info["blob_port"], info["queue_port"]):
                    server = httpx.get(f"http://127.0.0.1:{port}/devstoreaccount1?comp=list",
                                       timeout=3).headers.get("server", "")
                    if not server.startswith("Azurite"):
                        return f"port {port} answers as {server or 'something else'}, not Azurite"
            elif name == "scoring":
                return self._check_scoring(info)
            elif name == "host":
                r = httpx.get(f"{info['url']}/admin/host/status", timeout=3)
                if r.status_code != 200 or r.json().get("state") != "Running":
                    return f"/admin/host/status answered {r.status_code} {r.text[:80]}"
        except httpx.HTTPError as exc:
            return f"no answer ({describe_error(exc)})"
        except ValueError:  # not the JSON the component answers with
            return "answers, but not as itself"
        return None

    @staticmethod
    def _check_ports(pid: int, ports: list[int]) -> str | None:
        for port in ports:
            if not owns_port(pid, port):
                others = [h for h in port_holders(port) if h not in process_family(pid)]
                return f"not listening on port {port}" + (
                    f", which {describe_process(others[0])} holds" if others else "")
        return None

    @staticmethod
    def _check_postgres(url: str) -> str | None:
        import psycopg2

        try:
            psycopg2.connect(url, connect_timeout=3).close()
        except psycopg2.Error as exc:
            return f"refuses connections ({describe_error(exc)})"
        return None

    def _check_scoring(self, info: dict[str, Any]) -> str | None:
        r = httpx.get(f"{info['url']}/readyz", timeout=3)
        if r.status_code != 200:
            return f"/readyz answered {r.status_code}"
        expected = info.get("backend")
        if expected:
            key = os.environ.get("SCORING_API_KEY") or self._values_or_empty().get("SCORING_API_KEY")
            r = httpx.get(f"{info['url']}/v1/model", timeout=3, headers={"X-API-Key": key} if key else {})
            if r.status_code != 200:
                return f"/v1/model answered {r.status_code}"
            running = r.json().get("backend")
            if running != expected:
                return f"runs backend {running!r}, not the configured {expected!r}"
        return None

    @staticmethod
    def _expected_backend(env: dict[str, str]) -> str | None:
        """The scoring backend the settings ask for: SCORING_BACKEND, or with 'auto' and no model the HOG
        fallback; None when the scoring service picks it from the model file (then any is accepted)."""
        backend = (env.get("SCORING_BACKEND") or "auto").strip().lower()
        if backend != "auto":
            return backend
        return None if (env.get("SCORING_MODEL_PATH") or "").strip() else "hog"

    # -- up -----------------------------------------------------------------------------------------
    def up(self, *, demo: bool = False, echo: Callable[[str], Any] = print,
           lock_wait_s: float | None = None) -> dict[str, Any]:
        with self._locked("up", echo, lock_wait_s):
            self._refuse_running_or_clean(echo)
            return self._up(demo)

    def _refuse_running_or_clean(self, echo: Callable[[str], Any]) -> None:
        """Refuse when the stack is up; otherwise stop whatever an earlier run left (recorded or not)."""
        state = self.read_state() or {}
        comps = state.get("components", {})
        if comps and state.get("phase", "ready") == "ready":
            problems = {n: self.check(n, c) for n, c in comps.items()}
            if not any(problems.values()):
                running = comps.get("scoring", {}).get("backend")
                wanted = self._expected_backend({**self._values_or_empty(), **os.environ})
                drift = (f" with scoring backend {running!r}, not the {wanted!r} asked for now"
                         if running and wanted and running != wanted else "")
                raise StackError(f"the stack is already running{drift}: `trapalert stack status` shows it, "
                                 "`trapalert stack down` stops it", step="check")
            echo("the stack of an earlier run is only partly up ("
                 + ", ".join(f"{n}: {p}" for n, p in problems.items() if p) + "); stopping the rest")
        stopped = self._stop_recorded(comps)
        if stopped:
            echo("stopped what an earlier `trapalert stack up` left running: " + ", ".join(stopped))
        self._stop_leftovers({c["pid"] for c in comps.values() if c.get("pid")}, echo)
        self.state_file.unlink(missing_ok=True)

    def _preflight_ports(self, embedded_pg: bool) -> None:
        wanted = [("host", "the Functions host"), ("scoring", "the scoring service"),
                  ("blob", "Azurite blob"), ("queue", "Azurite queue"), ("table", "Azurite table")]
        if embedded_pg:
            wanted.append(("postgres", "PostgreSQL"))
        for key, what in wanted:
            if key == "scoring" and not (self.root / "scoring" / "__main__.py").exists():
                continue
            port = self._port(key)
            holders = port_holders(port)
            if holders:
                raise StackError(
                    f"port {port} ({what}) is in use by {describe_process(holders[0])}: stop that process, "
                    f"or set TRAPALERT_{key.upper()}_PORT to a free port", step="ports")

    def _up(self, demo: bool) -> dict[str, Any]:
        started = time.perf_counter()
        step = "settings"
        log: Path | None = None
        undo: list[Callable[[], None]] = []  # stops what this call started, newest first
        state: dict[str, Any] = {"phase": "starting", "owner_pid": os.getpid(), "started_at": time.time(),
                                 "components": {}, "settings": {}}
        timings: dict[str, float] = {}
        with self._signals_raise():
            try:
                values = self.local_values()
                self.logs.mkdir(parents=True, exist_ok=True)
                db_url = os.environ.get("DATABASE_URL") or values.get("DATABASE_URL")
                step = "ports"
                self._preflight_ports(embedded_pg=not db_url)
                base_env = self._child_env({**values, **os.environ})

                step, t = "azurite", time.perf_counter()
                azurite = Azurite(self.dir / "azurite", self._port("blob"), self._port("queue"),
                                  self._port("table"))
                log = azurite.data_dir / "azurite.log"
                undo.append(azurite.stop)
                azurite.start(env=base_env)
                info = {"pid": azurite.proc.pid, "blob_port": azurite.blob_port,
                        "queue_port": azurite.queue_port, "table_port": azurite.table_port}
                state["components"]["azurite"] = info
                self._write_state(state)
                self._require_up("azurite", info, azurite.proc)
                storage_conn = values.get("AzureWebJobsStorage", "UseDevelopmentStorage=true")
                if storage_conn == "UseDevelopmentStorage=true":
                    storage_conn = azurite.connection_string
                state["settings"]["AzureWebJobsStorage"] = storage_conn
                timings["azurite"] = time.perf_counter() - t

                step, t = "postgres", time.perf_counter()
                if not db_url:
                    pg = EmbeddedPostgres(self.dir / "postgres", self._port("postgres"))
                    log = pg.data_dir / "postgres.log"
                    undo.append(pg.stop)
                    state["components"]["postgres"] = {"embedded": True, "port": pg.port,
                                                       "data_dir": str(pg.data_dir)}
                    self._write_state(state)
                    pg.start()
                    db_url = pg.url
                    self._require_up("postgres", state["components"]["postgres"], None)
                else:
                    state["components"]["postgres"] = {"embedded": False}
                    log = None
                state["settings"]["DATABASE_URL"] = db_url
                self._write_state(state)
                timings["postgres"] = time.perf_counter() - t

                step, t = "migrate", time.perf_counter()
                from ..db import Database
                from ..db.migrate import migrate

                db = Database(db_url)
                undo.append(db.close)
                migrate(db)
                step = "storage"
                Storage(connection_string=storage_conn).ensure_resources()
                timings["migrate+resources"] = time.perf_counter() - t

                env = {**base_env, "AzureWebJobsStorage": storage_conn, "DATABASE_URL": db_url}
                step, t = "scoring", time.perf_counter()
                if (self.root / "scoring" / "__main__.py").exists():
                    port = self._port("scoring")
                    log = self.logs / "scoring.log"
                    proc = self._spawn("scoring", [sys.executable, "-m", "scoring", "--host", "127.0.0.1",
                                                   "--port", str(port)], env)
                    undo.append(lambda p=proc: stop_process(p, timeout_s=10))
                    scoring_url = f"http://127.0.0.1:{port}"
                    info = {"pid": proc.pid, "port": port, "url": scoring_url,
                            "backend": self._expected_backend(env)}
                    state["components"]["scoring"] = info
                    self._write_state(state)
                    self._wait_http(f"{scoring_url}/readyz", 120, proc, "scoring service", log)
                    self._require_up("scoring", info, proc)
                    env["SCORING_URL"] = scoring_url
                    state["settings"]["SCORING_URL"] = scoring_url
                timings["scoring"] = time.perf_counter() - t

                step, t = "host", time.perf_counter()
                host_port = self._port("host")
                log = self.logs / "functions-host.log"
                proc = self._spawn("functions-host", [
                    sys.executable, "-m", "functions.localhost", "--script-root", str(self.root),
                    "--port", str(host_port), "--settings", str(self.settings_file)], env)
                undo.append(lambda p=proc: stop_process(p, timeout_s=35))
                info = {"pid": proc.pid, "port": host_port, "url": f"http://127.0.0.1:{host_port}"}
                state["components"]["host"] = info
                self._write_state(state)
                self._wait_http(f"{info['url']}/admin/host/status", 60, proc, "Functions host", log)
                self._require_up("host", info, proc)
                timings["host"] = time.perf_counter() - t

                if demo:
                    step, log = "demo", None
                    from .demo import create_demo

                    state["demo"] = create_demo(db, self.dir)
                db.close()
            except BaseException as exc:
                stopped = self._undo(undo)
                interrupted = isinstance(exc, _Interrupted | KeyboardInterrupt)
                cause = "interrupted" if interrupted else describe_error(exc)
                hint = _log_hint(log) if log and step in ("azurite", "postgres", "scoring", "host") else ""
                if hint and hint not in cause:
                    cause = f"{cause} ({hint})"
                raise StackError(
                    f"stack up failed at step '{step}': {cause}; "
                    + ("stopped what it had started" if stopped else "nothing was left running")
                    + (f"; logs in {self.logs}/" if step != "ports" else ""),
                    step=step,
                    details="".join(traceback.format_exception(exc)) + _log_tail(log)) from exc

        key = values.get("TRAPALERT_LOCAL_FUNCTION_KEY", "")
        state["webhook_url"] = f"http://127.0.0.1:{host_port}/api/{names.INBOUND_ROUTE}?code={key}"
        state["console_url"] = console_url(f"http://127.0.0.1:{host_port}")  # sign in: console login-url
        state["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
        state["startup_s"] = round(time.perf_counter() - started, 2)
        state["phase"] = "ready"
        self._write_state(state)
        return state

    def _undo(self, undo: list[Callable[[], None]]) -> bool:
        """Run the undo steps newest first, whatever happens; then forget the state. True when any ran."""
        with self._signals_ignored():
            for action in reversed(undo):
                with contextlib.suppress(Exception):
                    action()
            self.state_file.unlink(missing_ok=True)
        return bool(undo)

    def _require_up(self, name: str, info: dict[str, Any], proc: subprocess.Popen | None,
                    settle_s: float = 10) -> None:
        """The component answers as itself, from the process just started (a few seconds to bind every
        port); otherwise ServiceError naming what is wrong."""
        deadline = time.monotonic() + settle_s
        while (problem := self.check(name, info)) is not None:
            if proc is not None and proc.poll() is not None:
                problem = f"exited with code {proc.returncode}"
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        if problem:
            raise ServiceError(f"{name} is not up: {problem}")

    @contextlib.contextmanager
    def _signals_raise(self) -> Iterator[None]:
        """SIGTERM and SIGHUP interrupt `up` like Ctrl-C does, so that it stops what it started."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, _frame):
            raise _Interrupted(signal.Signals(signum).name)

        saved = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
        try:
            yield
        finally:
            for s, h in saved.items():
                signal.signal(s, h)

    @contextlib.contextmanager
    def _signals_ignored(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
        try:
            yield
        finally:
            for s, h in saved.items():
                signal.signal(s, h)

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as log:
            return subprocess.Popen(cmd, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def _wait_http(self, url: str, timeout_s: float, proc: subprocess.Popen, what: str, log: Path) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServiceError(f"{what} exited with code {proc.returncode}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise ServiceError(f"{what} not ready at {url} after {timeout_s:.0f} s")

    # -- down ---------------------------------------------------------------------------------------
    def down(self, *, echo: Callable[[str], Any] = lambda _m: None,
             lock_wait_s: float | None = None) -> list[str]:
        """Stop what the stack started (recorded in its state) and any leftover of this checkout's stack
        (a killed `up`); returns what was stopped."""
        with self._locked("down", echo, lock_wait_s):
            state = self.read_state() or {}
            comps = state.get("components", {})
            stopped = self._stop_recorded(comps)
            known = {c["pid"] for c in comps.values() if c.get("pid")}
            stopped += self._stop_leftovers(known, lambda _m: None)
            self.state_file.unlink(missing_ok=True)
            return stopped

    def _stop_recorded(self, comps: dict[str, Any]) -> list[str]:
        stopped = []
        for name in STOP_ORDER:
            info = comps.get(name)
            if info and self._marked(info.get("pid")):  # never a recycled pid
                stop_process(pid=info["pid"], timeout_s=35 if name == "host" else 10)
                stopped.append(name)
        pg = comps.get("postgres", {})
        if pg.get("embedded"):
            server = EmbeddedPostgres(Path(pg["data_dir"]), pg["port"])
            pid = server.postmaster_pid()
            if pid and _alive(pid):
                server.stop()
                stopped.append("postgres")
        return stopped

    # -- status -------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        state = self.read_state()
        holder = self.lock_holder()
        known = {c["pid"] for c in (state or {}).get("components", {}).values() if c.get("pid")}
        leftovers = [f"{n} (pid {p})" for n, p in self.find_leftovers(known)]
        if not state or not state.get("components"):
            out: dict[str, Any] = {"running": False, "components": {}}
            if leftovers:
                out["leftovers"] = leftovers
            if holder:
                out["in_progress"] = holder
            return out
        out = {"running": True, "webhook_url": state.get("webhook_url"),
               "console_url": state.get("console_url"), "components": {},
               "logs": str(self.logs)}
        for name, info in state.get("components", {}).items():
            entry = dict(info)
            if name == "postgres" and not info.get("embedded"):
                entry["state"] = "external"
            else:
                problem = self.check(name, info)
                entry["state"] = "running" if problem is None else (
                    "stopped" if problem == "not running" else "unhealthy")
                if problem and problem != "not running":
                    entry["problem"] = problem
            out["components"][name] = entry
        out["running"] = state.get("phase", "ready") == "ready" and all(
            c["state"] in ("running", "external") for c in out["components"].values())
        if state.get("phase") == "starting":
            out["in_progress" if holder else "unfinished"] = holder or (
                "an earlier `trapalert stack up` did not finish: `trapalert stack down` stops what it "
                "started")
        if leftovers:
            out["leftovers"] = leftovers
        try:
            storage = Storage(connection_string=state["settings"]["AzureWebJobsStorage"])
            out["queues"] = {q: storage.queue_depth(q) for q in names.ALL_QUEUES}
        except Exception as exc:  # noqa: BLE001 - status reports what it can
            out["queues"] = {"error": describe_error(exc)}
        return out
