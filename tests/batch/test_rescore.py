"""Re-scoring: stored photos through the current model in the bulk lane, new detections beside the old ones,
and what would have changed (functions/domain/rescore.py), without alerting anyone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from functions.adapters.batch_repo import BatchRepository
from functions.adapters.scoring_client import ImageScore, MDDetection
from functions.cli import cli
from functions.domain.rescore import RescoredPhoto, compare
from functions.domain.rules import Det, effective_rules
from functions.handlers import batch, process_image
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
    try:
        result = CliRunner().invoke(cli, ["rescore", "--park", "etosha", "--since", "2026-03-01", "--json"])
    finally:
        stop.set()
        worker.join(5)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["would_have_fired"] == 1 and report["cameras"][0]["camera"] == "north"
    refused = CliRunner().invoke(cli, ["rescore", "--park", "etosha", "--since", "2026-03-01", "--alert"])
    assert refused.exit_code != 0 and "--alert" in refused.output


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
