"""Re-scoring: stored photos through the current model in the bulk lane, new detections beside the old ones,
and what would have changed (functions/domain/rescore.py), without alerting anyone unless asked (--alert:
one re-scoring alert per event that would have fired and did not, through the outbox, once)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from functions import names
from functions.adapters.batch_repo import BatchRepository
from functions.adapters.deliveries import DeliveryRepository
from functions.adapters.scoring_client import ImageScore, MDDetection
from functions.cli import cli
from functions.domain.rescore import RescoredPhoto, compare
from functions.domain.rules import Det, effective_rules
from functions.handlers import batch, process_image
from functions.handlers.send_alert import build_notice
from functions.messages import SendAlert
from tests.batch.conftest import drain, jpeg
from tests.process_image.helpers import add_image, alerts, make_camera, make_park

PERSON = MDDetection(category="2", conf=0.95, bbox=(0.4, 0.3, 0.2, 0.5))


class OldModel:
    """The model the photos were first scored with: sees a person only in the photos it is told about."""

    def __init__(self, sees_person: set[int]):
        self.sees_person = sees_person
        self.image = 0

    def detect(self, data, filename="image.jpg", content_type="image/jpeg", *, lane="live"):
        dets = [PERSON] if self.image in self.sees_person else []
        return ImageScore("md_old.pt", "v-old", detections=dets, night=False)


def test_rescore_stores_new_detections_beside_the_old_and_reports_what_would_have_fired(svc):
    park = make_park(svc.db, "etosha", tz="UTC")
    cams = {name: make_camera(svc.db, park, name) for name in ("north", "south")}
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    real_scoring = svc.scoring
    old = OldModel(sees_person={0})
    svc.__dict__["scoring"] = old
    for n, (cam, hours) in enumerate([("north", 0), ("north", 5), ("south", 10), ("south", 15)]):
        old.image = n
        msg = add_image(svc.db, svc.storage, park, cams[cam], jpeg(500 + n), start + timedelta(hours=hours))
        process_image.handle(msg, svc)
    # one photo outside the window is not re-scored
    add_image(svc.db, svc.storage, park, cams["north"], jpeg(599), start - timedelta(days=3))
    svc.__dict__["scoring"] = real_scoring
    before_alerts = alerts(svc.db)
    before_detections = svc.db.fetchone("SELECT count(*) AS n FROM detections")["n"]
    assert len(before_alerts) == 1

    run = batch.submit_rescore(svc, BatchRepository(svc.db).park("etosha"), start, None, None)
    assert run["total"] == 4 and run["purpose"] == "rescore"
    drain(svc)
    report = batch.rescore_report(svc, BatchRepository(svc.db).get(run["id"]))

    assert report["state"] == "done" and report["photos"] == 4
    assert report["old_models"] == ["md_old.pt v-old"] and report["new_models"] != report["old_models"]
    assert report["would_have_fired"] == 3 and report["would_not_have_fired"] == 0
    by_camera = {c["camera"]: c for c in report["cameras"]}
    assert by_camera["north"]["would_have_fired"] == 1 and by_camera["south"]["would_have_fired"] == 2
    assert by_camera["north"]["changed_photos"] == 1
    # the original detections and alerts are untouched; the new ones are stored with their model
    assert alerts(svc.db) == before_alerts
    assert svc.db.fetchone("SELECT count(*) AS n FROM detections")["n"] == before_detections
    items = BatchRepository(svc.db).items(run["id"])
    assert all(i["detections"][0]["category"] == "2" and i["model_name"] for i in items)
    assert all(i["image_id"] is not None for i in items)


def test_rescore_cli_prints_the_changes_by_camera(svc, app_settings, monkeypatch, database_url, azurite):
    park = make_park(svc.db, "etosha", tz="UTC")
    cam = make_camera(svc.db, park, "north")
    old = OldModel(sees_person=set())
    real_scoring = svc.scoring
    svc.__dict__["scoring"] = old
    msg = add_image(svc.db, svc.storage, park, cam, jpeg(700), datetime(2026, 3, 2, 12, tzinfo=UTC))
    process_image.handle(msg, svc)
    svc.__dict__["scoring"] = real_scoring
    monkeypatch.setenv("SCORING_URL", svc.settings.scoring_url)
    monkeypatch.setattr("functions.cli.batch.POLL_S", 0.05)
    # the CLI waits while this test plays the bulk lane's Function host
    import threading

    stop = threading.Event()

    def host():
        while not stop.is_set():
            drain(svc)
            stop.wait(0.05)

    worker = threading.Thread(target=host, daemon=True)
    worker.start()
    args = ["rescore", "--park", "etosha", "--since", "2026-03-01"]
    try:
        result = CliRunner().invoke(cli, [*args, "--json"])
        assert alerts(svc.db) == []  # without --alert, nothing for the past
        alerted = CliRunner().invoke(cli, [*args, "--alert"])
    finally:
        stop.set()
        worker.join(5)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["would_have_fired"] == 1 and report["cameras"][0]["camera"] == "north"
    assert report["alert"] is False and report["alerts_opened"] == []
    assert alerted.exit_code == 0, alerted.output
    assert (
        "1 re-scoring alert(s) sent" in alerted.output
        and "Re-scoring (past): Person at north" in alerted.output
    )
    assert [a["kind"] for a in alerts(svc.db)] == ["rescore"]


def _history(svc):
    """Four photos (north at +0 h and +5 h, south at +10 h and +15 h) decided live by an old model that saw a
    person only in the first; the current (null) model sees one in every photo."""
    park = make_park(svc.db, "etosha", tz="UTC")
    cams = {name: make_camera(svc.db, park, name) for name in ("north", "south")}
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    real_scoring = svc.scoring
    old = OldModel(sees_person={0})
    svc.__dict__["scoring"] = old
    for n, (cam, hours) in enumerate([("north", 0), ("north", 5), ("south", 10), ("south", 15)]):
        old.image = n
        msg = add_image(svc.db, svc.storage, park, cams[cam], jpeg(500 + n), start + timedelta(hours=hours))
        process_image.handle(msg, svc)
    svc.__dict__["scoring"] = real_scoring
    return cams, start


def _rescore_messages(svc) -> list[SendAlert]:
    msgs = svc.storage.queue(names.SEND_ALERT_QUEUE).peek_messages(max_messages=32)
    return [m for m in (SendAlert.model_validate_json(x.content) for x in msgs) if m.reason == "rescore"]


def _past(svc) -> list[dict]:
    return [a for a in alerts(svc.db) if a["kind"] == "rescore"]


def test_rescore_alert_opens_one_alert_per_missed_event_once(svc):
    cams, start = _history(svc)
    live = alerts(svc.db)
    park = BatchRepository(svc.db).park("etosha")
    run = batch.submit_rescore(svc, park, start, None, None, alert=True)
    drain(svc)  # the bulk lane finishes the run: its last item opens the alerts and flushes their SendAlert

    past = _past(svc)
    assert len(live) == 1 and len(past) == 3 and alerts(svc.db)[:1] == live  # the live alert is untouched
    assert sorted(a["camera_id"] for a in past) == sorted([cams["north"], cams["south"], cams["south"]])
    assert all(
        a["rescore_batch_id"] == run["id"] and a["title"].startswith("Re-scoring (past)") for a in past
    )
    # the photos keep their state: only the live alert's photo has an alert, the others no detections
    assert svc.db.fetchone("SELECT count(*) AS n FROM images WHERE alert_id IS NOT NULL")["n"] == 1
    sent = _rescore_messages(svc)
    assert sorted((m.alert_id, m.version) for m in sent) == [(a["id"], 1) for a in past]

    # the notice says it is about the past and draws the NEW model's boxes on the best photo
    deliveries = DeliveryRepository(svc.db)
    first = next(m for m in sent if m.alert_id == past[0]["id"])
    notice = build_notice(deliveries.alert_context(past[0]["id"]), deliveries, svc, first)
    assert notice.title.startswith("Re-scoring (past)") and "at the time" in notice.summary
    assert notice.detections and notice.detections[0].category == "person" and notice.photo_jpeg
    best = past[0]["best_image_id"]
    assert svc.db.fetchone("SELECT count(*) AS n FROM detections WHERE image_id = %s", (best,))["n"] == 0

    # a second finish (a redelivered last message, a status read) opens nothing more, nor does a second run
    assert batch.open_past_alerts(svc, BatchRepository(svc.db).get(run["id"])) is None
    batch.status(svc, BatchRepository(svc.db).get(run["id"]))
    svc.db.execute("UPDATE batches SET alerted_at = NULL WHERE id = %s", (run["id"],))
    assert batch.open_past_alerts(svc, BatchRepository(svc.db).get(run["id"])) == []
    again = batch.submit_rescore(svc, park, start, None, None, alert=True)
    drain(svc)
    assert BatchRepository(svc.db).get(again["id"])["alerted_at"] is not None
    assert len(_past(svc)) == 3 and len(_rescore_messages(svc)) == 3
    report = batch.rescore_report(svc, BatchRepository(svc.db).get(run["id"]))
    assert report["would_have_fired"] == 3 and len(report["alerts_opened"]) == 3


def test_rescore_without_alert_opens_nothing(svc):
    _, start = _history(svc)
    run = batch.submit_rescore(svc, BatchRepository(svc.db).park("etosha"), start, None, None)
    drain(svc)
    done = BatchRepository(svc.db).get(run["id"])
    assert done["state"] == "done" and batch.open_past_alerts(svc, done) is None
    assert _past(svc) == [] and _rescore_messages(svc) == [] and done["alerted_at"] is None


def _photo(image_id, camera_id, event_id, alert_id, old, new, hour=12):
    return RescoredPhoto(
        image_id=image_id,
        camera_id=camera_id,
        camera=f"cam{camera_id}",
        taken_at=datetime(2026, 3, 1, hour, tzinfo=UTC),
        timezone="UTC",
        night=False,
        event_id=event_id,
        alert_id=alert_id,
        old=tuple(old),
        new=tuple(new),
    )


def test_compare_finds_alerts_gained_and_lost_per_event():
    person = Det("2", 0.95, (0.4, 0.3, 0.2, 0.5))
    faint = Det("2", 0.05, (0.4, 0.3, 0.2, 0.5))
    stump = Det("2", 0.95, (0.1, 0.1, 0.1, 0.1), suppressed=True)
    stump_again = Det("2", 0.97, (0.1, 0.1, 0.1, 0.11))
    rules = {1: effective_rules({}, {}), 2: effective_rules({}, {})}
    photos = [
        _photo(1, 1, 10, 100, [person], [faint]),  # alert 100: its only photo no longer passes -> lost
        _photo(2, 1, 11, 101, [person], [faint]),  # alert 101: one photo still passes -> kept
        _photo(3, 1, 11, 101, [person], [person]),
        _photo(4, 2, None, None, [faint], [person]),  # no alert, now passes -> would have fired
        _photo(5, 2, 12, None, [stump], [stump_again]),  # the suppressed stump stays suppressed
    ]
    out = compare(photos, rules)
    assert [a["alert_id"] for a in out[1].lost_alerts] == [100] and out[1].new_alerts == []
    assert [a["event"] for a in out[2].new_alerts] == ["image:4"] and out[2].lost_alerts == []
    assert out[1].changed_photos == 2 and out[2].changed_photos == 1
