"""`trapalert stack up|down|status`: the whole pipeline on one machine, with no account anywhere.

State (ports, pids, addresses) is kept in .trapalert/stack.json; data and logs under .trapalert/.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from .. import names
from ..adapters.storage import Storage
from .services import (
    PROJECT_ROOT,
    Azurite,
    EmbeddedPostgres,
    ServiceError,
    _alive,
    stop_process,
)

DEFAULT_PORTS = {"host": 7071, "scoring": 8081, "blob": 10000, "queue": 10001, "table": 10002,
                 "postgres": 54329}


class Stack:
    def __init__(self, root: Path = PROJECT_ROOT, state_dir: Path | None = None,
                 settings_file: Path | None = None):
        self.root = root
        self.dir = state_dir or root / ".trapalert"
        self.state_file = self.dir / "stack.json"
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

    def read_state(self) -> dict[str, Any] | None:
        if not self.state_file.exists():
            return None
        return json.loads(self.state_file.read_text())

    def _write_state(self, state: dict[str, Any]) -> None:
        self.dir.mkdir(exist_ok=True)
        self.state_file.write_text(json.dumps(state, indent=2))
        os.chmod(self.state_file, 0o600)

    def _port(self, name: str) -> int:
        return int(os.environ.get(f"TRAPALERT_{name.upper()}_PORT", DEFAULT_PORTS[name]))

    # -- up -----------------------------------------------------------------------------------------
    def up(self, *, demo: bool = False, echo=print) -> dict[str, Any]:
        started = time.perf_counter()
        state = self.read_state()
        if state and self._alive_components(state):
            raise ServiceError("the stack is already running (`trapalert stack down` first, or "
                               "`trapalert stack status`)")
        values = self.local_values()
        self.logs.mkdir(parents=True, exist_ok=True)
        state = {"started_at": time.time(), "components": {}, "settings": {}}
        timings: dict[str, float] = {}

        t = time.perf_counter()
        azurite = Azurite(self.dir / "azurite", self._port("blob"), self._port("queue"), self._port("table"))
        azurite.start()
        state["components"]["azurite"] = {"pid": azurite.proc.pid, "blob_port": azurite.blob_port,
                                          "queue_port": azurite.queue_port}
        storage_conn = values.get("AzureWebJobsStorage", "UseDevelopmentStorage=true")
        if storage_conn == "UseDevelopmentStorage=true":
            storage_conn = azurite.connection_string
        state["settings"]["AzureWebJobsStorage"] = storage_conn
        self._write_state(state)
        timings["azurite"] = time.perf_counter() - t

        t = time.perf_counter()
        db_url = os.environ.get("DATABASE_URL") or values.get("DATABASE_URL")
        if not db_url:
            pg = EmbeddedPostgres(self.dir / "postgres", self._port("postgres")).start()
            db_url = pg.url
            state["components"]["postgres"] = {"embedded": True, "port": pg.port, "data_dir": str(pg.data_dir)}
        else:
            state["components"]["postgres"] = {"embedded": False}
        state["settings"]["DATABASE_URL"] = db_url
        self._write_state(state)
        timings["postgres"] = time.perf_counter() - t

        t = time.perf_counter()
        from ..db import Database
        from ..db.migrate import migrate

        db = Database(db_url)
        migrate(db)
        Storage(connection_string=storage_conn).ensure_resources()
        timings["migrate+resources"] = time.perf_counter() - t

        env = {**values, **os.environ, "AzureWebJobsStorage": storage_conn, "DATABASE_URL": db_url}
        t = time.perf_counter()
        if (self.root / "scoring" / "__main__.py").exists():
            port = self._port("scoring")
            proc = self._spawn("scoring", [sys.executable, "-m", "scoring", "--host", "127.0.0.1",
                                           "--port", str(port)], env)
            scoring_url = f"http://127.0.0.1:{port}"
            self._wait_http(f"{scoring_url}/readyz", 120, proc, "scoring service")
            state["components"]["scoring"] = {"pid": proc.pid, "url": scoring_url}
            env["SCORING_URL"] = scoring_url
            state["settings"]["SCORING_URL"] = scoring_url
        timings["scoring"] = time.perf_counter() - t
        self._write_state(state)

        t = time.perf_counter()
        host_port = self._port("host")
        proc = self._spawn("functions-host", [sys.executable, "-m", "functions.localhost", "--script-root",
                                              str(self.root), "--port", str(host_port),
                                              "--settings", str(self.settings_file)], env)
        self._wait_http(f"http://127.0.0.1:{host_port}/admin/host/status", 60, proc, "Functions host")
        state["components"]["host"] = {"pid": proc.pid, "url": f"http://127.0.0.1:{host_port}"}
        timings["host"] = time.perf_counter() - t
        self._write_state(state)

        if demo:
            from .demo import create_demo

            state["demo"] = create_demo(db, self.dir)
        db.close()
        key = values.get("TRAPALERT_LOCAL_FUNCTION_KEY", "")
        state["webhook_url"] = f"http://127.0.0.1:{host_port}/api/{names.INBOUND_ROUTE}?code={key}"
        state["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
        state["startup_s"] = round(time.perf_counter() - started, 2)
        self._write_state(state)
        return state

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        return subprocess.Popen(cmd, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def _wait_http(self, url: str, timeout_s: float, proc: subprocess.Popen, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServiceError(f"{what} exited with code {proc.returncode}; see {self.logs}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise ServiceError(f"{what} not ready at {url} after {timeout_s:.0f} s; see {self.logs}")

    # -- down ---------------------------------------------------------------------------------------
    def down(self) -> list[str]:
        state = self.read_state()
        if not state:
            return []
        stopped = []
        comps = state.get("components", {})
        for name in ("host", "scoring", "azurite"):
            info = comps.get(name)
            if info and info.get("pid") and _alive(info["pid"]):
                stop_process(pid=info["pid"], timeout_s=35 if name == "host" else 10)
                stopped.append(name)
        pg = comps.get("postgres", {})
        if pg.get("embedded"):
            EmbeddedPostgres(Path(pg["data_dir"]), pg["port"]).stop()
            stopped.append("postgres")
        self.state_file.unlink(missing_ok=True)
        return stopped

    # -- status -------------------------------------------------------------------------------------
    def _alive_components(self, state: dict[str, Any]) -> list[str]:
        return [n for n, c in state.get("components", {}).items() if c.get("pid") and _alive(c["pid"])]

    def status(self) -> dict[str, Any]:
        state = self.read_state()
        if not state:
            return {"running": False, "components": {}}
        out: dict[str, Any] = {"running": True, "webhook_url": state.get("webhook_url"), "components": {},
                               "logs": str(self.logs)}
        for name, info in state.get("components", {}).items():
            entry = dict(info)
            if info.get("pid"):
                entry["state"] = "running" if _alive(info["pid"]) else "stopped"
            elif name == "postgres" and info.get("embedded"):
                entry["state"] = "running" if EmbeddedPostgres(Path(info["data_dir"]), info["port"]).running() \
                    else "stopped"
            else:
                entry["state"] = "external"
            out["components"][name] = entry
        out["running"] = all(c["state"] in ("running", "external") for c in out["components"].values())
        try:
            storage = Storage(connection_string=state["settings"]["AzureWebJobsStorage"])
            out["queues"] = {q: storage.queue_depth(q) for q in names.ALL_QUEUES}
        except Exception as exc:  # noqa: BLE001 - status reports what it can
            out["queues"] = {"error": str(exc)}
        return out
