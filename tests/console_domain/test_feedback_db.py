"""Feedback that changes behaviour, against PostgreSQL: a verdict is recorded with its audit row, false
positives at one place propose a suppression of a person box (applied only once an operator confirms it),
per-camera precision and the threshold it suggests, and the CLI doors (all audited)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from functions.adapters.audit_repo import AuditRepository, scrub
from functions.adapters.feedback_repo import FeedbackRepository
from functions.adapters.rules_repo import RulesRepository
from functions.adapters.suppressions_repo import SuppressionsRepository
from functions.handlers.feedback import FeedbackError, FeedbackNotFound, camera_report, give_feedback

from .conftest import POST, seed_alert


def give(db, alert_id, verdict, **kw):
    kw.setdefault("user", "asha")
    kw.setdefault("role", "ranger")
    kw.setdefault("via", "console")
    return give_feedback(db, alert_id=alert_id, verdict=verdict, **kw)


def test_feedback_is_recorded_with_who_and_an_audit_row_and_bad_feedback_is_refused(clean_db, seeded):
    db = clean_db
    a = seed_alert(db, seeded, 0, [[("2", 0.9, POST)], [("2", 0.85, POST)]])
    out = give(
        db, a["alert_id"], "false_positive", what="stump", note="the old post", image_id=a["images"][1]
    )
    fb = out["feedback"]
    assert (fb["verdict"], fb["what"], fb["user_name"], fb["user_role"]) == (
        "false_positive",
        "stump",
        "asha",
        "ranger",
    )
    [audit] = AuditRepository(db).list(seeded.park_id)
    assert (audit["actor"], audit["via"], audit["action"]) == ("asha", "console", "feedback.recorded")
    assert audit["target"] == f"alert:{a['alert_id']}/image:{a['images'][1]}"
    assert audit["details"]["verdict"] == "false_positive" and audit["details"]["note"] == "the old post"
    with pytest.raises(FeedbackError):
        give(db, a["alert_id"], "confirmed", what="stump")
    with pytest.raises(FeedbackNotFound):
        give(db, a["alert_id"] + 999, "confirmed")
    other = seed_alert(db, seeded, 5, [[("2", 0.9, POST)]])
    with pytest.raises(FeedbackNotFound):  # a photo of another alert
        give(db, a["alert_id"], "confirmed", image_id=other["images"][0])
    assert len(FeedbackRepository(db).for_alert(a["alert_id"])) == 1  # refused ones left nothing
    assert len(AuditRepository(db).list()) == 1


def test_audit_details_never_keep_secrets():
    got = scrub(
        {"note": "ok", "token": "t0k", "config": {"api_key": "k", "url": "https://x", "password": "p"}}
    )
    assert got == {"note": "ok", "config": {"url": "https://x"}}


def test_false_positives_propose_a_person_suppression_that_applies_only_once_confirmed(clean_db, seeded):
    db = clean_db
    first = seed_alert(db, seeded, 0, [[("2", 0.9, POST)], [("2", 0.88, POST)]])
    second = seed_alert(db, seeded, 30, [[("2", 0.86, POST)]])
    out = give(db, first["alert_id"], "false_positive", what="stump")
    assert out["proposed"] == [] and out["boxes"][0]["fp_count"] == 1
    out = give(db, second["alert_id"], "false_positive", what="stump", user="juma")
    [box_id] = out["proposed"]
    repo = SuppressionsRepository(db)
    [proposal] = repo.proposals("mara")
    assert proposal["id"] == box_id and proposal["status"] == "proposed" and proposal["fp_count"] == 2
    # the photos it is based on: the first photo of each judged event
    assert proposal["image_ids"] == [first["images"][0], second["images"][0]]
    assert {p["source"] for p in repo.photos(box_id)} == {"false_positive"}
    # not applied: a proposal suppresses nothing (the decision reads only 'suppressed' boxes)
    assert db.fetchone("SELECT status FROM suppressions WHERE id = %s", (box_id,))["status"] == "proposed"
    assert repo.reject(box_id + 99, actor="op", actor_role="operator", via="console") is None
    row = repo.confirm(box_id, actor="op-ben", actor_role="operator", via="console", note="a post")
    assert row["status"] == "suppressed"
    assert repo.confirm(box_id, actor="op-ben", actor_role="operator", via="console") is None  # once
    stored = repo.get(box_id)
    assert stored["reviewed_by"] == "op-ben" and stored["suppressed_at"] is not None
    actions = [a["action"] for a in AuditRepository(db).list(seeded.park_id)]
    assert actions == ["suppression.confirmed", "feedback.recorded", "feedback.recorded"]


def test_precision_and_suggested_threshold_per_camera(clean_db, seeded):
    db = clean_db
    for i, conf in enumerate([0.6, 0.62, 0.65, 0.7]):  # four night false positives...
        a = seed_alert(db, seeded, 10 * i, [[("2", conf, (0.1 * i, 0.1, 0.05, 0.1))]], night=True)
        give(db, a["alert_id"], "false_positive", what="shadow")
    ok = seed_alert(db, seeded, 100, [[("2", 0.93, (0.7, 0.1, 0.1, 0.3))]], night=True)  # ...one real person
    give(db, ok["alert_id"], "confirmed", what="person")
    [report] = camera_report(db, seeded.park_id)
    assert report["camera"] == "gate-1"
    assert report["precision"] == {"confirmed": 1, "false_positive": 4, "unsure": 0, "precision": 0.2}
    [s] = report["suggestions"]
    assert s["key"] == "threshold.person.night" and s["suggested"] == pytest.approx(0.71)
    # suggested, never applied: the camera's rules are untouched
    assert RulesRepository(db).layers(seeded.park_id, seeded.camera_id) == ({}, {})


def test_cli_feedback_suggest_and_suppressions_review_are_audited(
    clean_db, seeded, app_settings, monkeypatch
):
    from functions.cli import cli

    db = clean_db
    monkeypatch.setenv("TRAPALERT_ACTOR", "cli-user")
    runner = CliRunner()
    alerts = [seed_alert(db, seeded, 10 * i, [[("3", 0.8, POST)]]) for i in range(2)]
    for a in alerts:
        out = runner.invoke(
            cli,
            [
                "feedback",
                "give",
                str(a["alert_id"]),
                "--verdict",
                "false_positive",
                "--what",
                "staff_vehicle",
            ],
        )
        assert out.exit_code == 0, out.output
    assert "proposed" in out.output
    [proposal] = SuppressionsRepository(db).proposals()
    out = runner.invoke(cli, ["suppressions", "show", str(proposal["id"]), "--json"])
    assert out.exit_code == 0 and len(json.loads(out.output)["photos"]) == 2
    out = runner.invoke(cli, ["suppressions", "reject", str(proposal["id"]), "--note", "staff road"])
    assert out.exit_code == 0 and "rejected" in out.output
    out = runner.invoke(cli, ["feedback", "suggest", "--park", "mara", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)[0]["precision"]["false_positive"] == 2
    out = runner.invoke(cli, ["audit", "list", "--park", "mara", "--json"])
    rows = json.loads(out.output)
    assert [(r["actor"], r["via"], r["action"]) for r in rows] == [
        ("cli-user", "cli", "suppression.rejected"),
        ("cli-user", "cli", "feedback.recorded"),
        ("cli-user", "cli", "feedback.recorded"),
    ]
