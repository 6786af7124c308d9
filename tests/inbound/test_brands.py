"""Camera brands as plugins (functions/inbound/brands/): every brand's sample emails, built from the
documented facts (functions/inbound/brands/samples.py), are read correctly, in both SendGrid modes; the
camera is decided per photo; generic is the fallback; third-party brands come through entry points."""

from __future__ import annotations

import importlib
import sys
import textwrap
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from functions.inbound.brands import (
    ENTRY_POINT_GROUP,
    available_brands,
    brands,
    read_email,
    refresh,
    samples,
)
from functions.inbound.brands.common import key_values, parse_status, read_exif
from functions.inbound.parse_sendgrid import InboundEmail

STATUS_KEYS = ("battery_pct", "battery_low", "sd_free_mb", "sd_total_mb", "temperature_c")


@pytest.mark.parametrize("mode", ["parsed", "raw"])
@pytest.mark.parametrize("name", sorted(samples.ALL))
def test_each_brand_sample_is_read_by_its_brand(name, mode):
    sample = samples.ALL[name](mode=mode)
    reading = read_email(sample.email())
    want = sample.expected
    assert reading.brand == name
    assert reading.camera_id == want["camera_id"]
    assert reading.vendor_shared is want["vendor_shared"]
    assert reading.serial == want.get("serial")
    if "taken_at" in want:
        assert reading.taken_at == want["taken_at"]
    # exactly the status facts the sample reports, nothing invented
    assert reading.status() == {k: want[k] for k in STATUS_KEYS if k in want}
    assert reading.photos, "every sample has a photo"
    if "photo_serial" in want:
        assert reading.photos[0].serial == want["photo_serial"]


def test_cuddelink_two_cameras_in_one_email_each_photo_names_its_own():
    reading = read_email(samples.cuddelink().email())
    assert reading.brand == "cuddelink" and reading.vendor_shared
    assert reading.camera_id == "RIVER-HOME01"  # the network's camera, from the subject
    got = [(p.attachment_index, p.camera_id, p.serial, p.taken_at) for p in reading.photos]
    want = samples.cuddelink().expected["photos"]
    assert got == [(i, *w) for i, w in enumerate(want, start=1)]
    assert len({p.camera_id for p in reading.photos}) == 2


def test_ridgetec_photo_is_a_link_with_its_time_zone_and_imei():
    url = "https://portal.ridgetec.com/camera/image-cache/abc123"
    reading = read_email(
        samples.ridgetec(url=url, created="2026-07-04 05:30:00", tz="America/Los_Angeles").email()
    )
    assert reading.brand == "ridgetec" and reading.link_hosts == ("portal.ridgetec.com",)
    [photo] = reading.photos
    assert photo.url == url and photo.attachment_index is None
    assert photo.filename == "PICT0042.JPG" and photo.serial == "860000000000042"
    assert photo.tz == "America/Los_Angeles"
    assert photo.taken_at == datetime(2026, 7, 4, 5, 30, tzinfo=ZoneInfo("America/Los_Angeles"))
    assert photo.taken_at.utcoffset().total_seconds() == -7 * 3600  # summer time in California
    assert reading.taken_at == photo.taken_at and reading.serial == photo.serial
    assert "account 1234" in reading.notes


def test_ridgetec_ignores_non_web_sources_and_unknown_zones():
    sample = samples.ridgetec(url="javascript:alert(1)", tz="Mars/Olympus")
    reading = read_email(sample.email())
    assert reading.brand == "ridgetec" and reading.photos == []
    assert any("not a web link" in n for n in reading.notes)


def test_generic_fallback_for_an_unknown_camera():
    email = InboundEmail(
        mode="parsed",
        sender="someone@example.net",
        sender_address="someone@example.net",
        subject="motion alert",
        text="Cam: GATE-2\nSerial No: X99-7\nBattery: 7%\n",
    )
    reading = read_email(email)
    assert reading.brand == "generic" and not reading.vendor_shared
    assert (reading.camera_id, reading.serial, reading.battery_pct) == ("GATE-2", "X99-7", 7.0)
    assert reading.photos == []


def test_vendor_cloud_brand_is_shared_only_from_the_vendor_domain():
    email = InboundEmail(
        mode="parsed",
        sender_address="me@my-own-domain.example",
        subject="SPYPOINT - New photo from LM3-RIDGE",
    )
    reading = read_email(email)
    assert reading.brand == "spypoint" and reading.camera_id == "LM3-RIDGE"
    assert reading.vendor_shared is False  # forwarded from the owner's own address


