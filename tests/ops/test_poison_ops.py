"""Poison operations without a host: purge, the poison-queue cleanup, every queue has a monitor."""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from datetime import timedelta

import pytest
from click.testing import CliRunner

from functions import names
from functions.cli import cli
from functions.localhost.services import PROJECT_ROOT
from functions.middleware import chain_info
from functions.ops import poison as ops_poison


def _insert(db, queue, message_id, status="poisoned", age_days=0, body='{"x": 1}'):
    return db.fetchone(
        "INSERT INTO poison_records (queue, message_id, body, status, recorded_at) "
        "VALUES (%s, %s, %s, %s, now() - make_interval(days => %s)) RETURNING id",
        (queue, message_id, body, status, age_days),
    )["id"]


def test_purge_marks_old_records_and_removes_their_message_from_the_poison_queue(
    clean_db, clean_queues, app_settings
):
    storage = clean_queues
    pq = names.poison_queue(names.PROCESS_IMAGE_QUEUE)
    stuck = storage.queue(pq).send_message("eyJ4IjogMX0=")  # a monitor never consumed it
    other = storage.queue(pq).send_message("eyJ5IjogMn0=")
    old = _insert(clean_db, names.PROCESS_IMAGE_QUEUE, stuck.id, age_days=40)
    old_invalid = _insert(clean_db, names.SEND_ALERT_QUEUE, "m-invalid", status="invalid", age_days=31)
    old_replayed = _insert(clean_db, names.SEND_ALERT_QUEUE, "m-replayed", status="replayed", age_days=60)
    recent = _insert(clean_db, names.PROCESS_IMAGE_QUEUE, "m-recent", age_days=3)

    out = CliRunner().invoke(
        cli, ["poison", "purge", "--older-than", "30d", "--json"], catch_exceptions=False
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert result["ids"] == sorted([old, old_invalid]) and result["removed_from_queue"] == 1
    status = {r["id"]: r["status"] for r in clean_db.fetchall("SELECT id, status FROM poison_records")}
    assert status == {old: "purged", old_invalid: "purged", old_replayed: "replayed", recent: "poisoned"}
    left = [m.id for m in storage.queue(pq).peek_messages(max_messages=32)]
    assert left == [other.id]  # only the purged record's message was removed

    again = CliRunner().invoke(cli, ["poison", "purge", "--older-than", "30d"], catch_exceptions=False)
    assert "purged 0 records" in again.output
    bad = CliRunner().invoke(cli, ["poison", "purge", "--older-than", "soon"])
    assert bad.exit_code != 0 and "invalid duration" in bad.output


def test_purged_and_replayed_records_are_not_replayed(clean_db, clean_queues, app_settings):
    from functions.bootstrap import services

    svc = services()
    rid = _insert(clean_db, names.SEND_ALERT_QUEUE, "m1", status="purged")
    result = ops_poison.replay(svc.db, svc.storage, rid)
    assert not result.replayed and result.skipped[0]["reason"] == "already purged"
    assert svc.storage.queue_depth(names.SEND_ALERT_QUEUE) == 0


def test_parse_duration():
    assert ops_poison.parse_duration("30d") == timedelta(days=30)
    assert ops_poison.parse_duration("12h") == timedelta(hours=12)
    assert ops_poison.parse_duration("2w") == timedelta(weeks=2)
    with pytest.raises(ops_poison.PoisonError):
        ops_poison.parse_duration("30 days")


def _fresh_app():
    """function_app.py loaded under another name: get_functions() may be called once per app object."""
    spec = importlib.util.spec_from_file_location(
        "function_app_monitor_check", PROJECT_ROOT / "function_app.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.app


def test_every_queue_the_app_declares_has_a_poison_monitor():
    triggers = {}
    for f in _fresh_app().get_functions():
        trigger = f.get_trigger()
        if trigger.get_dict_repr()["type"] == "queueTrigger":
            triggers[trigger.get_dict_repr()["queueName"]] = f
    work = [q for q in triggers if not q.endswith(names.POISON_SUFFIX)]
    assert set(names.WORK_QUEUES) <= set(work)
    for queue in work:
        monitor = triggers.get(names.poison_queue(queue))
        assert monitor is not None, f"queue {queue} has no monitor on {names.poison_queue(queue)}"
        info = chain_info(monitor.get_user_function())
        assert info is not None and info.trigger == "poison" and info.queue == names.poison_queue(queue)
        source = inspect.getsource(info.handler)
        assert "poison.record(" in source, f"{monitor.get_function_name()} does not record poison messages"
    # and no monitor watches a poison queue of a queue nobody declares
    for queue in triggers:
        if queue.endswith(names.POISON_SUFFIX):
            assert queue[: -len(names.POISON_SUFFIX)] in triggers


class _QueueDown:
    """The real storage whose queues refuse every message (an outage while replaying)."""

    def __init__(self, storage):
        self._storage = storage

    def enqueue(self, queue, message, **kwargs):
        from functions.adapters.storage import StorageUnavailable

        raise StorageUnavailable(f"queue {queue} unreachable: test outage")

    def __getattr__(self, name):
        return getattr(self._storage, name)


def _messages(storage, queue: str) -> list[str]:
    return [m.content for m in storage.queue(queue).peek_messages(max_messages=32)]


def test_replay_goes_through_the_outbox_once_and_a_failed_flush_is_sent_by_the_next_replay(
    clean_db, clean_queues, app_settings
):
    from functions.bootstrap import services

    svc = services()
    body = '{"schema_version": 1, "correlation_id": "6a0f3c2e-1111-4a4a-9b9b-000000000001", "alert_id": 7}'
    rid = _insert(clean_db, names.SEND_ALERT_QUEUE, "m-down", body=body)

    down = ops_poison.replay(svc.db, _QueueDown(svc.storage), rid)
    assert not down.replayed and down.failed[0]["id"] == rid and "replay again" in down.failed[0]["error"]
    record = clean_db.fetchone("SELECT * FROM poison_records WHERE id = %s", (rid,))
    assert record["status"] == "replayed" and record["replay_message_id"] is None
    [pending] = svc.outbox.pending(f"poison:{rid}")
    assert pending["key"] == f"replay:{rid}" and "test outage" in pending["last_error"]
    assert _messages(svc.storage, names.SEND_ALERT_QUEUE) == []

    again = ops_poison.replay(svc.db, svc.storage, rid)  # the queue is back: the waiting message goes out
    assert [r["id"] for r in again.replayed] == [rid] and again.replayed[0]["replay_message_id"]
    assert _messages(svc.storage, names.SEND_ALERT_QUEUE) == [body]  # the original body, verbatim
    third = ops_poison.replay(svc.db, svc.storage, rid)
    assert not third.replayed and third.skipped[0]["reason"] == "already replayed"
    assert _messages(svc.storage, names.SEND_ALERT_QUEUE) == [body]  # never twice
    record = clean_db.fetchone("SELECT * FROM poison_records WHERE id = %s", (rid,))
    assert record["replay_message_id"] == again.replayed[0]["replay_message_id"]


def test_replay_all_sends_what_an_earlier_failed_flush_left_and_invalid_bodies_verbatim(
    clean_db, clean_queues, app_settings
):
    from functions.bootstrap import services

    svc = services()
    a = _insert(clean_db, names.PROCESS_IMAGE_QUEUE, "m-a", body='{"n": 1}')
    b = _insert(clean_db, names.PROCESS_IMAGE_QUEUE, "m-b", body='{"n": 2}')
    bad = _insert(clean_db, names.PROCESS_IMAGE_QUEUE, "m-bad", status="invalid", body="not json at all")

    down = ops_poison.replay_all(svc.db, _QueueDown(svc.storage))
    assert sorted(f["id"] for f in down.failed) == [a, b] and not down.replayed
    up = ops_poison.replay_all(svc.db, svc.storage)
    assert sorted(r["id"] for r in up.replayed) == [a, b] and not up.failed
    nothing_left = ops_poison.replay_all(svc.db, svc.storage)
    assert nothing_left.as_dict() == {"replayed": [], "skipped": [], "failed": []}
    assert sorted(_messages(svc.storage, names.PROCESS_IMAGE_QUEUE)) == ['{"n": 1}', '{"n": 2}']

    # invalid records are replayed by id only, with their body exactly as it was received
    assert [r["id"] for r in ops_poison.replay(svc.db, svc.storage, bad).replayed] == [bad]
    assert "not json at all" in _messages(svc.storage, names.PROCESS_IMAGE_QUEUE)
