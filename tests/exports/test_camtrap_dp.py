"""`trapalert export camtrap-dp`: a Camtrap DP 1.0.2 package of a seeded park, validated with frictionless
against the standard's table schemas and with jsonschema against its profile (tests/exports/validate.py)."""

from __future__ import annotations

import csv
import json
from datetime import timedelta

import httpx
from click.testing import CliRunner

from functions.cli import cli

from .seed import T0, run_cli
from .validate import validate_package


def serengeti_b0():
    return T0 + timedelta(days=1)


def _table(folder, name) -> list[dict]:
    with (folder / f"{name}.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_a_park_exports_as_a_valid_package_with_files(serengeti, tmp_path):
    out = tmp_path / "pkg"
    result = run_cli(
        "export", "camtrap-dp", "--park", "serengeti", "--out", str(out), "--media", "files", "--json"
    )
    report = json.loads(result.output)
    assert validate_package(out) == []

    deployments = {d["deploymentID"]: d for d in _table(out, "deployments")}
    assert set(deployments) == {"cam-a", "cam-b"}  # cam-c has no location at all
    assert any("cam-c: no location" in w and "1 photos" in w for w in report["warnings"])
    a, b = deployments["cam-a"], deployments["cam-b"]
    assert (a["latitude"], a["longitude"], a["cameraID"], a["cameraModel"]) == (
        "-2.33",
        "34.83",
        "861234567890123",
        "ridgetec",
    )
    assert (float(b["latitude"]), float(b["longitude"])) == (-2.41, 34.91)  # median of its photos' GPS
    assert a["deploymentStart"] == "2026-02-20T01:00:00+03:00"  # when the camera was added, park time
    assert a["timestampIssues"] == "true" and b["timestampIssues"] == "false"  # p7's time is its arrival

    media = {m["mediaID"]: m for m in _table(out, "media")}
    ids = {label: str(p["id"]) for label, p in serengeti.photos.items()}
    assert set(media) == {ids[k] for k in ("p1", "p2", "p3", "p4", "p5", "p6", "p7", "b1", "b2")}
    public = {label for label, i in ids.items() if i in media and media[i]["filePublic"] == "true"}
    assert public == {"p4", "p5"}  # people (any box, or a human event), and the unscored, are not public
    p1 = media[ids["p1"]]
    assert p1["timestamp"] == "2026-03-02T01:00:00+03:00" and p1["captureMethod"] == "activityDetection"
    assert p1["fileMediatype"] == "image/jpeg" and p1["fileName"] == "IMG_p1.JPG"
    for label in ("p1", "b2"):
        m = media[ids[label]]
        assert m["filePath"] == f"media/{serengeti.photos[label]['blob']}"
        assert (out / m["filePath"]).read_bytes() == serengeti.photos[label]["data"]
    assert "unreadable_image" in media[ids["p7"]]["mediaComments"]

    obs = {(o["eventID"], o["observationType"]): o for o in _table(out, "observations")}
    ev = {k: str(v) for k, v in serengeti.events.items()}
    assert set(obs) == {
        (ev["night"], "human"),
        (ev["day"], "animal"),
        (ev["empty"], "blank"),
        (ev["fp"], "animal"),
    }
    assert all(o["observationLevel"] == "event" for o in obs.values())
    night = obs[(ev["night"], "human")]
    # a ranger confirmed it (after another was unsure): human classification, the model's count kept
    assert (night["classificationMethod"], night["classifiedBy"], night["count"]) == ("human", "juma", "2")
    assert night["classificationTimestamp"] == "2026-03-02T03:00:00+03:00"
    assert (
        night["eventStart"] == "2026-03-02T01:00:00+03:00"
        and night["eventEnd"] == "2026-03-02T01:00:04+03:00"
    )
    assert f"alert:{serengeti.alerts['night']}" in night["observationTags"]
    day = obs[(ev["day"], "animal")]
    # the machine: best unsuppressed box (the stump's 0.95 does not count), most boxes in one photo
    assert (day["classificationMethod"], day["classifiedBy"]) == ("machine", "md_v5a.0.0.pt")
    assert (float(day["classificationProbability"]), day["count"]) == (0.75, "2")
    blank = obs[(ev["empty"], "blank")]
    assert blank["classificationMethod"] == "machine" and blank["count"] == ""
    fp = obs[(ev["fp"], "animal")]  # the ranger's correction of the model's person
    assert (fp["classificationMethod"], fp["classifiedBy"]) == ("human", "juma")
    assert "feedback:false_positive:animal" in fp["observationTags"]

    package = json.loads((out / "datapackage.json").read_text())
    assert (
        package["profile"]
        == "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/camtrap-dp-profile.json"
    )
    assert package["temporal"] == {"start": "2026-02-19", "end": package["temporal"]["end"]}
    assert package["spatial"]["type"] == "Polygon"
    assert package["project"]["observationLevel"] == ["event"]
    assert report["counts"]["media"] == 9 and report["counts"]["human_classified"] == 2


def test_links_expire_and_open_the_photo(serengeti, seeder, tmp_path):
    seeder.photo(serengeti, "b1-again", "cam-b", serengeti_b0(), same_as="b1")
    out = tmp_path / "links"
    run_cli(
        "export",
        "camtrap-dp",
        "--park",
        "serengeti",
        "--camera",
        "cam-b",
        "--out",
        str(out),
        "--link-hours",
        "2",
        "--until",
        "2026-03-02",
        "--round-coordinates",
        "1",
    )
    assert validate_package(out) == []
    media = _table(out, "media")
    assert [m["fileName"] for m in media] == ["IMG_b1.JPG", "IMG_b2.JPG"]
    link = media[0]["filePath"]
    assert "sig=" in link and "se=" in link and "sp=r" in link
    assert httpx.get(link, timeout=10).content == serengeti.photos["b1"]["data"]
    assert not (out / "media").exists()
    # --camera: only that camera's deployment; --until excludes later photos
    deployments = _table(out, "deployments")
    assert [(d["deploymentID"], d["latitude"], d["longitude"]) for d in deployments] == [
        ("cam-b", "-2.4", "34.9")
    ]
    assert json.loads((out / "datapackage.json").read_text())["coordinatePrecision"] == 0.1


def test_an_empty_park_is_a_valid_empty_package(seeder, tmp_path):
    seeder.park("quiet")
    out = tmp_path / "empty"
    result = run_cli("export", "camtrap-dp", "--park", "quiet", "--out", str(out))
    assert f"{out}: 0 deployments, 0 media, 0 observations" in result.output
    assert validate_package(out) == []
    for table in ("deployments", "media", "observations"):
        assert _table(out, table) == []
        assert (out / f"{table}.csv").read_text().count("\n") == 1  # the header row only
    package = json.loads((out / "datapackage.json").read_text())
    assert package["spatial"] == {"type": "FeatureCollection", "features": []}
    assert package["taxonomic"] == []


def test_a_folder_that_is_not_empty_is_refused(seeder, tmp_path):
    seeder.park("quiet")
    (tmp_path / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["export", "camtrap-dp", "--park", "quiet", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "not empty" in result.output
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_the_validator_catches_a_broken_package(seeder, tmp_path):
    seeder.park("quiet")
    out = tmp_path / "broken"
    run_cli("export", "camtrap-dp", "--park", "quiet", "--out", str(out))
    with (out / "media.csv").open("a") as fh:
        fh.write("m1,nowhere,activityDetection,2026-03-01 10:00,../up.jpg,maybe,,text/plain,,,\n")
    errors = " ".join(validate_package(out))
    for kind in ("foreign-key", "type-error", "constraint-error"):
        assert kind in errors


def test_a_photo_gone_from_storage_is_left_out_of_the_files_with_a_warning(seeder, tmp_path):
    s = seeder.park("lost")
    seeder.camera(s, "cam-l", -1.0, 36.0)
    seeder.photo(s, "kept", "cam-l", T0)
    seeder.photo(s, "gone", "cam-l", T0 + timedelta(minutes=5), put_blob=False)
    out = tmp_path / "pkg"
    result = run_cli(
        "export", "camtrap-dp", "--park", "lost", "--out", str(out), "--media", "files", "--json"
    )
    warnings = json.loads(result.output)["warnings"]
    gone = s.photos["gone"]["id"]
    assert warnings == [
        f"1 photos are no longer in blob storage and are left out of media.csv (image ids {gone})"
    ]
    assert [m["fileName"] for m in _table(out, "media")] == ["IMG_kept.JPG"]
    assert validate_package(out) == []
