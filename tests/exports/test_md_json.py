"""`trapalert export md-json`: the MegaDetector output format of a park's photos (round trip), and the one
writer's rules (functions/exports/md_json.py)."""

from __future__ import annotations

import json

import pytest

from functions.exports import md_json

from .seed import T0, run_cli


def _load(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_a_park_round_trips_every_photo_once_with_failures_as_strings(serengeti, seeder, tmp_path):
    # the same photo delivered a second time (another email): one file, listed once
    seeder.photo(serengeti, "p1-again", "cam-a", T0, same_as="p1", dets=[("2", 0.91, (0.2, 0.3, 0.1, 0.4))])
    out = tmp_path / "serengeti.json"
    result = run_cli("export", "md-json", "--park", "serengeti", "--out", str(out), "--json")
    counts = json.loads(result.output)["counts"]
    doc = _load(out)
    md_json.check_document(doc)  # the format's rules, as Timelapse reads them

    assert doc["info"]["format_version"] == "1.4"
    assert doc["info"]["detector"] == "md_v5a.0.0.pt"
    assert doc["info"]["detector_metadata"]["typical_detection_threshold"] == 0.2
    assert doc["info"]["detection_completion_time"] == "2026-03-03 22:00:03"  # the last scoring
    assert doc["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}

    by_file = {i["file"]: i for i in doc["images"]}
    assert len(by_file) == len(doc["images"]) == len(serengeti.photos) - 1 == counts["images"] == 10
    assert set(by_file) == {p["blob"] for p in serengeti.photos.values()}
    assert all(not f.startswith("/") and f.split("/")[1].startswith("cam-") for f in by_file)

    p1 = by_file[serengeti.photos["p1"]["blob"]]
    assert p1["detections"] == [
        {"category": "2", "conf": 0.91, "bbox": [0.2, 0.3, 0.1, 0.4]},
        {"category": "1", "conf": 0.05, "bbox": [0.2, 0.3, 0.1, 0.4]},
    ]
    assert all(isinstance(d["conf"], float) for d in p1["detections"])
    blank = by_file[serengeti.photos["p3"]["blob"]]
    assert blank["detections"] == [] and "failure" not in blank
    failed = by_file[serengeti.photos["p7"]["blob"]]
    assert failed["detections"] is None
    assert failed["failure"] == "unreadable_image: cannot identify image file"
    assert counts["failures"] == 1


def test_camera_and_period_filters(serengeti, tmp_path):
    out = tmp_path / "a.json"
    run_cli("export", "md-json", "--park", "serengeti", "--camera", "cam-b", "--out", str(out))
    assert sorted(i["file"] for i in _load(out)["images"]) == sorted(
        serengeti.photos[k]["blob"] for k in ("b1", "b2")
    )
    # --until a day includes that whole day; --since a time is exact
    run_cli(
        "export",
        "md-json",
        "--park",
        "serengeti",
        "--since",
        (T0.isoformat()),
        "--until",
        f"{T0:%Y-%m-%d}",
        "--out",
        str(out),
    )
    assert {i["file"] for i in _load(out)["images"]} == {
        serengeti.photos[k]["blob"] for k in ("p1", "p2", "p3")
    }


def test_unknown_park_is_a_clear_error(seeder, tmp_path):
    from click.testing import CliRunner

    from functions.cli import cli

    result = CliRunner().invoke(cli, ["export", "md-json", "--park", "nowhere", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0 and "no park 'nowhere'" in result.output


def test_an_empty_park_is_a_valid_empty_document(seeder, tmp_path):
    seeder.park("empty-park")
    out = tmp_path / "empty.json"
    run_cli("export", "md-json", "--park", "empty-park", "--out", str(out))
    doc = _load(out)
    md_json.check_document(doc)
    assert doc["images"] == [] and doc["info"]["detector"] == "unknown"


def test_md_document_enforces_the_format():
    info = md_json.detector_info("md_v1000.0.0-redwood.pt", None)
    assert info["detector_metadata"] == {"typical_detection_threshold": 0.3}  # no conservative one published
    assert md_json.detector_info("hog-people", "opencv")["detector_metadata"] == {
        "megadetector_version": "opencv"
    }
    doc = md_json.md_document(
        [
            {
                "file": "p\\c\\a.jpg",
                "detections": [{"category": "1", "conf": 1, "bbox": (0.1, 0.2, 0.3, 0.4)}],
            },
            {"file": "p/c/b.jpg", "detections": [], "failure": "unreadable_image: x"},
        ],
        info,
    )
    assert doc["images"][0] == {
        "file": "p/c/a.jpg",
        "detections": [{"category": "1", "conf": 1.0, "bbox": [0.1, 0.2, 0.3, 0.4]}],
    }
    assert isinstance(doc["images"][0]["detections"][0]["conf"], float)
    assert doc["images"][1] == {"file": "p/c/b.jpg", "detections": None, "failure": "unreadable_image: x"}
    with pytest.raises(md_json.MDFormatError, match="twice"):
        md_json.md_document([{"file": "a.jpg", "detections": []}] * 2, info)
    with pytest.raises(md_json.MDFormatError, match="unknown category"):
        md_json.md_document(
            [{"file": "a.jpg", "detections": [{"category": "7", "conf": 0.5, "bbox": [0] * 4}]}], info
        )
    with pytest.raises(md_json.MDFormatError, match="failure is a string"):
        md_json.check_document(doc | {"images": [{"file": "a", "detections": [], "failure": "x"}]})
