"""Poison flow through the real host: a message that fails five times is recorded at once, one notification
reaches ops for a storm, and after the cause is fixed `trapalert poison replay --all` delivers each message
exactly once (twice is safe)."""

from __future__ import annotations

import json
import time
import uuid

from click.testing import CliRunner

from functions.cli import cli
from tests.ops.conftest import DRILL_QUEUE, poison_rows
from tests.support.host import wait_until


def drill_message(n: int, park_id: int | None = None) -> tuple[str, str]:
    cid = str(uuid.uuid4())
    return cid, json.dumps({"schema_version": 1, "correlation_id": cid, "n": n, "park_id": park_id})


def trapalert(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def failures(db, cid: str) -> int:
    return db.fetchone("SELECT count(*) AS n FROM message_failures WHERE correlation_id = %s", (cid,))["n"]


def test_storm_notifies_ops_once_and_replay_all_delivers_exactly_once(
    drill_host, drill_hook, ops_hook, park, db, storage, app_settings
):
    n = 6
    sent = {}
    for i in range(n):
        cid, body = drill_message(i, park["id"])
        sent[cid] = body
        storage.enqueue(DRILL_QUEUE, body)

    rows = wait_until(
        lambda: len(poison_rows(db)) == n and poison_rows(db), timeout_s=30, message=f"{n} poison records"
    )
    assert {str(r["correlation_id"]) for r in rows} == set(sent)
    for r in rows:
        assert r["status"] == "poisoned"
        # the message as first sent (the retry bookkeeping removed; key order is the outbox's)
        assert json.loads(r["body"]) == json.loads(sent[str(r["correlation_id"])])
        # tried every ~1 s (RETRY_SCHEDULE_S=1), poisoned when the next try would pass the 6 s horizon
        assert r["dequeue_count"] == failures(db, r["correlation_id"]) >= 2
        assert "500" in r["last_error"] and "HTTPStatusError" in r["last_error"]
        assert r["inserted_at"] is not None and r["message_id"]
    assert not drill_hook.deliveries  # nothing got through while broken

    # One ops notification for the whole storm; the rest is counted for the summary.
    ops_hook.wait_for(1, timeout=5)
    time.sleep(1.0)
    assert len(ops_hook.deliveries) == 1, [d["notice"]["title"] for d in ops_hook.deliveries]
    notice = ops_hook.deliveries[0]["notice"]
    assert ops_hook.deliveries[0]["event"] == "alert.ops"
    assert notice["kind"] == "ops" and DRILL_QUEUE in notice["title"]
    assert "trapalert poison replay --all" in notice["summary"]
    assert notice["ops_url"].endswith("/api/console/ops")  # the console's admin page, never a key
    state = db.fetchone("SELECT * FROM ops_notify_state")
    assert state["suppressed"] == n - 1 and state["suppressed_queues"] == [DRILL_QUEUE]

    listed = json.loads(trapalert("poison", "list", "--queue", DRILL_QUEUE, "--status", "poisoned", "--json"))
    assert len(listed) == n

    # The cause is fixed: the receiver works again. Replay everything: each message delivered once.
    drill_hook.recover()
    out = trapalert("poison", "replay", "--all", "--queue", DRILL_QUEUE)
    assert f"{n} replayed, 0 skipped, 0 failed" in out
    wait_until(lambda: len(drill_hook.deliveries) >= n, timeout_s=15, message="replayed deliveries")
    again = trapalert("poison", "replay", "--all")
    assert "0 replayed" in again
    time.sleep(1.5)
    assert sorted(d["n"] for d in drill_hook.deliveries) == list(range(n))
    assert {d["correlation_id"] for d in drill_hook.deliveries} == set(sent)  # same trace end to end
    rows = poison_rows(db)
    assert {r["status"] for r in rows} == {"replayed"}
    assert all(r["replay_message_id"] and r["replayed_at"] for r in rows)
    assert len(poison_rows(db)) == n  # nothing poisoned again


def test_poisoned_message_is_listed_within_a_second_and_replay_twice_is_safe(
    drill_host, drill_hook, db, storage, app_settings
):
    cid, body = drill_message(42)
    storage.enqueue(DRILL_QUEUE, body)
    wait_until(lambda: failures(db, cid) >= 2, timeout_s=20, message="two failed attempts")

    def listed():
        rows = json.loads(trapalert("poison", "list", "--json"))
        return [r for r in rows if r["correlation_id"] == cid]

    rows = wait_until(listed, timeout_s=10, interval_s=0.05, message="the record in `poison list`")
    record_id = rows[0]["id"]
    lag = db.fetchone(
        "SELECT extract(epoch FROM p.recorded_at - (SELECT max(failed_at) FROM message_failures "
        "WHERE correlation_id = p.correlation_id)) AS s FROM poison_records p WHERE p.id = %s",
        (record_id,),
    )["s"]
    assert 0 <= lag < 1.0, f"recorded {lag} s after the last failure"
    assert rows[0]["queue"] == DRILL_QUEUE and rows[0]["status"] == "poisoned"

    shown = trapalert("poison", "show", str(record_id))
    assert cid in shown and "HTTPStatusError" in shown and '"n": 42' in shown
    detail = json.loads(trapalert("poison", "show", str(record_id), "--json"))
    # every try was a new message scheduled by the retry middleware (dequeued once each)
    assert len(detail["failures"]) >= 2 and {f["dequeue_count"] for f in detail["failures"]} == {1}

    drill_hook.recover()
    first = trapalert("poison", "replay", str(record_id))
    assert f"replayed {record_id} onto {DRILL_QUEUE}" in first
    second = trapalert("poison", "replay", str(record_id))
    assert f"skipped {record_id}: already replayed" in second
    wait_until(lambda: drill_hook.deliveries, timeout_s=10, message="the replayed delivery")
    time.sleep(1.0)
    assert [d["correlation_id"] for d in drill_hook.deliveries] == [cid]

    missing = CliRunner().invoke(cli, ["poison", "replay", "999999"])
    assert missing.exit_code != 0 and "no poison record 999999" in missing.output