@pytest.mark.parametrize(
    "text, want",
    [
        ("Battery:100%", {"battery_pct": 100.0}),
        ("Batt 15% Low battery", {"battery_pct": 15.0, "battery_low": True}),
        ("Temp 88F", {"temperature_c": 31.1}),
        ("Temperature: -2 °C", {"temperature_c": -2.0}),
        ("Temperature:21℃", {"temperature_c": 21.0}),
        ("Temp:19 Celsius Degree", {"temperature_c": 19.0}),
        ("SD card free space: 14.7GB of 14.8GB", {"sd_free_mb": 15052.8, "sd_total_mb": 15155.2}),
        ("SD:15115M/15189M", {"sd_free_mb": 15115.0, "sd_total_mb": 15189.0}),
        ("SD:20000M/15189M", {}),  # more free than total: not a reading
        ("Battery: 240%", {}),
        ("nothing here", {}),
    ],
)
def test_status_lines(text, want):
    assert parse_status("", text) == want


def test_status_parsing_is_bounded_on_hostile_input():
    # a long run that an unbounded pattern would backtrack over: cut and linear, still the right answer
    hostile = "Battery " * 20_000 + "Battery: 50%"
    assert parse_status("", hostile) == {}  # the reading lies beyond the cut (MAX_TEXT_CHARS)
    assert parse_status("Battery: 50%", hostile) == {"battery_pct": 50.0}


def test_exif_user_comment_and_key_values():
    data = samples.jpeg(user_comment="ID=NORTH 2,MA=00AA,BP=50%", serial="B-1", make="CUDDEBACK")
    tags = read_exif(data)
    assert tags["UserComment"] == "ID=NORTH 2,MA=00AA,BP=50%" and tags["BodySerialNumber"] == "B-1"
    assert key_values(tags["UserComment"]) == {"ID": "NORTH 2", "MA": "00AA", "BP": "50%"}
    assert read_exif(b"not an image") == {}


PLUGIN = textwrap.dedent(
    """
    from functions.inbound.brands.common import AttachedPhotosBrand, find, subject_of

    class AcmeTrap(AttachedPhotosBrand):
        name = "acme"
        vendor_shared = True
        sender_domains = ("acme-traps.example",)

        def camera_id(self, email):
            m = find(r"unit (?P<id>[0-9]{1,4})", subject_of(email), email)
            return m.group("id") if m else None

    class Exploding:
        name = "exploding"
        vendor_shared = False
        link_hosts = ()

        def detect(self, email):
            return 100

        def read(self, email, exif):
            raise RuntimeError("plugin bug")

    FAKE_GENERIC = AcmeTrap()
    """
)


@pytest.fixture
def brand_plugin(tmp_path, monkeypatch):
    """An installed distribution (dist-info on sys.path) registering camera brands."""
    (tmp_path / "acme_brand.py").write_text(PLUGIN)
    dist = tmp_path / "acme_brand-0.3.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-brand\nVersion: 0.3.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n"
        "acme = acme_brand:AcmeTrap\n"
        "generic = acme_brand:FAKE_GENERIC\n"
        "missing = acme_brand_nope:Thing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    refresh()
    yield dist
    sys.modules.pop("acme_brand", None)
    refresh()


def test_third_party_brand_through_entry_point(brand_plugin):
    kinds = available_brands()
    assert kinds["acme"] == "entry point acme_brand:AcmeTrap (acme-brand 0.3.0)"
    assert kinds["generic"].startswith("builtin")  # a built-in cannot be shadowed
    loaded = brands()
    assert "acme" in loaded and "missing" not in loaded  # a plugin that does not import is skipped
    email = InboundEmail(mode="parsed", sender_address="cloud@mx.acme-traps.example", subject="unit 42 photo")
    reading = read_email(email)
    assert (reading.brand, reading.camera_id, reading.vendor_shared) == ("acme", "42", True)
    assert type(loaded["generic"]).__module__ == "functions.inbound.brands.generic"


def test_a_failing_plugin_falls_back_to_generic(brand_plugin):
    with (brand_plugin / "entry_points.txt").open("a") as f:
        f.write("exploding = acme_brand:Exploding\n")
    importlib.invalidate_caches()
    refresh()
    email = InboundEmail(mode="parsed", sender_address="x@y.example", subject="[CAM09] hello")
    reading = read_email(email)
    assert reading.brand == "generic" and reading.camera_id == "CAM09"
    assert any("brand exploding failed" in n for n in reading.notes)


def test_cli_brands_list(brand_plugin):
    from functions.cli import cli

    result = CliRunner().invoke(cli, ["brands", "list"])
    assert result.exit_code == 0, result.output
    assert "portal.ridgetec.com" in result.output
    for name in [*samples.ALL, "acme"]:
        assert f"\n{name} " in "\n" + result.output


def test_exif_reader_is_injectable():
    """read_email(email, exif): the caller may hand over EXIF it already read (the interface h4 uses)."""
    email = samples.cuddelink().email()
    calls: list[int] = []

    def exif(index: int):
        calls.append(index)
        return {"UserComment": f"ID=INJECTED-{index},MA=FF0{index}"}

    reading = read_email(email, exif)
    assert calls == [1, 2]
    got = [(p.camera_id, p.serial) for p in reading.photos]
    assert got == [("INJECTED-1", "FF01"), ("INJECTED-2", "FF02")]
