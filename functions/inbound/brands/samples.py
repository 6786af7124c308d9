"""Sample emails of each camera brand, as SendGrid would POST them, for tests and ``trapalert simulate``.

Built from the documented facts of each brand (the module docstrings here, ARCHITECTURE.md "Camera email
formats seen in the field"), with made-up names, ids and photos: no vendor's sample file is copied.

    sample = ridgetec(to="park-x@alerts.example.org", url="https://portal.ridgetec.com/camera/image-cache/x")
    sample.payload.body, sample.payload.headers(...)      # the POST
    sample.email()                                        # the parsed InboundEmail
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..parse_sendgrid import InboundEmail, parse_request
from ..sendgrid_payload import ImageFile, Payload, build_payload

PARK = "park-x@alerts.example.org"


def jpeg(
    *,
    make: str | None = None,
    model: str | None = None,
    user_comment: str | None = None,
    taken: str | None = None,
    serial: str | None = None,
    color: tuple[int, int, int] = (60, 110, 70),
    size: tuple[int, int] = (160, 120),
) -> bytes:
    """A small JPEG with the EXIF a camera writes (UserComment as EXIF's 8-byte ASCII charset + text)."""
    from PIL import Image

    img = Image.new("RGB", size, color)
    exif = Image.Exif()
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    sub = exif.get_ifd(0x8769)
    if user_comment is not None:
        sub[0x9286] = b"ASCII\x00\x00\x00" + user_comment.encode("ascii")
    if taken:
        sub[0x9003] = taken
    if serial:
        sub[0xA431] = serial
    out = io.BytesIO()
    img.save(out, "JPEG", quality=80, exif=exif)
    return out.getvalue()


@dataclass
class Sample:
    brand: str
    payload: Payload
    html: str | None = None
    expected: dict[str, Any] = field(default_factory=dict)

    def email(self) -> InboundEmail:
        return parse_request(self.payload.body, self.payload.content_type)


def _post(
    sender: str,
    subject: str,
    *,
    text: str = "",
    html: str | None = None,
    images=(),
    to: str = PARK,
    date: datetime | None = None,
    mode: str = "parsed",
) -> Payload:
    return build_payload(
        sender=sender,
        to=to,
        subject=subject,
        text=text,
        html=html,
        images=list(images),
        date=date or datetime(2026, 11, 30, 22, 15, tzinfo=UTC),
        mode=mode,
    )


def cuddelink(to: str = PARK, mode: str = "parsed") -> Sample:
    """A CuddeLink network email: the home camera in the subject, photos of two cameras (EXIF ID=)."""
    photos = [
        ImageFile(
            "1.jpeg",
            jpeg(
                make="CUDDEBACK",
                taken="2026:11:30 19:02:20",
                user_comment="MR=C.1,BT=12,BP=80%,ID=RIVER SAT 01-02,LO=002,MA=0A1B2C3D4E01",
            ),
        ),
        ImageFile(
            "2.jpeg",
            jpeg(
                make="CUDDEBACK",
                taken="2026:11:30 19:04:51",
                color=(90, 90, 90),
                user_comment="MR=C.1,BT=11,BP=64%,ID=RIVER SAT 01-03,LO=003,MA=0A1B2C3D4E02",
            ),
        ),
    ]
    payload = _post(
        "CuddeLink <noreply@images.cuddelink.com>",
        "RIVER-HOME01 - 11/30/2026 - 7:07 PM",
        images=photos,
        to=to,
        mode=mode,
    )
    return Sample(
        "cuddelink",
        payload,
        expected={
            "camera_id": "RIVER-HOME01",
            "vendor_shared": True,
            "taken_at": datetime(2026, 11, 30, 19, 7),
            "photos": [
                ("RIVER SAT 01-02", "0A1B2C3D4E01", datetime(2026, 11, 30, 19, 2, 20)),
                ("RIVER SAT 01-03", "0A1B2C3D4E02", datetime(2026, 11, 30, 19, 4, 51)),
            ],
        },
    )


def spartan(to: str = PARK, mode: str = "parsed") -> Sample:
    payload = _post(
        "GL-TEST-400001 <noreply1@hcowireless.com>",
        "2026-11-30 21:44:26 - GL-TEST-400001",
        images=[ImageFile("3000000001_20261130214426_IMAG0012.JPG", jpeg(make="SPARTAN"))],
        to=to,
        mode=mode,
    )
    return Sample(
        "spartan",
        payload,
        expected={
            "camera_id": "GL-TEST-400001",
            "vendor_shared": True,
            "taken_at": datetime(2026, 11, 30, 21, 44, 26),
        },
    )


def ridgetec_html(
    url: str,
    *,
    filename: str = "PICT0042.JPG",
    created: str = "2026-11-30 14:15:22",
    tz: str = "Africa/Johannesburg",
    imei: str = "860000000000042",
    account: str = "1234",
) -> str:
    return (
        "<!DOCTYPE html><html><body><table><tr><td>"
        '<a href="https://portal.ridgetec.com" target="_blank">Portal</a>'
        f'<img data-imagetype="External" data-date-time-created="{created}" data-timezone="{tz}" '
        f'data-imei="{imei}" data-account-id="{account}" data-filename="{filename}" src="{url}" '
        'alt="photo" width="640">'
        "</td></tr></table></body></html>"
    )


def ridgetec(
    to: str = PARK,
    url: str = "https://portal.ridgetec.com/camera/image-cache/Zm9vYmFy0042",
    mode: str = "parsed",
    **html_args: Any,
) -> Sample:
    """A RidgeTec email: HTML only, the photo as a link."""
    html = ridgetec_html(url, **html_args)
    payload = _post("no-reply@ridgetec.com", "Waterhole North", html=html, to=to, mode=mode)
    return Sample(
        "ridgetec",
        payload,
        html=html,
        expected={
            "camera_id": "Waterhole North",
            "vendor_shared": True,
            "serial": "860000000000042",
            "url": url,
            "filename": "PICT0042.JPG",
            "tz": "Africa/Johannesburg",
        },
    )


def uovision(to: str = PARK, mode: str = "parsed") -> Sample:
    text = (
        "IMEI:861234567890123\nDate:30.11.2026\nTime:17:08:02\nTemperature:21℃\nBattery:85%\n"
        "SD card free space: 14.7GB of 14.8GB\n"
    )
    payload = _post(
        "ranger.cams@gmail.example",
        "UM785-4G_ZAM-07",
        text=text,
        images=[ImageFile("IMG_0007.JPG", jpeg(make="UOVision"))],
        to=to,
        mode=mode,
    )
    return Sample(
        "uovision",
        payload,
        expected={
            "camera_id": "ZAM-07",
            "serial": "861234567890123",
            "vendor_shared": False,
            "taken_at": datetime(2026, 11, 30, 17, 8, 2),
            "battery_pct": 85.0,
            "temperature_c": 21.0,
            "sd_free_mb": round(14.7 * 1024, 1),
            "sd_total_mb": round(14.8 * 1024, 1),
        },
    )


def wilsus(to: str = PARK, mode: str = "parsed") -> Sample:
    text = "CamID: WS12\nDate:30/11/2026  17:02:06\nTemp:19 Celsius Degree\nBattery:100%\nSD:15115M/15189M\n"
    payload = _post(
        "wilsus.trap@mail.example",
        "Wilsus 4G photo",
        text=text,
        images=[ImageFile("DSCF0001.JPG", jpeg())],
        to=to,
        mode=mode,
    )
    return Sample(
        "wilsus",
        payload,
        expected={
            "camera_id": "WS12",
            "vendor_shared": False,
            "taken_at": datetime(2026, 11, 30, 17, 2, 6),
            "battery_pct": 100.0,
            "temperature_c": 19.0,
            "sd_free_mb": 15115.0,
            "sd_total_mb": 15189.0,
        },
    )


def reconyx(to: str = PARK, mode: str = "parsed") -> Sample:
    payload = _post(
        "notify@connect.reconyx.example",
        "RECONYX HyperFire 2 Cellular - CAM07 - Motion",
        text="Battery: 62%\nTemperature: 24 C\n",
        to=to,
        mode=mode,
        images=[
            ImageFile("RCNX0001.JPG", jpeg(make="RECONYX", serial="H2C-000777", taken="2026:11:30 21:00:01"))
        ],
    )
    return Sample(
        "reconyx",
        payload,
        expected={
            "camera_id": "CAM07",
            "vendor_shared": True,
            "battery_pct": 62.0,
            "temperature_c": 24.0,
            "photo_serial": "H2C-000777",
        },
    )


def bushnell(to: str = PARK, mode: str = "parsed") -> Sample:
    payload = _post(
        "alerts@bushnell.example",
        "Bushnell CelluCORE: Ridge-East",
        text="Camera Name: Ridge-East\nBattery level: 40 %\nTemp 77F\n",
        to=to,
        mode=mode,
        images=[ImageFile("IMG_1001.JPG", jpeg(make="Bushnell"))],
    )
    return Sample(
        "bushnell",
        payload,
        expected={
            "camera_id": "Ridge-East",
            "vendor_shared": True,
            "battery_pct": 40.0,
            "temperature_c": 25.0,
        },
    )


def browning(to: str = PARK, mode: str = "parsed") -> Sample:
    payload = _post(
        "noreply@browning.example",
        "Browning Defender Pro Scout - Photo from BTC-12",
        text="Low battery\n",
        to=to,
        mode=mode,
        images=[ImageFile("BTC-12_0001.JPG", jpeg(make="Browning"))],
    )
    return Sample(
        "browning",
        payload,
        expected={
            "camera_id": "BTC-12",
            "vendor_shared": True,
            "battery_low": True,
        },
    )


def spypoint(to: str = PARK, mode: str = "parsed") -> Sample:
    payload = _post(
        "no-reply@spypoint.example",
        "SPYPOINT - New photo from LM2-WATERHOLE",
        text="Battery: 15%\n",
        to=to,
        mode=mode,
        images=[ImageFile("PICT0099.JPG", jpeg(make="SPYPOINT"))],
    )
    return Sample(
        "spypoint",
        payload,
        expected={
            "camera_id": "LM2-WATERHOLE",
            "vendor_shared": True,
            "battery_pct": 15.0,
        },
    )


def generic(to: str = PARK, mode: str = "parsed") -> Sample:
    payload = _post(
        "cam01@traps.example.org",
        "[CAM01] motion detected",
        text="Camera Name: CAM01\nIMEI: 869999000011122\nBatt 55%\nTemp: -2 °C\n",
        to=to,
        mode=mode,
        images=[ImageFile("IMG_0001.JPG", jpeg(serial="SN-0001"))],
    )
    return Sample(
        "generic",
        payload,
        expected={
            "camera_id": "CAM01",
            "vendor_shared": False,
            "serial": "869999000011122",
            "battery_pct": 55.0,
            "temperature_c": -2.0,
            "photo_serial": "SN-0001",
        },
    )


ALL = {
    "cuddelink": cuddelink,
    "spartan": spartan,
    "ridgetec": ridgetec,
    "uovision": uovision,
    "wilsus": wilsus,
    "reconyx": reconyx,
    "bushnell": bushnell,
    "browning": browning,
    "spypoint": spypoint,
    "generic": generic,
}
