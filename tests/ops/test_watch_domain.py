"""Theft and tamper watch, the pure decisions (functions/domain/watch.py) and the view signature
(functions/inbound/view_signature.py): photos drawn with Pillow, no services.

A scene is a landscape drawn from a seed (sky, ground, trees, rocks); the same scene with noise, other
lighting, blur and another burned-in data strip is the same view; another seed, a tilted camera or a
black frame is not."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from functions.domain import watch
from functions.domain.health import CameraReport, Thresholds, evaluate, report_of, transitions
from functions.domain.rules import Det
from functions.inbound.view_signature import view_signature

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


# -- photos -----------------------------------------------------------------------------------------------
def scene(seed: int, size: tuple[int, int] = (640, 480), grey: bool = False) -> Image.Image:
    rnd = random.Random(seed)
    w, h = size
    img = Image.new("RGB", size)
    d = ImageDraw.Draw(img)
    horizon = int(h * rnd.uniform(0.3, 0.6))
    for y in range(h):
        sky = (120 + y * 100 // h, 160 + y * 60 // h, 230)
        ground = (90 + rnd.randint(-5, 5), 110 - (y - horizon) * 40 // h, 60)
        d.line([(0, y), (w, y)], fill=sky if y < horizon else ground)
    for _ in range(rnd.randint(5, 12)):
        x, tw, th = rnd.randint(0, w), rnd.randint(10, 50), rnd.randint(h // 4, h // 2)
        d.rectangle([x, horizon - th, x + tw, horizon + 20], fill=(70, 50, 30))
        r = rnd.randint(30, 90)
        d.ellipse(
            [x - r, horizon - th - r, x + tw + r, horizon - th + r], fill=(30, rnd.randint(90, 140), 40)
        )
    for _ in range(rnd.randint(3, 8)):
        x, y, r, g = rnd.randint(0, w), rnd.randint(horizon, h), rnd.randint(10, 60), rnd.randint(100, 160)
        d.ellipse([x - r, y - r // 2, x + r, y + r // 2], fill=(g, g, g - 10))
    if grey:  # an infrared night frame
        img = img.convert("L").convert("RGB")
    return img


def variant(img: Image.Image, k: int) -> Image.Image:
    """The same view on another day: sensor noise, other light, a little blur (k picks the mix)."""
    out = Image.blend(img, Image.effect_noise(img.size, 40 + 5 * k).convert("RGB"), 0.12)
    out = ImageEnhance.Brightness(out).enhance((0.6, 1.3, 0.85, 1.1, 0.75)[k % 5])
    out = ImageEnhance.Contrast(out).enhance((1.2, 0.8, 1.0, 1.1, 0.9)[k % 5])
    return out.filter(ImageFilter.GaussianBlur(k % 3))


def jpeg(img: Image.Image, strip: str | None = "CAM-7 2026-11-20 12:00:00 21C 100%") -> bytes:
    """JPEG bytes, with the camera's burned-in data strip at the bottom (it changes on every photo)."""
    img = img.copy()
    if strip:
        d = ImageDraw.Draw(img)
        d.rectangle([0, img.height - 32, img.width, img.height], fill=(0, 0, 0))
        d.text((12, img.height - 26), strip, fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def black() -> Image.Image:
    return Image.new("RGB", (640, 480), (3, 3, 3))


def sig(img: Image.Image, k: int = 0) -> str:
    s = view_signature(jpeg(img, strip=f"CAM-7 2026-11-{k % 28 + 1:02d} {k % 24:02d}:00:00 {k}C"))
    assert s is not None
    return s


# -- the signature --------------------------------------------------------------------------------------
def test_the_same_view_is_near_and_another_view_is_far():
    ref = watch.reference([watch.parse_signature(sig(variant(scene(1), k), k)) for k in range(5)])

    def d(img: Image.Image, k: int = 9) -> float:
        s = watch.parse_signature(sig(img, k))
        assert s is not None
        return watch.distance(s.pixels, ref)

    same = [d(variant(scene(1), k), k) for k in range(5, 10)]
    assert max(same) < 0.1, same
    assert d(scene(1).filter(ImageFilter.GaussianBlur(4))) < 0.1
    others = [d(scene(seed)) for seed in range(2, 7)]
    assert min(others) > 0.5, others
    assert d(scene(1).rotate(12)) > Thresholds().view_max_distance  # camera knocked sideways
    assert d(scene(1).transform((640, 480), Image.Transform.AFFINE, (1, 0, 90, 0, 1, 0))) > 0.5  # turned
    assert d(black()) == 1.0


def test_signature_form_regime_and_unreadable_bytes():
    day, night = sig(scene(1)), sig(scene(1, grey=True))
    assert day.startswith("v1:c:") and len(day) == 5 + 512
    assert watch.regime_of(day) == "day" and watch.regime_of(night) == "ir"
    assert watch.parse_signature(sig(black())).flat and not watch.parse_signature(day).flat
    # the burned-in strip is not part of the view: two strips, one signature
    assert view_signature(jpeg(scene(1), "A 00:00")) == view_signature(jpeg(scene(1), "B 23:59 -5C 12%"))
    assert view_signature(b"\xff\xd8 not a jpeg") is None
    assert watch.parse_signature("v2:c:00") is None and watch.parse_signature("v1:c:zz") is None
    assert watch.regime_of(None) is None


# -- a camera, in memory (what the repository keeps: watched photos, reference view, raised) --------------
@dataclass
class Camera:
    thresholds: Thresholds = field(default_factory=Thresholds)
    photos: list[tuple[int, str | None, dict]] = field(
        default_factory=list
    )  # (id, sig, record), oldest first
    since: int = 0
    raised: set[str] = field(default_factory=set)
    raises: list[str] = field(default_factory=list)
    clears: list[tuple[str, str]] = field(default_factory=list)

    def photo(self, view: str | None, dets: tuple[Det, ...] = (), person_threshold: float = 0.6) -> dict:
        t = self.thresholds
        image_id = len(self.photos) + 1
        regime = watch.regime_of(view)
        history = [
            watch.WatchedPhoto(i, r["view"], r["close_person"], r["regime"], s)
            for i, s, r in reversed(self.photos)
        ][: watch.history_size(t)]
        refs = [
            s
            for i, s, r in reversed(self.photos)
            if i >= self.since and r["regime"] == regime and r["view"] in ("baseline", "match")
        ][: int(t.view_refs)]
        result = watch.watch_photo(
            watch.PhotoFacts(
                camera_name="cam-7",
                image_id=image_id,
                sig=view,
                detections=dets,
                person_threshold=person_threshold,
                history=tuple(history),
                references=tuple(refs) if regime else (),
                raised=frozenset(self.raised),
                thresholds=t,
            )
        )
        self.photos.append((image_id, view, dict(result.record)))
        if result.adopt:
            self.since = result.adopt.since_image_id
            for i, _, r in self.photos:
                if i in result.adopt.image_ids:
                    r["view"] = "match"
        todo = transitions(result.findings, self.raised)
        for f in todo.raise_:
            self.raised.add(f.condition)
            self.raises.append(f.condition)
        for f in todo.clear:
            self.raised.discard(f.condition)
            self.clears.append((f.condition, f.title))
        return result.record


def test_a_moved_camera_raises_once_and_clears_when_put_back():
    cam = Camera()
    for k in range(8):  # its usual view, on many days, in many lights
        cam.photo(sig(variant(scene(1), k), k))
    assert [r["view"] for _, _, r in cam.photos][:4] == ["baseline", "baseline", "baseline", "match"]
    assert cam.raises == []
    for k in range(3):  # knocked: another view
        record = cam.photo(sig(variant(scene(2), k), k))
        assert record["view"] == "off" and record["view_distance"] > 0.5
    assert cam.raises == ["view_changed"]
    for k in range(3):
        cam.photo(sig(variant(scene(2), k + 3), k))
    assert cam.raises == ["view_changed"]  # once
    cam.photo(sig(variant(scene(1), 2), 2))
    assert cam.clears == []  # one photo is not enough
    cam.photo(sig(variant(scene(1), 3), 3))
    assert [c for c, _ in cam.clears] == ["view_changed"] and "usual view again" in cam.clears[0][1]


def test_a_covered_camera_raises_and_never_adopts_its_blank_view():
    cam = Camera()
    for k in range(4):
        cam.photo(sig(variant(scene(1), k), k))
    for k in range(20):
        cam.photo(sig(black(), k))
    assert cam.raises == ["view_changed"] and cam.clears == []
    assert cam.photos[-1][2]["view"] == "off" and cam.photos[-1][2]["view_distance"] == 1.0


def test_a_new_stable_view_is_adopted_after_view_adopt_photos():
    cam = Camera(thresholds=Thresholds.merged({"view_adopt_photos": 6}))
    for k in range(4):
        cam.photo(sig(variant(scene(1), k), k))
    for k in range(6):
        cam.photo(sig(variant(scene(3), k), k))
    assert cam.raises == ["view_changed"]
    assert [c for c, _ in cam.clears] == ["view_changed"] and "reference view" in cam.clears[0][1]
    assert cam.since == 5  # the first photo of the new view
    for k in range(6, 10):  # the new view is now the usual one
        assert cam.photo(sig(variant(scene(3), k), k))["view"] == "match"
    assert cam.raises == ["view_changed"]


def test_photos_that_differ_from_each_other_are_no_changed_view():
    """Vegetation in the wind, animals passing: off photos that do not agree with each other raise nothing."""
    cam = Camera()
    for k in range(4):
        cam.photo(sig(variant(scene(1), k), k))
    for seed in range(10, 20):
        cam.photo(sig(scene(seed)))
    assert cam.raises == []


def test_infrared_frames_are_compared_with_infrared_frames_and_big_boxes_are_skipped():
    cam = Camera()
    for k in range(4):
        cam.photo(sig(variant(scene(1), k), k))
    nights = [cam.photo(sig(variant(scene(1, grey=True), k), k)) for k in range(5)]
    assert [r["regime"] for r in nights] == ["ir"] * 5
    assert [r["view"] for r in nights] == ["baseline"] * 3 + ["match"] * 2
    elephant = (Det("1", 0.9, (0.0, 0.1, 0.9, 0.8)),)  # right in front of the lens
    for seed in (30, 31, 32):
        assert cam.photo(sig(scene(seed)), elephant)["view"] == "skipped"
    assert cam.photo(None)["view"] == "unknown"
    assert cam.raises == []


# -- someone at the camera ------------------------------------------------------------------------------
CLOSE = Det("2", 0.9, (0.2, 0.1, 0.55, 0.85))  # area 0.47, height 0.85
TALL = Det("2", 0.8, (0.45, 0.2, 0.12, 0.7))  # narrow but 70% of the height: standing right at it
FAR = Det("2", 0.95, (0.4, 0.3, 0.2, 0.5))  # a person passing at a distance


def test_close_person_box_and_thresholds():
    t = Thresholds()
    assert watch.close_person((CLOSE,), 0.6, t) == CLOSE
    assert watch.close_person((TALL, FAR), 0.6, t) == TALL
    assert watch.close_person((FAR,), 0.6, t) is None
    assert watch.close_person((CLOSE,), 0.95, t) is None  # under the rules' person threshold
    assert watch.close_person((Det("1", 0.99, CLOSE.bbox),), 0.6, t) is None  # an animal
    strict = Thresholds.merged({"close_person_area": 0.5}, {"close_person_height": 0.9})
    assert watch.close_person((CLOSE,), 0.6, strict) is None


def test_someone_at_the_camera_raises_with_the_photo_and_clears_after_photos_without():
    cam = Camera()
    view = sig(scene(1))
    cam.photo(view, (FAR,))
    assert cam.raises == []
    record = cam.photo(view, (CLOSE,))
    assert record["close_person"] and record["person"]["conf"] == 0.9
    assert cam.raises == ["someone_at_camera"]
    cam.photo(view, (TALL,))
    cam.photo(view)
    cam.photo(view, (FAR,))
    assert cam.raises == ["someone_at_camera"] and cam.clears == []
    cam.photo(view)
    assert [c for c, _ in cam.clears] == ["someone_at_camera"]


def test_someone_at_the_camera_title_names_the_box():
    cam = Camera()
    result = watch.watch_photo(
        watch.PhotoFacts("cam-7", 1, None, (CLOSE,), 0.6, (), (), frozenset(), Thresholds())
    )
    f = result.findings["someone_at_camera"]
    assert f.active is True and "someone is at the camera" in f.title and "47%" in f.title
    assert f.details["image_id"] == 1 and cam.raises == []


def test_the_timer_clears_someone_at_the_camera_after_the_quiet_period():
    t = Thresholds.merged({"close_person_quiet_s": 600})
    recent = CameraReport(
        1, "c", last_seen_at=NOW, last_close_person_at=NOW - timedelta(minutes=5), thresholds=t
    )
    assert "someone_at_camera" not in evaluate(recent, NOW)
    old = CameraReport(
        1, "c", last_seen_at=NOW, last_close_person_at=NOW - timedelta(minutes=11), thresholds=t
    )
    f = evaluate(old, NOW)["someone_at_camera"]
    assert f.active is False and "10 min" in f.title
    assert transitions(evaluate(old, NOW), {"someone_at_camera"}).clear[0].condition == "someone_at_camera"
    facts = {"id": 1, "name": "c", "expected_interval_s": 60, "last_close_person_at": NOW}
    assert report_of(facts).last_close_person_at == NOW


# -- neighbours going silent together -------------------------------------------------------------------
def cam_(i, silent=True, hours_ago=30.0, zone=None, lat=None, lon=None, group=(), park=1):
    return watch.Neighbour(
        camera_id=i,
        park_id=park,
        name=f"cam-{i}",
        silent=silent,
        since=NOW - timedelta(hours=hours_ago),
        zone=zone,
        latitude=lat,
        longitude=lon,
        group=tuple(group),
    )


def test_three_silent_cameras_of_one_zone_raise_one_alert_on_the_first_of_them():
    cams = [cam_(5, zone="North"), cam_(3, zone="north", hours_ago=31), cam_(9, zone="North", hours_ago=28)]
    cams += [cam_(4, zone="South"), cam_(6, silent=False, zone="North")]
    found = watch.neighbours_silent(cams, {})
    assert list(found) == [3]
    f = found[3]
    assert f.active is True and f.details["camera_ids"] == [3, 5, 9]
    assert "3 neighbouring cameras went silent together: cam-3, cam-5, cam-9" in f.title
    # two are not enough; nor are three silent at times far apart
    assert watch.neighbours_silent(cams[:2], {}) == {}
    apart = [
        cam_(1, zone="z", hours_ago=30),
        cam_(2, zone="z", hours_ago=50),
        cam_(3, zone="z", hours_ago=80),
    ]
    assert watch.neighbours_silent(apart, {}) == {}
    assert list(watch.neighbours_silent(apart, {1: Thresholds.merged({"neighbours_window_s": 60 * 3600})}))


def test_cameras_within_the_radius_are_neighbours_chained():
    # about 1.1 km apart along a line: 1-2-3 chained within 2 km, 4 is 20 km away
    cams = [cam_(1, lat=-24.0, lon=31.0), cam_(2, lat=-24.01, lon=31.0), cam_(3, lat=-24.02, lon=31.0)]
    cams.append(cam_(4, lat=-24.2, lon=31.0))
    assert watch.metres(cams[0], cams[1]) == pytest.approx(1112, rel=0.01)
    found = watch.neighbours_silent(cams, {})
    assert list(found) == [1] and found[1].details["camera_ids"] == [1, 2, 3]
    assert watch.neighbours_silent(cams, {1: Thresholds.merged({"neighbours_radius_m": 1000})}) == {}
    # another park's cameras are never neighbours
    assert watch.neighbours_silent([cams[0], cams[1], cam_(3, lat=-24.02, lon=31.0, park=2)], {}) == {}


def test_a_raised_group_stays_one_alert_and_clears_when_they_report_again():
    group = (3, 5, 9)
    cams = [cam_(3, zone="n", group=group), cam_(5, zone="n"), cam_(9, zone="n"), cam_(11, zone="n")]
    assert watch.neighbours_silent(cams, {}) == {}  # raised already; a fourth one joins silently
    back = [cam_(3, zone="n", group=group), cam_(5, silent=False, zone="n"), cam_(9, zone="n")]
    f = watch.neighbours_silent(back, {})[3]
    assert f.active is False and "report again (cam-5)" in f.title and f.details["still_silent"] == [3, 9]
