"""The park console without a browser: sign-in links (once, expiry), sessions, CSRF, roles on every endpoint,
the Easy Auth header ignored locally, escaping of hostile names, security headers, feedback and audit."""

from __future__ import annotations

import base64
import json
import re

import pytest

from functions.adapters.console_repo import ConsoleRepository
from functions.console import views
from functions.console.auth import ROLES, SESSION_COOKIE, User, new_token, principal_user
from tests.console.conftest import HOSTILE, Client, add_alert


def _audit(db, action: str) -> list[dict]:
    return db.fetchall("SELECT * FROM audit_log WHERE action = %s ORDER BY id", (action,))


def test_a_link_signs_in_once_and_is_audited(svc, seeded, clean_db):
    token = new_token()
    ConsoleRepository(svc.db).add_link(token, "Ana", "ranger", 600, created_by="test")
    assert (
        clean_db.fetchone("SELECT count(*) AS n FROM console_login_links WHERE token_hash = %s", (token,))[
            "n"
        ]
        == 0
    )
    first = Client(svc)
    first.get("login")
    resp = first.post("login", {"token": token})
    assert resp.status_code == 200 and first.json(resp) == {"user": "Ana", "role": "ranger"}
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert first.get("map").status_code == 200

    second = Client(svc)
    second.get("login")
    again = second.post("login", {"token": token})
    assert again.status_code == 403 and "already used" in second.json(again)["error"]
    assert SESSION_COOKIE not in second.cookies
    assert second.get("data/map").status_code == 401
    assert [a["actor"] for a in _audit(clean_db, "console.signin")] == ["Ana"]
    refused = _audit(clean_db, "console.signin_refused")
    assert refused and refused[0]["details"]["reason"] == "link already used"


def test_an_expired_or_unknown_link_is_refused(svc, seeded):
    token = new_token()
    ConsoleRepository(svc.db).add_link(token, "Ben", "admin", -1, created_by="test")
    c = Client(svc)
    c.get("login")
    resp = c.post("login", {"token": token})
    assert resp.status_code == 403 and "expired" in c.json(resp)["error"]
    resp = c.post("login", {"token": new_token()})
    assert resp.status_code == 403 and "unknown" in c.json(resp)["error"]
    assert c.get("alerts").status_code == 401


def test_sign_out_ends_the_session(svc, seeded, login):
    c = login("viewer")
    stolen = dict(c.cookies)
    assert c.post("logout").status_code == 200
    assert Client(svc, cookies=stolen).get("data/map").status_code == 401


def test_changes_need_the_csrf_token_and_the_same_origin(svc, seeded, login, clean_db):
    c = login("ranger")
    alert = seeded["alerts"][0]["id"]
    body = {"verdict": "confirmed"}
    no_token = Client(svc, cookies=dict(c.cookies), csrf=False)
    assert no_token.post(f"data/alerts/{alert}/feedback", body).status_code == 403
    wrong = Client(svc, cookies=dict(c.cookies))
    resp = wrong.post(f"data/alerts/{alert}/feedback", body, headers={"x-csrf-token": "x" * 43})
    assert resp.status_code == 403
    other_site = Client(svc, cookies=dict(c.cookies), origin="https://evil.example")
    assert other_site.post(f"data/alerts/{alert}/feedback", body).status_code == 403
    no_origin = Client(svc, cookies=dict(c.cookies), origin=None)
    assert no_origin.post(f"data/alerts/{alert}/feedback", body).status_code == 403
    assert clean_db.fetchone("SELECT count(*) AS n FROM feedback")["n"] == 0
    ok = c.post(f"data/alerts/{alert}/feedback", body)
    assert ok.status_code == 200
    assert clean_db.fetchone("SELECT count(*) AS n FROM feedback")["n"] == 1


def _sample_path(pattern: re.Pattern, ids: dict) -> str:
    text = pattern.pattern
    text = text.replace(r"(?P<id>\d{1,18})", str(ids["id"])).replace("(?P<thumb>/thumbnail)?", "")
    return text.replace("(?P<decision>confirm|reject)", "confirm")


