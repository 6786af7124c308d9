"""`trapalert stack up|status|down` brings the whole local stack up on a clean folder and stops it; a
component is reported up only when the process the stack started answers (not whatever holds its port).
More of what `stack up|down` guarantees: test_stack_guarantees.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from functions.localhost.services import PROJECT_ROOT, _alive, free_port, port_holders
from functions.localhost.stack import Stack, StackError
from tests.support.host import wait_until


class _Imposter(BaseHTTPRequestHandler):
    """Answers every GET with 200 and a ready body naming the configured backend."""
    backend = "hog"

    def do_GET(self):  # noqa: N802
        body = json.dumps({"status": "ready", "backend": self.backend}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stack_tmp():
    """Outside pytest's tmp root, which other pytest sessions reset to 0700 (PostgreSQL runs as another
    user when the tests run as root); see test_stack_guarantees.py."""
    path = Path(tempfile.mkdtemp(prefix="trapalert-stack-test-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_stack_up_status_down(stack_tmp, monkeypatch):
    tmp_path = stack_tmp
    for name in ("host", "scoring", "blob", "queue", "table", "postgres"):
        monkeypatch.setenv(f"TRAPALERT_{name.upper()}_PORT", str(free_port()))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    stack = Stack(PROJECT_ROOT, state_dir=tmp_path / "state", settings_file=tmp_path / "local.settings.json")
    imposter = None
    try:
        state = stack.up(demo=True)
        assert {"azurite", "postgres", "host"} <= set(state["components"])
        assert "?code=" in state["webhook_url"] and "/api/inbound/sendgrid" in state["webhook_url"]
        # the webhook answers and refuses a request without the key
        url = state["webhook_url"].split("?")[0]
        assert httpx.post(url).status_code == 401
        status = stack.status()
        assert status["running"] is True
        assert {c["state"] for c in status["components"].values()} == {"running"}
        assert status["queues"]["process-image"] == 0
        assert state["demo"]["camera"] == "DEMO-CAM-01"
        pids = [c["pid"] for c in state["components"].values() if c.get("pid")]
        assert all(_alive(p) for p in pids)

        # a second `up` refuses, in one line, and changes nothing
        with pytest.raises(StackError, match=r"^the stack is already running"):
            stack.up()
        assert all(_alive(p) for p in pids)

        # the scoring service must run the configured backend
        scoring = state["components"]["scoring"]
        other = "null" if scoring["backend"] != "null" else "hog"
        with monkeypatch.context() as m, pytest.raises(
                StackError, match=rf"^the stack is already running with scoring backend "
                                  rf"'{scoring['backend']}', not the '{other}' asked for now"):
            m.setenv("SCORING_BACKEND", other)
            stack.up()
        assert stack.check("scoring", scoring) is None
        assert stack.check("scoring", {**scoring, "backend": "frozen_graph"}) == \
            f"runs backend {scoring['backend']!r}, not the configured 'frozen_graph'"

        # the scoring service dies and something else answers on its port, even /readyz: not "running"
        os.killpg(scoring["pid"], signal.SIGKILL)
        wait_until(lambda: not port_holders(scoring["port"]), 10, message="the killed service's port")
        _Imposter.backend = scoring["backend"]
        imposter = ThreadingHTTPServer(("127.0.0.1", scoring["port"]), _Imposter)
        threading.Thread(target=imposter.serve_forever, daemon=True).start()
        assert httpx.get(f"{scoring['url']}/readyz").status_code == 200
        status = stack.status()
        assert status["running"] is False
        assert status["components"]["scoring"]["state"] == "stopped"
        assert status["components"]["host"]["state"] == "running"

        # `up` now stops what is left of the earlier stack, then names the process on the port
        messages: list[str] = []
        with pytest.raises(StackError) as err:
            stack.up(echo=messages.append)
        assert str(err.value).startswith(
            f"stack up failed at step 'ports': port {scoring['port']} (the scoring service) is in use by "
            f"pid {os.getpid()} (")
        assert any("only partly up (scoring: not running)" in m for m in messages)
        assert any(m.startswith("stopped what an earlier `trapalert stack up` left running: host, azurite, "
                                "postgres") for m in messages), messages
        assert not any(_alive(p) for p in pids)
        assert not (tmp_path / "state" / "stack.json").exists()
        assert port_holders(state["components"]["host"]["port"]) == []
    finally:
        if imposter is not None:
            imposter.shutdown()
            imposter.server_close()
        stopped = stack.down()
    assert stopped == []  # the failed `up` had stopped it all
    assert stack.status() == {"running": False, "components": {}}

