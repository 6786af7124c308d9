"""Privacy per audience: what a channel may receive of photos that show people.

Each channel's config says ``people_photos``:

* ``"as_is"``: the annotated photo and the link to the original (``photo_url``), unchanged;
* ``"blurred"``: the boxes of people and vehicles (faces, number plates) are pixelated and blurred in the
  annotated photo before it leaves, and the link to the original is never sent (the original is not
  blurred). A photo that cannot be decoded is not sent at all (fail closed);
* ``"none"``: no photo and no photo link: the text and the link to the alert in the console (``ops_url``).

Without the key a channel gets its kind's default (:func:`policy_of`): the internal systems whose users
are the park's own rangers behind their own login (EarthRanger, CMORE) get ``as_is``; every other kind
(email, webhook, Telegram, SMS, WhatsApp, third-party adapters) is public-facing and gets ``blurred``.

:func:`apply_privacy` is pure (bytes in, bytes out). The registry applies it to every notice a notifier
sends (:func:`functions.notify.registry.build_notifier`), which is the one place that send-alert, ops
notices and ``trapalert channels test`` all go through.
"""

from __future__ import annotations

import io
from typing import Any, Literal

from PIL import Image, ImageFilter, UnidentifiedImageError

from .base import AlertNotice, Channel

PeoplePhotos = Literal["as_is", "blurred", "none"]
INTERNAL_KINDS = frozenset({"earthranger", "cmore"})  # the park's own access-controlled systems
SENSITIVE = frozenset({"person", "vehicle", "2", "3"})  # MegaDetector names and category ids
MARGIN = 0.15  # each box is grown by this share of its size (the drawn outline, loose boxes)
CELLS = 8  # a box is reduced to at most this many cells on its long side before the blur
JPEG_QUALITY = 88


def default_policy(kind: str) -> PeoplePhotos:
    return "as_is" if kind in INTERNAL_KINDS else "blurred"


def policy_of(channel: Channel) -> PeoplePhotos:
    value = channel.config.get("people_photos")
    return value if value in ("as_is", "blurred", "none") else default_policy(channel.kind)


def _field(det: Any, name: str) -> Any:
    return det[name] if isinstance(det, dict) else getattr(det, name)


def sensitive_boxes(detections: list[Any]) -> list[tuple[float, float, float, float]]:
    """The normalized [x, y, w, h] boxes of people and vehicles."""
    return [tuple(_field(d, "bbox")) for d in detections if str(_field(d, "category")).lower() in SENSITIVE]


def blur_boxes(jpeg: bytes, boxes: list[tuple[float, float, float, float]]) -> bytes:
    """The JPEG with each normalized box (grown by MARGIN) pixelated to CELLS cells and blurred.

    Raises ValueError when the bytes are not a decodable image."""
    try:
        image = Image.open(io.BytesIO(jpeg))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"not a decodable image: {exc}") from None
    image = image.convert("RGB")
    w, h = image.size
    for x, y, bw, bh in boxes:
        mx, my = bw * MARGIN, bh * MARGIN
        x1, y1 = max(0, int((x - mx) * w)), max(0, int((y - my) * h))
        x2, y2 = min(w, int(round((x + bw + mx) * w))), min(h, int(round((y + bh + my) * h)))
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        region = image.crop((x1, y1, x2, y2))
        rw, rh = region.size
        scale = CELLS / max(rw, rh)
        small = region.resize((max(1, round(rw * scale)), max(1, round(rh * scale))), Image.Resampling.BOX)
        region = small.resize((rw, rh), Image.Resampling.NEAREST)
        region = region.filter(ImageFilter.GaussianBlur(radius=max(2, max(rw, rh) / (CELLS * 2))))
        image.paste(region, (x1, y1))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)  # no EXIF copied: no GPS or camera serial leaves either
    return out.getvalue()


def apply_privacy(notice: AlertNotice, policy: PeoplePhotos | Channel) -> AlertNotice:
    """The notice as a channel with ``policy`` (or the policy of a channel) may receive it."""
    if isinstance(policy, Channel):
        policy = policy_of(policy)
    if policy == "as_is":
        return notice
    if policy == "none":
        return notice.model_copy(update={"photo_jpeg": None, "photo_url": None})
    update: dict[str, Any] = {"photo_url": None}
    if notice.photo_jpeg:
        boxes = sensitive_boxes(notice.detections)
        if boxes:
            try:
                update["photo_jpeg"] = blur_boxes(notice.photo_jpeg, boxes)
            except ValueError:
                update["photo_jpeg"] = None  # fail closed: no photo rather than an unblurred one
    return notice.model_copy(update=update)


__all__ = [
    "INTERNAL_KINDS",
    "PeoplePhotos",
    "apply_privacy",
    "blur_boxes",
    "default_policy",
    "policy_of",
    "sensitive_boxes",
]
