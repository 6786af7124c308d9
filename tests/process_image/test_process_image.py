"""process-image against the real Azurite, PostgreSQL and scoring service (tiny controlled model): the
handler is called in-process here; tests/process_image/test_process_image_host.py runs it in the host."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import AzureError
from click.testing import CliRunner

from functions import names
from functions.handlers.process_image import handle
from tests.process_image.helpers import (
    add_image,
    alerts,
    make_camera,
    make_park,
    model_images,
    send_alert_messages,
    set_rules,
)
from tests.support.tiny_models import make_blank_image, make_detection_image, make_detections_image

T0 = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)  # 22:00 in Johannesburg
BOX = (0.3, 0.3, 0.2, 0.4)


@pytest.fixture
def park(svc):
    park_id = make_park(svc.db)
    return park_id, make_camera(svc.db, park_id, "gate-3"), make_camera(svc.db, park_id, "river-1")


def photo(svc, park_id, camera_id, seconds, conf=0.9, category="2", bbox=BOX, night=False):
    jpeg = make_detection_image(category, conf, bbox, night=night)
    return add_image(svc.db, svc.storage, park_id, camera_id, jpeg, T0 + timedelta(seconds=seconds))


def test_day_and_night_thresholds(svc, park):
    park_id, cam, _ = park
    set_rules(svc.db, park_id, {"threshold.person.day": 0.8, "threshold.person.night": 0.5, "cooldown_s": 0})
    day = photo(svc, park_id, cam, 0, conf=0.65, night=False)
    handle(day, svc)
    row = svc.db.fetchone(
        "SELECT status, night, model_name, model_version, assessment FROM images WHERE id = %s",
        (day.image_id,),
    )
    assert row["status"] == "scored" and row["night"] is False
    assert row["model_name"] == "md_v5a_controlled.pb" and row["model_version"] == "v5a-tiny"
    assert row["assessment"]["passes"] is False and "day threshold" in row["assessment"]["reasons"][0]
    det = svc.db.fetchone(
        "SELECT category, conf, bbox_x, bbox_w FROM detections WHERE image_id = %s", (day.image_id,)
    )
    assert det["category"] == "2" and det["conf"] == pytest.approx(0.65, abs=0.015)
    assert det["bbox_x"] == pytest.approx(0.3, abs=0.015) and det["bbox_w"] == pytest.approx(0.2, abs=0.015)
    assert alerts(svc.db) == [] and send_alert_messages(svc.storage) == []

    night = photo(svc, park_id, cam, 3600, conf=0.65, night=True)  # a later event, infrared frame
    handle(night, svc)
    assert svc.db.fetchone("SELECT night FROM images WHERE id = %s", (night.image_id,))["night"] is True
    [alert] = alerts(svc.db)
    assert alert["categories"] == ["person"] and alert["best_image_id"] == night.image_id
    [msg] = send_alert_messages(svc.storage)
    assert (msg["alert_id"], msg["version"], msg["reason"]) == (alert["id"], 1, "new")
    assert msg["correlation_id"] == str(night.correlation_id)


def test_burst_of_ten_photos_is_one_alert_per_camera(svc, park):
    park_id, cam1, cam2 = park
    msgs = [photo(svc, park_id, cam, 3 * i, conf=0.9) for cam in (cam1, cam2) for i in range(10)]
    with ThreadPoolExecutor(6) as pool:  # photos of one burst decided concurrently, as the host does
        list(pool.map(lambda m: handle(m, svc), msgs))
    rows = alerts(svc.db)
    assert len(rows) == 2
    assert sorted(r["camera_id"] for r in rows) == sorted([cam1, cam2])
    for r in rows:
        assert r["image_count"] == 10 and r["version"] == 1
        sent = svc.db.fetchall(
            "SELECT key, sent_at FROM outbox WHERE body->>'alert_id' = %s", (str(r["id"]),)
        )
        assert [x["key"] for x in sent] == [f"send-alert:{r['id']}:v1"] and sent[0]["sent_at"] is not None
        n = svc.db.fetchone("SELECT count(*) AS n FROM images WHERE alert_id = %s", (r["id"],))["n"]
        assert n == 10
        assert r["max_conf"] == pytest.approx(0.9, abs=0.015)
        assert r["started_at"] == T0 and r["last_image_at"] == T0 + timedelta(seconds=27)
    messages = send_alert_messages(svc.storage)
    assert sorted((m["alert_id"], m["version"], m["reason"]) for m in messages) == sorted(
        (r["id"], 1, "new") for r in rows
    )
    assert svc.db.fetchone("SELECT count(*) AS n FROM events")["n"] == 2


def test_weak_detections_confirmed_by_neighbours_and_updates(svc, park):
    park_id, cam, _ = park
    # day threshold 0.6; 0.5 is weak (>= 0.75 x 0.6): three weak photos of one burst confirm each other
    for i in range(2):
        handle(photo(svc, park_id, cam, 5 * i, conf=0.5), svc)
    assert alerts(svc.db) == []
    third = photo(svc, park_id, cam, 10, conf=0.52)
    handle(third, svc)
    [alert] = alerts(svc.db)
    assert alert["details"]["how"] == "confirmed" and alert["image_count"] == 3
    assert alert["best_image_id"] == third.image_id
    assert alert["mean_conf"] == pytest.approx((0.5 + 0.5 + 0.52) / 3, abs=0.015)
    # a clearer photo of the same burst (+0.1 or more): an update worth telling
    handle(photo(svc, park_id, cam, 15, conf=0.9), svc)
    # a photo that adds nothing new: attached silently
    handle(photo(svc, park_id, cam, 20, conf=0.88), svc)
    # a vehicle appears: an update
    jpeg = make_detections_image([("2", 0.85, BOX), ("3", 0.8, (0.6, 0.5, 0.3, 0.3))])
    handle(add_image(svc.db, svc.storage, park_id, cam, jpeg, T0 + timedelta(seconds=25)), svc)
    [alert] = alerts(svc.db)
    assert (
        alert["image_count"] == 6 and alert["version"] == 3 and alert["categories"] == ["person", "vehicle"]
    )
    assert [(m["version"], m["reason"]) for m in send_alert_messages(svc.storage)] == [
        (1, "new"),
        (2, "update"),
        (3, "update"),
    ]


def test_cooldown_per_camera(svc, park):
    park_id, cam1, cam2 = park
    set_rules(svc.db, park_id, {"cooldown_s": 300})
    set_rules(svc.db, park_id, {"cooldown_s": 0}, camera_id=cam2)
    for cam in (cam1, cam2):
        for start in (0, 120):  # two bursts two minutes apart (burst gap 60 s)
            for i in range(3):
                handle(photo(svc, park_id, cam, start + 2 * i), svc)
    by_camera = {}
    for a in alerts(svc.db):
        by_camera.setdefault(a["camera_id"], []).append(a)
    assert len(by_camera[cam1]) == 1  # the second burst joined the first alert (an update)
    assert by_camera[cam1][0]["image_count"] == 6 and by_camera[cam1][0]["version"] == 2
    assert len(by_camera[cam2]) == 2  # no cooldown at this camera: two alerts
    assert svc.db.fetchone("SELECT count(*) AS n FROM events")["n"] == 4
    # after the cooldown, a new alert
    handle(photo(svc, park_id, cam1, 120 + 4 + 301), svc)
    assert len([a for a in alerts(svc.db) if a["camera_id"] == cam1]) == 2


def test_a_repeated_person_box_is_proposed_then_confirmed_then_lifted(svc, park, monkeypatch):
    park_id, cam, _ = park
    set_rules(svc.db, park_id, {"suppress_after": 3, "cooldown_s": 0})
    stump = (0.1, 0.6, 0.15, 0.2)
    for k in range(3):  # the same box in three events, ten minutes apart
        for i in range(2):
            handle(photo(svc, park_id, cam, 600 * k + i, conf=0.85, bbox=stump), svc)
    # a person box is proposed, not suppressed: every event still alerted
    assert len(alerts(svc.db)) == 3
    rows = svc.db.fetchall("SELECT * FROM suppressions")
    assert len(rows) == 1 and rows[0]["status"] == "proposed" and rows[0]["event_count"] == 3
    assert "3 distinct events" in rows[0]["reason"] and rows[0]["proposed_at"] is not None
    assert len({e["event_id"] for e in rows[0]["evidence"]}) == 3  # the photos it is based on, per event
    assert svc.db.fetchone("SELECT count(*) AS n FROM detections WHERE suppression_id IS NOT NULL")["n"] == 0

    from functions.bootstrap import reset_services
    from functions.cli import cli

    monkeypatch.setenv("SCORING_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("TRAPALERT_ACTOR", "op-anna")
    reset_services()
    runner = CliRunner()
    out = runner.invoke(cli, ["suppressions", "list", "--park", "kruger", "--proposed", "--json"])
    assert out.exit_code == 0, out.output
    [listed] = json.loads(out.output)
    assert listed["id"] == rows[0]["id"] and listed["camera"] == "gate-3" and listed["status"] == "proposed"
    assert len(listed["image_ids"]) == 3
    assert runner.invoke(cli, ["suppressions", "lift", str(listed["id"])]).exit_code != 0  # not suppressed
    out = runner.invoke(cli, ["suppressions", "confirm", str(listed["id"]), "--note", "a post"])
    assert out.exit_code == 0 and "suppressed" in out.output, out.output
    handle(photo(svc, park_id, cam, 2400, conf=0.85, bbox=stump), svc)
    assert len(alerts(svc.db)) == 3  # confirmed: the place no longer alerts
    n = svc.db.fetchone("SELECT count(*) AS n FROM detections WHERE suppression_id IS NOT NULL")["n"]
    assert n == 1
    # a person elsewhere in the frame still alerts
    handle(photo(svc, park_id, cam, 3000, conf=0.85, bbox=(0.6, 0.2, 0.2, 0.5)), svc)
    assert len(alerts(svc.db)) == 4
    out = runner.invoke(cli, ["suppressions", "lift", str(listed["id"]), "--note", "it is the gate path"])
    assert out.exit_code == 0 and "lifted" in out.output
    assert runner.invoke(cli, ["suppressions", "lift", str(listed["id"])]).exit_code != 0
    handle(photo(svc, park_id, cam, 4000, conf=0.85, bbox=stump), svc)
    assert len(alerts(svc.db)) == 5  # lifted: the place alerts again
    audit = svc.db.fetchall("SELECT actor, via, action FROM audit_log ORDER BY id")
    assert [(a["actor"], a["via"], a["action"]) for a in audit] == [
        ("op-anna", "cli", "suppression.confirmed"),
        ("op-anna", "cli", "suppression.lifted"),
    ]


def test_redelivery_neither_scores_nor_alerts_twice(svc, park):
    park_id, cam, _ = park
    msg = photo(svc, park_id, cam, 0)
    before = model_images(svc.scoring.base_url)
    handle(msg, svc)
    handle(msg, svc)
    handle(msg, svc)
    assert model_images(svc.scoring.base_url) == before + 1
    assert len(alerts(svc.db)) == 1 and len(send_alert_messages(svc.storage)) == 1
    assert svc.db.fetchone("SELECT count(*) AS n FROM detections")["n"] == 1


def test_failed_enqueue_is_retried_by_the_message_and_sent_once(svc, park):
    park_id, cam, _ = park
    msg = photo(svc, park_id, cam, 0)
    svc.storage.queue(names.SEND_ALERT_QUEUE).delete_queue()  # the queue is unreachable
    try:
        with pytest.raises(AzureError):
            handle(msg, svc)
        [alert] = alerts(svc.db)  # the decision is committed, the message is not sent
        assert alert["version"] == 1
        [pending] = svc.db.fetchall("SELECT key, sent_at, attempts, last_error FROM outbox")
        assert pending["key"] == f"send-alert:{alert['id']}:v1" and pending["sent_at"] is None
        assert pending["attempts"] == 1 and pending["last_error"]
    finally:
        svc.storage.queue(names.SEND_ALERT_QUEUE).create_queue()
    before = model_images(svc.scoring.base_url)
    handle(msg, svc)  # the host's retry
    assert model_images(svc.scoring.base_url) == before  # scored once
    [m] = send_alert_messages(svc.storage)
    assert (m["alert_id"], m["version"], m["reason"]) == (alert["id"], 1, "new")
    handle(msg, svc)
    assert len(send_alert_messages(svc.storage)) == 1


def test_unreadable_image_is_failed_not_retried(svc, park):
    park_id, cam, _ = park
    msg = add_image(svc.db, svc.storage, park_id, cam, b"this is not a jpeg", T0)
    assert handle(msg, svc) is None
    row = svc.db.fetchone("SELECT status, reason FROM images WHERE id = %s", (msg.image_id,))
    assert row["status"] == "failed" and "unreadable_image" in row["reason"]
    handle(msg, svc)  # redelivered: nothing happens
    assert alerts(svc.db) == []


def test_blank_photos_join_the_burst_but_do_not_alert(svc, park):
    park_id, cam, _ = park
    blank = add_image(svc.db, svc.storage, park_id, cam, make_blank_image(), T0)
    handle(blank, svc)
    assert alerts(svc.db) == []
    handle(photo(svc, park_id, cam, 5), svc)
    [alert] = alerts(svc.db)
    assert alert["image_count"] == 2 and alert["best_image_id"] != blank.image_id


def test_active_hours_in_camera_time_zone(svc, park):
    park_id, cam, _ = park
    # 20:00 UTC is 22:00 in Johannesburg: outside 06:00-18:00
    set_rules(svc.db, park_id, {"active_hours": "06:00-18:00"})
    handle(photo(svc, park_id, cam, 0), svc)
    assert alerts(svc.db) == []
    row = svc.db.fetchone("SELECT assessment FROM images")
    assert row["assessment"]["reasons"] == ["outside active hours"]


def test_rules_cli_show_and_set(svc, park, monkeypatch):
    from functions.bootstrap import reset_services
    from functions.cli import cli

    reset_services()
    runner = CliRunner()
    out = runner.invoke(
        cli,
        [
            "rules",
            "set",
            "--park",
            "kruger",
            "categories=person,vehicle,animal",
            "threshold.person.night=0.45",
        ],
    )
    assert out.exit_code == 0, out.output
    out = runner.invoke(cli, ["rules", "set", "--park", "kruger", "--camera", "gate-3", "cooldown_s=600"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(cli, ["rules", "show", "--park", "kruger", "--camera", "gate-3", "--json"])
    data = json.loads(out.output)
    assert data["rules"]["categories"] == "person,vehicle,animal"
    assert data["rules"]["threshold.person.night"] == 0.45 and data["rules"]["cooldown_s"] == 600
    assert data["camera_overrides"] == {"cooldown_s": 600}
    out = runner.invoke(cli, ["rules", "show", "--park", "kruger", "--camera", "river-1"])
    assert "cooldown_s" in out.output and "default" in out.output
    bad = runner.invoke(cli, ["rules", "set", "--park", "kruger", "threshold.person.day=2"])
    assert (
        bad.exit_code != 0
        and "threshold.person.day" in bad.output
        and "less than or equal to 1" in bad.output
    )
    bad = runner.invoke(cli, ["rules", "set", "--park", "nowhere", "cooldown_s=1"])
    assert bad.exit_code != 0 and "unknown park 'nowhere'" in bad.output
    out = runner.invoke(cli, ["rules", "set", "--park", "kruger", "--camera", "gate-3", "cooldown_s="])
    assert out.exit_code == 0
    assert (
        json.loads(
            runner.invoke(cli, ["rules", "show", "--park", "kruger", "--camera", "gate-3", "--json"]).output
        )["rules"]["cooldown_s"]
        == 300
    )
