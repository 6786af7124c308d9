"""Camera health: one alert per camera and condition across many timer runs, cleared when the camera is back;
battery, temperature and clock from the latest email. Real PostgreSQL and Azurite; the timer handler in
process."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from functions import names
from functions.adapters.health_repo import OUTBOX_SCOPE
from functions.domain.health import CameraReport, Thresholds, evaluate, transitions
from functions.handlers import camera_health
from functions.messages import SendAlert


@pytest.fixture
def svc(app_settings, clean_db, clean_queues):
    from functions.bootstrap import services

    return services()


@pytest.fixture
def camera(clean_db):
    park = clean_db.fetchone("INSERT INTO parks (slug, name) VALUES ('park-h', 'Park H') RETURNING id")
    return clean_db.fetchone(
        "INSERT INTO cameras (park_id, name, expected_interval_s, last_seen_at) "
        "VALUES (%s, 'cam-7', 3600, now() - interval '2 hours') RETURNING *",
        (park["id"],),
    )


def send_alerts(storage) -> list[SendAlert]:
    msgs = storage.queue(names.SEND_ALERT_QUEUE).peek_messages(max_messages=32)
    return [SendAlert.model_validate_json(m.content) for m in msgs]


def health_alerts(db):
    return db.fetchall("SELECT * FROM alerts WHERE kind = 'health' ORDER BY id")


def outbox_keys(db) -> list[tuple[str, bool]]:
    """(key, sent) of every outbox row of the camera-health scope."""
    rows = db.fetchall("SELECT key, sent_at FROM outbox WHERE scope = %s ORDER BY id", (OUTBOX_SCOPE,))
    return [(r["key"], r["sent_at"] is not None) for r in rows]


def test_silent_camera_raises_exactly_one_alert_and_clears_when_it_is_back(svc, camera, db):
    for _ in range(3):
        camera_health.handle(None, svc)
    # two runs at once (scale-out) do not raise it twice either
    threads = [threading.Thread(target=camera_health.handle, args=(None, svc)) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]

    alerts = health_alerts(db)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["camera_id"] == camera["id"] and alert["details"]["condition"] == "silent"
    assert "cam-7 silent for 2.0 h" in alert["title"]
    queued = send_alerts(svc.storage)
    assert [(m.alert_id, m.reason, m.version) for m in queued] == [(alert["id"], "health", 1)]
    assert str(queued[0].correlation_id) == str(alert["correlation_id"])
    # its outbox row is sent, once
    assert svc.outbox.pending(OUTBOX_SCOPE) == [] and svc.outbox.sent_count(OUTBOX_SCOPE) == 1
    assert outbox_keys(db) == [(f"send-alert:{alert['id']}:v1", True)]

    db.execute("UPDATE cameras SET last_seen_at = now() WHERE id = %s", (camera["id"],))
    done = camera_health.handle(None, svc)
    assert done["cleared"] == [{"camera_id": camera["id"], "condition": "silent"}]
    camera_health.handle(None, svc)
    queued = send_alerts(svc.storage)
    assert [(m.alert_id, m.reason, m.version) for m in queued] == [
        (alert["id"], "health", 1),
        (alert["id"], "health_cleared", 2),
    ]
    assert outbox_keys(db) == [(f"send-alert:{alert['id']}:v1", True), (f"send-alert:{alert['id']}:v2", True)]
    alert = health_alerts(db)[0]
    assert alert["version"] == 2 and alert["details"]["status"] == "cleared"
    assert alert["details"]["summary"] == alert["title"] and "back to normal" in alert["title"]
    assert len(health_alerts(db)) == 1
    assert camera_health.current(db) == []


def test_a_transition_whose_send_failed_is_sent_by_the_next_run_exactly_once(svc, camera, db, monkeypatch):
    """Storage down during the run: the alert is recorded with its message pending in the outbox; the next run
    sends it, once; later runs send nothing more."""

    def unreachable(*args, **kwargs):
        raise ConnectionError("queue service unreachable")

    with monkeypatch.context() as m:
        m.setattr(svc.outbox.storage, "enqueue", unreachable)
        done = camera_health.handle(None, svc)
    assert done["raised"] == [{"camera_id": camera["id"], "condition": "silent"}] and done["resent"] == 0
    alert = health_alerts(db)[0]
    assert send_alerts(svc.storage) == []
    [pending] = svc.outbox.pending(OUTBOX_SCOPE)
    assert pending["key"] == f"send-alert:{alert['id']}:v1" and pending["attempts"] == 1
    assert "unreachable" in pending["last_error"]

    done = camera_health.handle(None, svc)
    assert done["resent"] == 1 and done["raised"] == []
    for _ in range(2):
        assert camera_health.handle(None, svc)["resent"] == 0
    queued = send_alerts(svc.storage)
    assert [(m.alert_id, m.reason, m.version) for m in queued] == [(alert["id"], "health", 1)]
    assert str(queued[0].correlation_id) == str(alert["correlation_id"])
    assert outbox_keys(db) == [(f"send-alert:{alert['id']}:v1", True)]

    # the clear's message, when storage is down again, follows the same path
    db.execute("UPDATE cameras SET last_seen_at = now() WHERE id = %s", (camera["id"],))
    with monkeypatch.context() as m:
        m.setattr(svc.outbox.storage, "enqueue", unreachable)
        assert camera_health.handle(None, svc)["cleared"] == [
            {"camera_id": camera["id"], "condition": "silent"}
        ]
    assert [p["key"] for p in svc.outbox.pending(OUTBOX_SCOPE)] == [f"send-alert:{alert['id']}:v2"]
    assert camera_health.handle(None, svc)["resent"] == 1
    queued = send_alerts(svc.storage)
    assert [(m.alert_id, m.reason, m.version) for m in queued] == [
        (alert["id"], "health", 1),
        (alert["id"], "health_cleared", 2),
    ]


def test_a_camera_that_never_sent_is_silent_after_its_interval_from_registration(svc, camera, db):
    db.execute("UPDATE cameras SET last_seen_at = NULL, created_at = now() - interval '30 minutes'")
    assert camera_health.handle(None, svc)["raised"] == []
    db.execute("UPDATE cameras SET created_at = now() - interval '3 hours'")
    assert camera_health.handle(None, svc)["raised"] == [{"camera_id": camera["id"], "condition": "silent"}]


def _email(db, camera, meta, received_ago_s=0, taken_ago_s=None):
    email = db.fetchone(
        "INSERT INTO inbound_emails (dedupe_key, mode, status, camera_id, park_id, correlation_id, meta, "
        "received_at) "
        "VALUES (%s, 'parsed', 'accepted', %s, %s, %s, %s, now() - make_interval(secs => %s)) RETURNING id",
        (
            str(uuid.uuid4()),
            camera["id"],
            camera["park_id"],
            str(uuid.uuid4()),
            json.dumps(meta),
            received_ago_s,
        ),
    )
    if taken_ago_s is not None:
        db.execute(
            "INSERT INTO images (email_id, attachment_index, camera_id, status, correlation_id, taken_at, "
            "taken_at_source) VALUES (%s, 1, %s, 'scored', %s, now() - make_interval(secs => %s), 'exif')",
            (email["id"], camera["id"], str(uuid.uuid4()), taken_ago_s),
        )


def test_battery_temperature_and_clock_from_the_latest_email(svc, camera, db):
    _email(db, camera, {"battery_pct": 12, "temperature_c": 71}, received_ago_s=0, taken_ago_s=5 * 3600)
    done = camera_health.handle(None, svc)
    assert sorted(r["condition"] for r in done["raised"]) == ["clock_skew", "low_battery", "temperature"]
    assert camera_health.handle(None, svc)["raised"] == []
    titles = {a["details"]["condition"]: a["title"] for a in health_alerts(db)}
    assert "battery 12%" in titles["low_battery"] and "71 °C" in titles["temperature"]
    assert "5.0 h behind" in titles["clock_skew"]

    # A newer email says the battery was changed and reports no temperature:
    # battery clears, temperature stays.
    _email(db, camera, {"battery_pct": 95}, received_ago_s=0, taken_ago_s=30)
    done = camera_health.handle(None, svc)
    assert sorted(r["condition"] for r in done["cleared"]) == ["clock_skew", "low_battery"]
    assert [r["condition"] for r in camera_health.current(db)] == ["temperature"]
    reasons = [m.reason for m in send_alerts(svc.storage)]
    assert reasons.count("health") == 3 and reasons.count("health_cleared") == 2


def test_camera_flag_and_park_thresholds(svc, camera, db):
    db.execute("UPDATE parks SET settings = %s", (json.dumps({"health": {"temperature_max_c": 80}}),))
    _email(db, camera, {"battery_low": True, "temperature_c": 71})
    done = camera_health.handle(None, svc)
    assert sorted(r["condition"] for r in done["raised"]) == ["low_battery"]


# ------------------------------------------------------------------------------------------ pure decisions
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_evaluate_unknown_never_raises_nor_clears():
    report = CameraReport(
        camera_id=1, name="c", expected_interval_s=86400, last_seen_at=NOW - timedelta(hours=1)
    )
    findings = evaluate(report, NOW)
    assert findings["silent"].active is False
    assert findings["low_battery"].active is None and findings["temperature"].active is None
    t = transitions(findings, {"low_battery", "silent"})
    assert [f.condition for f in t.clear] == ["silent"] and t.raise_ == []


def test_evaluate_thresholds():
    th = Thresholds.merged({"battery_low_pct": 30}, {"clock_skew_max_s": 600})
    report = CameraReport(
        camera_id=1,
        name="c",
        last_seen_at=NOW - timedelta(hours=25),
        battery_pct=25,
        clock_skew_s=-900,
        thresholds=th,
    )
    f = evaluate(report, NOW)
    assert f["silent"].active and f["low_battery"].active and f["clock_skew"].active
    assert "ahead" in f["clock_skew"].title


def test_health_alert_reaches_the_parks_channel_through_send_alert(svc, camera, db, monkeypatch):
    """The contract with send-alert: an alerts row kind=health + SendAlert(reason health|health_cleared)."""
    from functions.handlers import send_alert
    from tests.fakes.webhook import FakeWebhookReceiver

    monkeypatch.setenv("CHANNEL_SECRET_HEALTH_HOOK_TEST", "s3cret-value")
    with FakeWebhookReceiver(secret="s3cret-value") as hook:
        db.execute(
            "INSERT INTO channels (park_id, name, kind, config) VALUES (%s, 'hook', 'webhook', %s)",
            (
                camera["park_id"],
                json.dumps(
                    {
                        "url": hook.url,
                        "secret_setting": "CHANNEL_SECRET_HEALTH_HOOK_TEST",
                        "allow_http": True,  # the local stand-in
                        "allow_private_network": True,
                    }
                ),
            ),
        )
        delivered = 0
        for _ in range(2):  # silent, then back: send-alert runs after each timer run
            camera_health.handle(None, svc)
            camera_health.handle(None, svc)
            for msg in send_alerts(svc.storage)[delivered:]:
                send_alert.handle(msg, svc)
                delivered += 1
            db.execute("UPDATE cameras SET last_seen_at = now()")
        events = [(d["event"], d["notice"]["kind"], d["notice"]["title"]) for d in hook.deliveries]
    assert len(events) == 2 and {e[1] for e in events} == {"health"}
    assert "silent" in events[0][2] and "back to normal" in events[1][2]
