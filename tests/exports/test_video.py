"""Video clips in the exports: the clip is one entry (MegaDetector's video fields) and one media row; its
kept frames (images rows of their own, functions/handlers/process_video.py) lend it their detections."""

from __future__ import annotations

import csv
import json
from datetime import timedelta

from functions.exports import md_json

from .seed import T0, run_cli
from .validate import validate_package


def _clip_park(seeder):
    s = seeder.park("mara")
    seeder.camera(s, "cam-v", -1.5, 35.1)
    seeder.event(s, "clip", "cam-v", T0, T0 + timedelta(seconds=4), 3, ["person"])
    video = {"frame_rate": 25.0, "frames_processed": [0, 50, 100]}
    seeder.photo(s, "v0", "cam-v", T0, event="clip", video=video)
    seeder.photo(s, "f0", "cam-v", T0, event="clip", clip="v0", frame=0)
    seeder.photo(
        s,
        "f50",
        "cam-v",
        T0 + timedelta(seconds=2),
        event="clip",
        clip="v0",
        frame=50,
        dets=[("2", 0.8, (0.1, 0.2, 0.3, 0.4))],
    )
    return s


def test_a_clip_is_one_entry_with_its_frames_detections(seeder, tmp_path):
    s = _clip_park(seeder)
    out = tmp_path / "mara.json"
    run_cli("export", "md-json", "--park", "mara", "--out", str(out))
    doc = json.loads(out.read_text())
    md_json.check_document(doc)
    assert doc["images"] == [
        {
            "file": s.photos["v0"]["blob"],
            "frame_rate": 25.0,
            "frames_processed": [0, 50, 100],
            "detections": [{"category": "2", "conf": 0.8, "bbox": [0.1, 0.2, 0.3, 0.4], "frame_number": 50}],
        }
    ]


def test_a_clip_is_one_media_row_private_when_a_frame_shows_a_person(seeder, tmp_path):
    s = _clip_park(seeder)
    out = tmp_path / "pkg"
    run_cli("export", "camtrap-dp", "--park", "mara", "--out", str(out), "--media", "files")
    assert validate_package(out) == []
    with (out / "media.csv").open(newline="") as fh:
        media = list(csv.DictReader(fh))
    assert [(m["mediaID"], m["fileMediatype"], m["filePublic"]) for m in media] == [
        (str(s.photos["v0"]["id"]), "video/mp4", "false")
    ]
    with (out / "observations.csv").open(newline="") as fh:
        obs = list(csv.DictReader(fh))
    assert [(o["observationType"], o["count"]) for o in obs] == [("human", "1")]
