"""Privacy per audience (functions/notify/privacy.py), checked on the photo bytes that leave."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from functions.notify import Channel, DetectionRef, EnvSecrets, apply_privacy, build_notifier
from functions.notify.privacy import default_policy, policy_of
from tests.fakes.telegram import FakeTelegram
from tests.notify.helpers import make_notice

TOKEN = "4242424242:AAE-privacy-token-0123456789"
CHAT = -1001
W, H = 640, 480
PERSON = (0.25, 0.25, 0.25, 0.5)  # x, y, w, h (normalized)
ANIMAL = (0.65, 0.1, 0.2, 0.2)


def textured_jpeg() -> bytes:
    """Fine checkerboard everywhere (detail a blur destroys), on a smooth gradient."""
    yy, xx = np.mgrid[0:H, 0:W]
    board = ((xx // 4 + yy // 4) % 2) * 120
    img = np.stack([board + 60, board + 40, board + 20 + xx // 8], axis=-1).clip(0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(img).save(out, "JPEG", quality=95)
    return out.getvalue()


def pixels(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"), dtype=np.float32)


def box_px(box, margin: float = 0.0):
    x, y, w, h = box
    return (
        slice(int((y - h * margin) * H), int((y + h + h * margin) * H)),
        slice(int((x - w * margin) * W), int((x + w + w * margin) * W)),
    )


def detail(region: np.ndarray) -> float:
    """Mean absolute difference between horizontal neighbours (high for the checkerboard)."""
    return float(np.abs(np.diff(region, axis=1)).mean())


def notice_with(photo: bytes):
    return make_notice(
        photo,
        categories=["person", "animal"],
        detections=[
            DetectionRef(category="person", conf=0.9, bbox=PERSON),
            DetectionRef(category="animal", conf=0.8, bbox=ANIMAL),
        ],
    )


def tg_channel(url: str, **config) -> Channel:
    return Channel(
        id=61,
        park_id=1,
        kind="telegram",
        name="public-group",
        config={
            "chat_id": CHAT,
            "token_setting": "CHANNEL_SECRET_TG",
            "api_root": url,
            "allow_http": True,
            "allow_private_network": True,
            **config,
        },
    )


@pytest.fixture
def tg():
    with FakeTelegram(token=TOKEN, chats={CHAT}) as fake:
        yield fake


ENV = EnvSecrets(environ={"CHANNEL_SECRET_TG": TOKEN})


def test_blurred_photo_that_leaves_has_the_person_box_blurred_and_the_rest_unchanged(tg):
    original = textured_jpeg()
    build_notifier(tg_channel(tg.url, people_photos="blurred"), ENV).send_new(notice_with(original))

    sent = pixels(tg.requests[0].files["photo"].data)
    before = pixels(original)
    assert sent.shape == before.shape
    person = box_px(PERSON)
    assert detail(before[person]) > 20
    assert detail(sent[person]) < detail(before[person]) / 8  # the checkerboard is gone where the person is
    # an animal box and the background are untouched (up to JPEG re-encoding)
    animal = box_px(ANIMAL)
    assert np.abs(sent[animal] - before[animal]).mean() < 4
    outside = before.copy(), sent.copy()
    mask = np.ones_like(before, dtype=bool)
    mask[box_px(PERSON, margin=0.2)] = False
    assert np.abs(outside[1][mask] - outside[0][mask]).mean() < 4
    # and no link to the unblurred original
    assert "blob.core.windows.net" not in tg.requests[0].form["caption"]


def test_as_is_sends_the_bytes_and_link_unchanged(tg):
    original = textured_jpeg()
    build_notifier(tg_channel(tg.url, people_photos="as_is"), ENV).send_new(notice_with(original))
    assert tg.requests[0].files["photo"].data == original
    assert "photo</a>" in tg.requests[0].form["caption"]


def test_none_sends_text_and_console_link_only(tg):
    build_notifier(tg_channel(tg.url, people_photos="none"), ENV).send_new(notice_with(textured_jpeg()))
    (req,) = tg.requests
    assert req.path.endswith("/sendMessage") and req.files == {}
    assert "https://ops.trapalert.example/alerts/42" in req.json["text"]
    assert "blob.core.windows.net" not in req.json["text"]


def test_vehicle_boxes_are_blurred_too():
    original = textured_jpeg()
    notice = make_notice(original, detections=[DetectionRef(category="vehicle", conf=0.7, bbox=PERSON)])
    out = apply_privacy(notice, "blurred")
    assert detail(pixels(out.photo_jpeg)[box_px(PERSON)]) < detail(pixels(original)[box_px(PERSON)]) / 8
    assert out.photo_url is None and out.ops_url == notice.ops_url


def test_an_undecodable_photo_is_not_sent_at_all_when_blurred():
    out = apply_privacy(make_notice(b"\xff\xd8 broken jpeg"), "blurred")
    assert out.photo_jpeg is None and out.photo_url is None


def test_apply_privacy_is_pure():
    original = textured_jpeg()
    notice = notice_with(original)
    apply_privacy(notice, "blurred")
    apply_privacy(notice, "none")
    assert notice.photo_jpeg == original and notice.photo_url is not None


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("earthranger", "as_is"),
        ("cmore", "as_is"),
        ("email", "blurred"),
        ("webhook", "blurred"),
        ("telegram", "blurred"),
        ("twilio", "blurred"),
        ("park_sms_plugin", "blurred"),
    ],
)
def test_defaults_per_kind(kind, expected):
    assert default_policy(kind) == expected
    assert policy_of(Channel(id=1, park_id=1, kind=kind, config={})) == expected
    assert policy_of(Channel(id=1, park_id=1, kind=kind, config={"people_photos": "none"})) == "none"