def test_every_api_endpoint_checks_the_role(svc, seeded, login):
    clients = {role: login(role) for role in ROLES}
    ids = {"id": seeded["alerts"][0]["id"]}
    checked = 0
    for method, pattern, least, _fn in views.API:
        path = "data/" + _sample_path(pattern, ids)
        for role in ROLES:
            client = clients[role]
            resp = client.get(path) if method == "GET" else client.post(path, {})
            if User("x", role, "link").can(least):
                assert resp.status_code != 403 or b"may not" not in resp.get_body(), (method, path, role)
            else:
                assert resp.status_code == 403, (method, path, role, resp.status_code)
                assert b"may not do this" in resp.get_body()
                checked += 1
    assert checked == sum(ROLES.index(least) for _m, _p, least, _f in views.API) > 15
    # pages too: a viewer sees the map and alerts, not configuration, audit or ops
    viewer = clients["viewer"]
    assert viewer.get("map").status_code == 200 and viewer.get("alerts").status_code == 200
    for page in ("cameras", "rules", "channels", "upload", "proposals", "audit", "ops"):
        assert viewer.get(page).status_code == 403, page
    assert clients["operator"].get("audit").status_code == 403
    assert clients["admin"].get("audit").status_code == 200


def test_a_viewer_changes_nothing(svc, seeded, login, clean_db):
    v = login("viewer")
    alert, cam = seeded["alerts"][0]["id"], seeded["camera"]["id"]
    assert v.post(f"data/alerts/{alert}/feedback", {"verdict": "confirmed"}).status_code == 403
    assert v.post(f"data/cameras/{cam}/place", {"latitude": 1, "longitude": 2}).status_code == 403
    assert v.post(f"data/cameras/{cam}/rotate-token").status_code == 403
    page = v.get(f"alerts/{alert}").get_body().decode()
    assert 'id="feedback-readonly"' in page and 'id="feedback"' not in page
    assert clean_db.fetchone("SELECT count(*) AS n FROM feedback")["n"] == 0


def _principal(role: str, name: str = "mallory@example.org") -> str:
    data = {
        "auth_typ": "aad",
        "name_typ": "name",
        "role_typ": "roles",
        "claims": [{"typ": "name", "val": name}, {"typ": "roles", "val": role}],
    }
    return base64.b64encode(json.dumps(data).encode()).decode()


def test_the_easy_auth_header_is_ignored_locally(svc, seeded, monkeypatch):
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    assert svc.settings.console_auth == "links"  # the default: local, and Azure without an app registration
    forged = Client(svc)
    headers = {"x-ms-client-principal": _principal("admin")}
    assert forged.get("data/audit", headers=headers).status_code == 401
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")  # the platform's flag alone is not enough
    assert forged.get("data/audit", headers=headers).status_code == 401
    monkeypatch.setattr(svc.settings, "console_auth", "easyauth")
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED")  # configured, but the platform did not turn auth on
    assert forged.get("data/audit", headers=headers).status_code == 401
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")  # App Service authentication on: trusted
    assert forged.get("data/audit", headers=headers).status_code == 200
    viewer = {"x-ms-client-principal": _principal("viewer")}
    assert forged.get("data/audit", headers=viewer).status_code == 403


def test_map_tiles_are_used_only_when_configured(svc, seeded, login, monkeypatch):
    admin = login("admin")
    resp = admin.get("map")
    assert 'data-tiles=""' in resp.get_body().decode()
    assert "tile.openstreetmap.org" not in resp.headers["Content-Security-Policy"]
    monkeypatch.setattr(svc.settings, "console_map_tiles", "https://tile.openstreetmap.org/{z}/{x}/{y}.png")
    resp = admin.get("map")
    assert 'data-tiles="https://tile.openstreetmap.org/{z}/{x}/{y}.png"' in resp.get_body().decode()
    assert "img-src 'self' data: https://tile.openstreetmap.org;" in resp.headers["Content-Security-Policy"]


def test_the_principal_parser_takes_the_highest_console_role():
    data = {
        "claims": [
            {"typ": "name", "val": "Kim"},
            {"typ": "roles", "val": "viewer"},
            {"typ": "roles", "val": "operator"},
            {"typ": "roles", "val": "other"},
        ]
    }
    user = principal_user(base64.b64encode(json.dumps(data).encode()).decode())
    assert user == User("Kim", "operator", "easyauth")
    assert principal_user(_principal("guest")) is None
    assert principal_user("not base64 json") is None


