"""The scoring service as a real subprocess (``python -m scoring``) on a free loopback port.

    with run_scoring_service({"SCORING_BACKEND": "null", "SCORING_NULL_RESULT": "person"}) as url:
        httpx.post(f"{url}/v1/detect", content=jpeg_bytes)

``url`` is a ``ScoringService``: a ``str`` (the base URL, e.g. ``http://127.0.0.1:41234``) that also has
fault-drill helpers: ``kill()`` (SIGKILL, as a crashed container), ``stop()`` (SIGTERM, graceful),
``restart()`` (same port and settings, waits for /readyz again), ``log()`` (what the service wrote), ``pid``.
The environment given replaces every ``SCORING_*`` variable inherited from the test process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ScoringServiceError(RuntimeError):
    """The service did not become ready (the message carries the end of its log)."""


class ScoringService(str):
    """The base URL of a running service, with helpers to kill, stop and restart it."""

    def __new__(cls, url: str, env: Mapping[str, str], port: int, ready_timeout: float):
        obj = super().__new__(cls, url)
        obj.url = url
        obj.port = port
        obj.env = dict(env)
        obj.ready_timeout = ready_timeout
        obj.proc = None
        obj._log = tempfile.NamedTemporaryFile(prefix="scoring-", suffix=".log", delete=False)
        return obj

    # -- process control ---------------------------------------------------------------------------------
    def start(self, wait: bool = True) -> ScoringService:
        if self.proc is not None and self.proc.poll() is None:
            raise ScoringServiceError("already running")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SCORING_")}
        full_env.update(self.env)
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), full_env.get("PYTHONPATH")]))
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scoring", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO_ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if wait:
            self.wait_ready()
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def wait_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise ScoringServiceError(
                        f"scoring service exited with {self.proc.returncode} before ready:\n"
                        f"{self.log()[-4000:]}"
                    )
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise ScoringServiceError(
            f"scoring service not ready after {timeout or self.ready_timeout} s:\n{self.log()[-4000:]}"
        )

    def kill(self) -> None:
        """SIGKILL, no goodbye (a crashed or evicted container)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait (graceful shutdown); SIGKILL if it does not stop in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def restart(self, wait: bool = True) -> ScoringService:
        self.stop()
        return self.start(wait=wait)

    def log(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        self.stop()
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)


@contextlib.contextmanager
def run_scoring_service(
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    ready_timeout: float = 60.0,
    wait: bool = True,
) -> Iterator[ScoringService]:
    """Start ``python -m scoring`` with ``env`` on ``port`` (free one by default); yield its base URL."""
    port = port or free_port()
    service = ScoringService(f"http://127.0.0.1:{port}", env or {}, port, ready_timeout)
    try:
        service.start(wait=wait)
        yield service
    finally:
        service.close()
