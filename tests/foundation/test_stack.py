"""`trapalert stack up|status|down` brings the whole local stack up on a clean folder and stops it."""

from __future__ import annotations

import httpx

from functions.localhost.services import PROJECT_ROOT, _alive, free_port
from functions.localhost.stack import Stack


def test_stack_up_status_down(tmp_path, monkeypatch):
    for name in ("host", "scoring", "blob", "queue", "table", "postgres"):
        monkeypatch.setenv(f"TRAPALERT_{name.upper()}_PORT", str(free_port()))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    stack = Stack(PROJECT_ROOT, state_dir=tmp_path / "state", settings_file=tmp_path / "local.settings.json")
    try:
        state = stack.up(demo=True)
        assert {"azurite", "postgres", "host"} <= set(state["components"])
        assert "?code=" in state["webhook_url"] and "/api/inbound/sendgrid" in state["webhook_url"]
        # the webhook answers and refuses a request without the key
        url = state["webhook_url"].split("?")[0]
        assert httpx.post(url).status_code == 401
        status = stack.status()
        assert status["running"] is True
        assert status["queues"]["process-image"] == 0
        assert state["demo"]["camera"] == "DEMO-CAM-01"
        pids = [c["pid"] for c in state["components"].values() if c.get("pid")]
        assert all(_alive(p) for p in pids)
    finally:
        stopped = stack.down()
    assert "host" in stopped and "postgres" in stopped
    assert not any(_alive(p) for p in pids)
    assert stack.status() == {"running": False, "components": {}}