def test_hostile_names_are_escaped_everywhere(svc, seeded, login, clean_db, storage):
    clean_db.execute("UPDATE cameras SET name = %s WHERE id = %s", (HOSTILE, seeded["camera"]["id"]))
    clean_db.execute("UPDATE alerts SET title = %s", (HOSTILE,))
    admin = login("admin", user=HOSTILE)
    clean_db.execute(
        "INSERT INTO audit_log (actor, via, action, details) VALUES (%s, 'cli', 'x', %s::jsonb)",
        (HOSTILE, json.dumps({"note": HOSTILE})),
    )
    alert = seeded["alerts"][0]["id"]
    for page in ("map", "alerts", f"alerts/{alert}", "cameras", "audit", "ops", "precision"):
        body = admin.get(page).get_body().decode()
        assert HOSTILE not in body and "<script>alert" not in body and "<img src=x" not in body, page
        assert "&lt;script&gt;" in body, page
    # no inline script anywhere: the CSP allows scripts from the app only
    resp = admin.get("map")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert re.search(r"<script(?![^>]*\bsrc=)", resp.get_body().decode()) is None
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_feedback_is_recorded_with_who_and_audited(svc, seeded, login, clean_db):
    r = login("ranger", user="Rita")
    alert = seeded["alerts"][0]
    resp = r.post(
        f"data/alerts/{alert['id']}/feedback",
        {"verdict": "false_positive", "what": "stump", "note": "the old stump again"},
    )
    assert resp.status_code == 200
    photo = r.post(
        f"data/alerts/{alert['id']}/feedback",
        {"verdict": "false_positive", "image_id": alert["image_ids"][1]},
    )
    assert photo.status_code == 200
    assert r.post(f"data/alerts/{alert['id']}/feedback", {"verdict": "maybe"}).status_code == 400
    assert (
        r.post(f"data/alerts/{alert['id']}/feedback", {"verdict": "unsure", "image_id": 999999}).status_code
        == 400
    )
    rows = clean_db.fetchall("SELECT * FROM feedback ORDER BY id")
    assert [(f["verdict"], f["what"], f["image_id"], f["user_name"], f["user_role"]) for f in rows] == [
        ("false_positive", "stump", None, "Rita", "ranger"),
        ("false_positive", None, alert["image_ids"][1], "Rita", "ranger"),
    ]
    entries = _audit(clean_db, "feedback.recorded")
    assert [e["target"] for e in entries] == [
        f"alert:{alert['id']}",
        f"alert:{alert['id']}/image:{alert['image_ids'][1]}",
    ] and entries[0]["actor"] == "Rita"
    feed = r.json(r.get("data/alerts", params={"state": "false_positive"}))
    assert [a["id"] for a in feed["alerts"]] == [alert["id"]]


