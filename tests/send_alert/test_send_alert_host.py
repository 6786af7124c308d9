"""send-alert through the real local Functions host: messages put on the send-alert queue."""

from __future__ import annotations

from functions import names
from functions.messages import SendAlert
from tests.support.host import wait_until

from . import helpers as h

FAST = {"visibilityTimeout": "00:00:00", "maxPollingInterval": "00:00:00.200"}


def _delivered(db, alert_id, version=1, n=3):
    rows = h.deliveries(db, alert_id)
    return (
        len(rows) == n
        and all(r["status"] == "delivered" and r["delivered_version"] >= version for r in rows.values())
        and rows
    )


def test_queue_message_delivers_alert_and_update_through_the_host(
    clean_db, clean_queues, storage, fakes, host_factory
):
    er, cm, sg = fakes
    db = clean_db
    park_id = h.add_park(db)
    camera_id = h.add_camera(db, park_id)
    h.three_channels(db, park_id, er, cm, sg)
    image_id = h.add_image(db, storage, park_id, camera_id)
    alert_id = h.add_alert(db, park_id, camera_id, image_id)
    host = host_factory(host_json=FAST, **h.SECRET_ENV)

    storage.enqueue(names.SEND_ALERT_QUEUE, SendAlert(alert_id=alert_id))
    wait_until(lambda: _delivered(db, alert_id), 30, message="three deliveries")
    image2 = h.add_image(db, storage, park_id, camera_id, seed=5)
    h.update_alert(db, alert_id, image2, image_count=2)
    storage.enqueue(names.SEND_ALERT_QUEUE, SendAlert(alert_id=alert_id, version=2, reason="update"))
    storage.enqueue(
        names.SEND_ALERT_QUEUE, SendAlert(alert_id=alert_id, version=2, reason="update")
    )  # duplicate
    rows = wait_until(lambda: _delivered(db, alert_id, 2), 30, message="version 2 delivered")
    wait_until(lambda: storage.queue_depth(names.SEND_ALERT_QUEUE) == 0, 10, message="queue drained")

    assert len(er.events) == 1 and len(er.requests_to(r"^/api/v1\.0/activity/events/?$", "POST")) == 1
    assert len(next(iter(er.events.values()))["files"]) == 2
    assert len(cm.events) == 1 and len(sg.messages) == 2
    assert {r["attempts"] for r in rows.values()} == {2}
    assert "Executed 'Functions.send-alert' (Succeeded" in host.log()


def test_poison_after_the_retry_horizon_names_the_failing_channel(
    clean_db, clean_queues, storage, fakes, host_factory
):
    er, cm, sg = fakes
    db = clean_db
    park_id = h.add_park(db)
    camera_id = h.add_camera(db, park_id)
    h.three_channels(db, park_id, er, cm, sg)
    alert_id = h.add_alert(db, park_id, camera_id, h.add_image(db, storage, park_id, camera_id))
    er.fail_until_recovered(503, path="/api/v1.0/activity/events")
    # retried every ~1 s (middleware/retry.py), poisoned once the next try would pass the 5 s horizon
    host_factory(host_json=FAST, RETRY_SCHEDULE_S="1", RETRY_HORIZON_SEND_ALERT_S="5", **h.SECRET_ENV)

    msg = SendAlert(alert_id=alert_id)
    storage.enqueue(names.SEND_ALERT_QUEUE, msg)
    record = wait_until(
        lambda: db.fetchone("SELECT * FROM poison_records WHERE queue = %s", (names.SEND_ALERT_QUEUE,)),
        40,
        message="poison record",
    )
    assert "ChannelsFailed" in record["last_error"]
    assert f"alert {alert_id} v1 not delivered to channel 'er-main' (earthranger" in record["last_error"]
    assert "503" in record["last_error"] and "rangers-email" not in record["last_error"]
    assert str(record["correlation_id"]) == str(msg.correlation_id)
    failures = db.fetchall(
        "SELECT dequeue_count FROM message_failures WHERE queue = %s ORDER BY id", (names.SEND_ALERT_QUEUE,)
    )
    # each try is a new message (dequeued once), scheduled by the retry middleware, not the host's redelivery
    assert len(failures) >= 3 and {f["dequeue_count"] for f in failures} == {1}
    retries = db.fetchall("SELECT body, delay_s FROM outbox WHERE key LIKE 'retry:send-alert:%%' ORDER BY id")
    assert [r["body"]["attempt"] for r in retries] == list(range(1, len(failures)))
    assert all(r["delay_s"] in (1, 2) for r in retries)  # 1 s +-10 %, whole seconds up
    rows = h.deliveries(db, alert_id)
    assert (rows["er-main"]["status"], rows["er-main"]["attempts"]) == ("failed", len(failures))
    assert rows["cmore-ops-room"]["attempts"] == 1 and rows["rangers-email"]["attempts"] == 1
    assert len(cm.events) == 1 and len(sg.messages) == 1  # the others were delivered once, not three times
    assert not er.events
