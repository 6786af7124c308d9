"""Start the local Functions host (`python -m functions.localhost`) as a real process for tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from functions.localhost.services import PROJECT_ROOT, stop_process

FUNCTION_KEY = "test-function-key"
MASTER_KEY = "test-master-key"


@dataclass
class HostProcess:
    script_root: Path
    env: dict[str, str]
    port: int
    log_path: Path
    host_json: Path | None = None
    proc: subprocess.Popen | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, route: str) -> str:
        return f"{self.url}/api/{route}"

    def start(self, timeout_s: float = 60) -> HostProcess:
        cmd = [sys.executable, "-m", "functions.localhost", "--script-root", str(self.script_root),
               "--port", str(self.port), "--settings", "/nonexistent/local.settings.json"]
        if self.host_json:
            cmd += ["--host-json", str(self.host_json)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd + self.extra_args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=PROJECT_ROOT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"host exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/admin/host/status", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"host not ready after {timeout_s} s:\n{self.log()[-3000:]}")

    def stop(self, timeout_s: float = 40) -> None:
        """Graceful stop (SIGTERM), as Azure does on scale-in or deployment."""
        stop_process(self.proc, timeout_s=timeout_s)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: the host dies with messages in flight."""
        if self.proc is not None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(10)
            self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def host_env(storage_connection: str, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TRAPALERT_LOCAL_"))}
    env.update({
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": storage_connection,
        "DATABASE_URL": database_url,
        "SCORING_URL": "http://127.0.0.1:9",  # nothing listens: tests that score pass their own
        "TRAPALERT_LOCAL_FUNCTION_KEY": FUNCTION_KEY,
        "TRAPALERT_LOCAL_MASTER_KEY": MASTER_KEY,
        "TRAPALERT_LOG_FORMAT": "json",
        "TRAPALERT_LOCAL_SETTINGS": "/nonexistent/local.settings.json",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def write_host_json(path: Path, **queues) -> Path:
    """A host.json like the project's with queue settings overridden (short delays for tests)."""
    data = json.loads((PROJECT_ROOT / "host.json").read_text())
    data["extensions"]["queues"].update(queues)
    path.write_text(json.dumps(data))
    return path


def wait_until(predicate, timeout_s: float = 20, interval_s: float = 0.05, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; return it, or fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {message}")
        time.sleep(interval_s)
