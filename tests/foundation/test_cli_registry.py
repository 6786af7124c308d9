"""`trapalert parks|cameras|db` against the real PostgreSQL."""

from __future__ import annotations

import json

from click.testing import CliRunner

from functions.cli import cli


def run(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def test_parks_and_cameras(app_settings, clean_db):
    r = run("parks", "add", "kruger-north", "--name", "Kruger North", "--timezone", "Africa/Johannesburg",
            "--inbound-address", "Kruger-North@Alerts.example.org")
    assert r.exit_code == 0, r.output
    r = run("cameras", "add", "KN-07", "--park", "kruger-north", "--sender", "Cam07@Traps.example.org",
            "--alias", "CAM07", "--lat", "-23.9", "--lon", "31.6", "--expected-interval-h", "12")
    assert r.exit_code == 0, r.output
    rows = json.loads(run("cameras", "list", "--json").output)
    assert len(rows) == 1
    cam = rows[0]
    assert cam["sender_addresses"] == ["cam07@traps.example.org"]
    assert cam["aliases"] == ["CAM07"]
    assert cam["expected_interval_s"] == 12 * 3600
    parks = json.loads(run("parks", "list", "--json").output)
    assert parks[0]["inbound_address"] == "kruger-north@alerts.example.org"


def test_bad_input_gets_clear_errors(app_settings, clean_db):
    assert "slug" in run("parks", "add", "Bad Slug!", "--name", "x").output
    assert "time zone" in run("parks", "add", "p1", "--name", "x", "--timezone", "Mars/Olympus").output
    run("parks", "add", "p1", "--name", "P1")
    r = run("cameras", "add", "C1", "--park", "nope")
    assert r.exit_code != 0 and "no park 'nope'" in r.output
    r = run("cameras", "add", "C1", "--park", "p1", "--lat", "123")
    assert r.exit_code != 0 and "latitude" in r.output


def test_cameras_import_csv(app_settings, clean_db, tmp_path):
    run("parks", "add", "p1", "--name", "P1")
    good = tmp_path / "cams.csv"
    good.write_text("park,name,sender_addresses,aliases,latitude,longitude,timezone,expected_interval_h\n"
                    "p1,A1,a1@x.org;shared@x.org,A-1,-1.5,35.1,Africa/Nairobi,6\n"
                    "p1,A2,shared@x.org,A-2,-1.6,35.2,,\n")
    r = run("cameras", "import", str(good))
    assert r.exit_code == 0 and "imported 2" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("park,name,latitude\np1,B1,0\np1,B2,999\n")
    r = run("cameras", "import", str(bad))
    assert r.exit_code != 0 and "line 3" in r.output
    names = [c["name"] for c in json.loads(run("cameras", "list", "--json").output)]
    assert names == ["A1", "A2"]  # nothing of the bad file was written


def test_db_migrate_is_idempotent(app_settings):
    r = run("db", "migrate")
    assert r.exit_code == 0 and "up to date" in r.output