def test_alerts_feed_filters_pages_and_answers_304(svc, seeded, login, clean_db, storage):
    v = login("viewer")
    park, cam = seeded["park"]["id"], seeded["camera"]["id"]
    more = [add_alert(clean_db, storage, park, cam, photos=1, category="3")["id"] for _ in range(3)]
    resp = v.get("data/alerts")
    data = v.json(resp)
    ids = [a["id"] for a in data["alerts"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 5
    assert [a["id"] for a in v.json(v.get("data/alerts", params={"category": "vehicle"}))["alerts"]] == more[
        ::-1
    ]
    assert v.json(v.get("data/alerts", params={"before": str(ids[1])}))["alerts"][0]["id"] == ids[2]
    etag = resp.headers["ETag"]
    assert v.get("data/alerts", headers={"if-none-match": etag}).status_code == 304
    newest = add_alert(clean_db, storage, park, cam, photos=1)["id"]
    fresh = v.get("data/alerts", headers={"if-none-match": etag}, params={"after": str(ids[0])})
    assert fresh.status_code == 200 and [a["id"] for a in v.json(fresh)["alerts"]] == [newest]
    assert v.get("data/alerts", params={"category": "tiger"}).status_code == 400


def test_the_alert_page_shows_photos_boxes_rule_deliveries_and_time_line(svc, seeded, login):
    v = login("viewer")
    alert = seeded["alerts"][0]
    body = v.get(f"alerts/{alert['id']}").get_body().decode()
    for image_id in alert["image_ids"]:
        assert f'src="/api/console/data/images/{image_id}"' in body
    assert body.count('class="box box-person') == 2 and "threshold" in body
    assert "hook (webhook)" in body and "delivered on hook" in body and "taken" in body and "scored" in body
    img = v.get(f"data/images/{alert['image_ids'][0]}")
    assert img.status_code == 200 and img.mimetype == "image/jpeg" and img.get_body()[:2] == b"\xff\xd8"
    assert v.get("data/images/999999").status_code == 404
    data = v.json(v.get(f"data/alerts/{alert['id']}"))
    assert data["deliveries"][0]["status"] == "delivered" and len(data["images"]) == 2


def test_the_map_lists_cameras_with_health(svc, seeded, login):
    data = login("viewer").json(login("viewer").get("data/map"))
    by_name = {c["name"]: c for c in data["cameras"]}
    assert by_name["gate-1"]["health"] == "ok" and by_name["gate-1"]["alerts_24h"] == 2
    assert by_name["river-2"]["health"] == "silent"
    assert len(data["outlines"]["park-c"]) == 4


def test_health_colours():
    assert views.health([]) == "ok"
    assert views.health(["low_battery"]) == "low_battery"
    assert views.health(["silent", "low_battery"]) == "silent"
    assert views.health(["silent", "view_changed"]) == "tamper"


def test_operators_place_cameras_rotate_tokens_and_set_rules(svc, seeded, login, clean_db):
    op = login("operator", user="Olu")
    cam = seeded["camera"]["id"]
    resp = op.post(f"data/cameras/{cam}/place", {"latitude": -24.5, "longitude": 31.9, "serials": "SN1, SN2"})
    assert resp.status_code == 200
    row = clean_db.fetchone("SELECT latitude, longitude, serials FROM cameras WHERE id = %s", (cam,))
    assert (row["latitude"], row["longitude"], row["serials"]) == (-24.5, 31.9, ["SN1", "SN2"])
    assert op.post(f"data/cameras/{cam}/place", {"latitude": 91, "longitude": 0}).status_code == 400
    rotated = op.json(op.post(f"data/cameras/{cam}/rotate-token"))
    assert len(rotated["token"]) > 20
    stored = clean_db.fetchone("SELECT token_hash FROM cameras WHERE id = %s", (cam,))["token_hash"]
    assert stored and rotated["token"] not in stored
    ok = op.post(
        "data/rules",
        {"park_id": seeded["park"]["id"], "camera_id": cam, "assignment": "threshold.person=0.7"},
    )
    assert ok.status_code == 200, ok.get_body()
    assert (
        op.post("data/rules", {"park_id": seeded["park"]["id"], "assignment": "nonsense=1"}).status_code
        == 400
    )
    actions = [a["action"] for a in clean_db.fetchall("SELECT action FROM audit_log ORDER BY id")]
    assert actions[-3:] == ["camera.updated", "camera.token_rotated", "rules.updated"]
    assert not any(
        rotated["token"] in json.dumps(a["details"]) for a in clean_db.fetchall("SELECT * FROM audit_log")
    )


@pytest.mark.parametrize("bad", ["alerts/abc", "data/alerts/1/feedback/x", "data/nothing"])
def test_unknown_paths_are_404(svc, seeded, login, bad):
    assert login("admin").get(bad).status_code == 404


def _proposal(db, seeded) -> int:
    image_ids = seeded["alerts"][0]["image_ids"]
    evidence = [
        {"event_id": None, "image_id": i, "at": "2026-12-01T00:00:00Z", "source": "seen"} for i in image_ids
    ]
    return db.fetchone(
        "INSERT INTO suppressions (park_id, camera_id, category, bbox_x, bbox_y, bbox_w, bbox_h, "
        "event_count, "
        "first_seen_at, last_seen_at, status, evidence, proposed_at) VALUES (%s, %s, '2', 0.2, 0.3, 0.25, "
        "0.5, 5, "
        "now(), now(), 'proposed', %s::jsonb, now()) RETURNING id",
        (seeded["park"]["id"], seeded["camera"]["id"], json.dumps(evidence)),
    )["id"]


def test_an_operator_confirms_a_proposal_a_ranger_cannot(svc, seeded, login, clean_db):
    sid = _proposal(clean_db, seeded)
    ranger, op = login("ranger"), login("operator", user="Olu")
    assert ranger.post(f"data/proposals/{sid}/confirm").status_code == 403
    page = op.get("proposals").get_body().decode()
    assert f'id="proposal-{sid}"' in page
    assert f"/data/images/{seeded['alerts'][0]['image_ids'][0]}/thumbnail" in page
    resp = op.post(f"data/proposals/{sid}/confirm", {"note": "a stump"})
    assert resp.status_code == 200 and op.json(resp)["status"] == "suppressed"
    assert op.post(f"data/proposals/{sid}/confirm").status_code == 404  # nothing waits any more
    row = clean_db.fetchone("SELECT status, reviewed_by FROM suppressions WHERE id = %s", (sid,))
    assert row == {"status": "suppressed", "reviewed_by": "Olu"}
    assert [a["actor"] for a in _audit(clean_db, "suppression.confirmed")] == ["Olu"]


def test_an_operator_uploads_a_photo(svc, seeded, login, clean_db):
    from tests.console.conftest import jpeg

    op = login("operator", user="Uma")
    cam = seeded["camera"]["id"]
    resp = op.request(
        "POST",
        "data/upload",
        body=jpeg(shade=33),
        params={"camera": str(cam), "filename": "a.jpg", "timezone": "Africa/Johannesburg"},
        headers={"content-type": "image/jpeg"},
    )
    assert resp.status_code == 200, resp.get_body()
    assert op.json(resp)["status"] == "stored"
    row = clean_db.fetchone("SELECT mode, sender FROM inbound_emails WHERE mode = 'upload'")
    assert row["sender"] == "Uma"
    bad = op.request("POST", "data/upload", body=b"x", params={"camera": "999999"})
    assert bad.status_code == 400


def test_the_cli_prints_a_one_time_link(svc, seeded, clean_db):
    from click.testing import CliRunner

    from functions.cli import cli

    result = CliRunner().invoke(
        cli,
        [
            "console",
            "login-url",
            "--user",
            "Ana",
            "--role",
            "operator",
            "--ttl",
            "5m",
            "--base-url",
            "http://127.0.0.1:7071",
        ],
    )
    assert result.exit_code == 0, result.output
    url = result.output.strip().splitlines()[0]
    assert url.startswith("http://127.0.0.1:7071/api/console/login#t=")
    token = url.split("#t=", 1)[1]
    link = clean_db.fetchone("SELECT * FROM console_login_links")
    assert link["role"] == "operator" and link["user_name"] == "Ana" and token not in link["token_hash"]
    assert _audit(clean_db, "console.link_created")[0]["via"] == "cli"
    c = Client(svc)
    c.get("login")
    assert c.post("login", {"token": token}).status_code == 200
    bad = CliRunner().invoke(
        cli, ["console", "login-url", "--user", "x", "--role", "operator", "--ttl", "9y"]
    )
    assert bad.exit_code != 0


def test_false_positives_at_one_place_become_a_proposal_for_the_operator(svc, seeded, login, clean_db):
    """Rangers' feedback changes behaviour: two events marked false positive with a person box at the same
    place make a suppression proposal (never an automatic suppression for people), which the operator sees
    with the photos it is based on."""
    ranger, op = login("ranger", user="Rita"), login("operator")
    assert "No proposal waiting" in op.get("proposals").get_body().decode()
    first = ranger.json(
        ranger.post(f"data/alerts/{seeded['alerts'][0]['id']}/feedback", {"verdict": "false_positive"})
    )
    assert first["proposed"] == []
    second = ranger.json(
        ranger.post(
            f"data/alerts/{seeded['alerts'][1]['id']}/feedback",
            {"verdict": "false_positive", "what": "stump"},
        )
    )
    assert len(second["proposed"]) == 1 and second["suppressed"] == []
    sid = second["proposed"][0]
    assert clean_db.fetchone("SELECT status FROM suppressions WHERE id = %s", (sid,))["status"] == "proposed"
    page = op.get("proposals").get_body().decode()
    assert f'id="proposal-{sid}"' in page
    for alert in seeded["alerts"][:2]:  # a photo of each event it is based on
        assert any(f"/data/images/{i}/thumbnail" in page for i in alert["image_ids"]), alert
