"""The sweeper timer (functions/handlers/sweeper.py) in-process against real PostgreSQL and Azurite: what was
left behind is re-driven once, what waits for a retry or is fine is left alone."""

from __future__ import annotations

import json

from functions import names
from functions.adapters.outbox import OutboxMessage
from functions.handlers import sweeper
from functions.messages import SendAlert

from . import helpers as h


def _queued(storage, queue: str) -> list[dict]:
    return [json.loads(m.content) for m in storage.queue(queue).peek_messages(max_messages=32)]


def _age(db, table: str, row_id: int, minutes: int) -> None:
    column = "created_at" if table == "images" else "updated_at"
    db.execute(
        f"UPDATE {table} SET {column} = now() - make_interval(mins => %s) WHERE id = %s", (minutes, row_id)
    )


def test_the_sweeper_redrives_what_was_left_behind_once(env, park, fakes):
    er, cm, sg = fakes
    db, storage = park["db"], park["storage"]
    h.add_channel(db, park["park_id"], "er-main", "earthranger", h.er_config(er))

    # a photo scored but never decided (its message was lost), ten minutes ago
    lost_image = h.add_image(db, storage, park["park_id"], park["camera_id"], seed=1)
    _age(db, "images", lost_image, 10)
    # a fresh one: its message may still be on its way
    fresh_image = h.add_image(db, storage, park["park_id"], park["camera_id"], seed=2)
    # one waiting for a retry in 15 minutes (the middleware scheduled it a minute ago)
    waiting_image = h.add_image(db, storage, park["park_id"], park["camera_id"], seed=3)
    _age(db, "images", waiting_image, 10)
    retry = SendAlert(alert_id=1)  # any message about the image: the subject is what counts
    env.outbox.send_later(
        OutboxMessage(
            names.PROCESS_IMAGE_QUEUE,
            {"schema_version": 1, "image_id": waiting_image, "correlation_id": str(retry.correlation_id)},
            key="retry:test",
            scope="retry:test",
            delay_s=900,
        )
    )
    # an alert no channel received (its send-alert message was lost), ten minutes ago
    lost_alert = h.add_alert(db, park["park_id"], park["camera_id"], lost_image)
    _age(db, "alerts", lost_alert, 10)
    # an outbox row whose flush failed a minute ago
    db.execute(
        "INSERT INTO outbox (queue, body, key, scope, created_at) VALUES ('send-alert', "
        "'{\"schema_version\": 1, \"alert_id\": 424242}', 'k-unsent', 's', now() - interval '1 minute')"
    )

    done = sweeper.handle(None, env)
    assert done == {"outbox": 1, "images": 1, "alerts": 1}
    images = [m for m in _queued(storage, names.PROCESS_IMAGE_QUEUE)]
    assert [m["image_id"] for m in images] == [lost_image]  # not the fresh one, not the waiting one
    alerts = _queued(storage, names.SEND_ALERT_QUEUE)
    assert sorted(m["alert_id"] for m in alerts) == sorted([lost_alert, 424242])
    assert {m["version"] for m in alerts if m["alert_id"] == lost_alert} == {1}

    # a second run right after: what it sent is now in flight, nothing is sent twice
    assert sweeper.handle(None, env) == {"outbox": 0, "images": 0, "alerts": 0}
    assert len(_queued(storage, names.PROCESS_IMAGE_QUEUE)) == 1
    assert fresh_image not in [m["image_id"] for m in _queued(storage, names.PROCESS_IMAGE_QUEUE)]


def test_delivered_and_refused_alerts_are_not_swept(env, park, fakes):
    er, cm, sg = fakes
    db, storage = park["db"], park["storage"]
    channel = h.add_channel(db, park["park_id"], "er-main", "earthranger", h.er_config(er))
    delivered = h.add_alert(db, park["park_id"], park["camera_id"], None)
    refused = h.add_alert(db, park["park_id"], park["camera_id"], None)
    db.execute(
        "INSERT INTO deliveries (alert_id, channel_id, status, delivered_version) "
        "VALUES (%s, %s, 'delivered', 1)",
        (delivered, channel),
    )
    db.execute(
        "INSERT INTO deliveries (alert_id, channel_id, status, permanent) VALUES (%s, %s, 'failed', true)",
        (refused, channel),
    )
    for a in (delivered, refused):
        _age(db, "alerts", a, 10)
    assert sweeper.handle(None, env)["alerts"] == 0
    assert _queued(storage, names.SEND_ALERT_QUEUE) == []
