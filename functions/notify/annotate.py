"""The photo rangers see: boxes, labels and confidences drawn on the original, scaled for a phone screen.

``annotate(jpeg_bytes, detections) -> jpeg_bytes``. Detections are MegaDetector-style (``category``,
``conf``, ``bbox`` = [x_min, y_min, width, height] normalized, origin top-left), as dicts or objects with
those attributes. Greyscale (infrared night) photos are drawn on in colour. The EXIF orientation is applied
before drawing, so the boxes land where the detector saw the animal or person.

Drawn with Pillow (already a runtime dependency): the Function app does not carry OpenCV and NumPy (about
235 MB installed) for a few rectangles; the scoring service keeps OpenCV (scoring/requirements.txt).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from ..domain.rules import CATEGORY_NAMES  # MegaDetector codes -> names (the one map)

# RGB colours per category: person red, vehicle orange, animal green; anything else yellow.
COLOURS: dict[str, tuple[int, int, int]] = {
    "person": (230, 40, 40),
    "vehicle": (255, 140, 0),
    "animal": (60, 200, 60),
}
DEFAULT_COLOUR = (255, 220, 0)


class AnnotateError(ValueError):
    """The input is not a decodable image."""


def _field(d: Any, name: str) -> Any:
    return d[name] if isinstance(d, dict) else getattr(d, name)


def _decode(jpeg: bytes) -> Image.Image:
    if not jpeg:
        raise AnnotateError("not a decodable image")
    try:
        with Image.open(io.BytesIO(jpeg)) as src:
            src.load()
            image = ImageOps.exif_transpose(src)  # as the camera held it
            return image.convert("RGB")  # greyscale (infrared) and palette images -> 3 channels
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise AnnotateError(f"not a decodable image ({exc})") from None


def _fit(image: Image.Image, max_side: int) -> Image.Image:
    w, h = image.size
    scale = max_side / max(w, h)
    if scale >= 1:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return image.resize(size, Image.Resampling.BOX)  # area averaging, as OpenCV's INTER_AREA


@lru_cache(maxsize=16)
def _font(size_px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size_px)  # Pillow's bundled scalable font (FreeType)


def annotate(
    jpeg: bytes,
    detections: Iterable[Any],
    *,
    max_side: int = 1280,
    quality: int = 85,
    min_conf: float = 0.0,
    label_names: dict[str, str] | None = None,
) -> bytes:
    """Draw the detections on the photo and return a JPEG no larger than ``max_side`` px on its long side."""
    image = _fit(_decode(jpeg), max_side)
    w, h = image.size
    long_side = max(h, w)
    thickness = max(2, round(long_side / 400))
    font = _font(max(12, round(long_side / 50)))
    names = {**CATEGORY_NAMES, **(label_names or {})}
    draw = ImageDraw.Draw(image)

    for det in sorted(detections, key=lambda d: float(_field(d, "conf"))):  # most confident drawn last
        conf = float(_field(det, "conf"))
        if conf < min_conf:
            continue
        category = str(_field(det, "category"))
        category = names.get(category, category)
        bbox: Sequence[float] = _field(det, "bbox")
        x, y, bw, bh = (float(v) for v in bbox)
        x1, y1 = int(round(max(0.0, x) * w)), int(round(max(0.0, y) * h))
        x2, y2 = int(round(min(1.0, x + bw) * w)), int(round(min(1.0, y + bh) * h))
        x1, y1 = min(x1, w - 1), min(y1, h - 1)
        x2, y2 = max(x1 + 1, min(x2, w - 1)), max(y1 + 1, min(y2, h - 1))
        colour = COLOURS.get(category, DEFAULT_COLOUR)
        # the outline straddles the box's edge, as OpenCV draws a thick rectangle
        half = thickness // 2
        draw.rectangle((x1 - half, y1 - half, x2 + half, y2 + half), outline=colour, width=thickness)

        label = f"{category} {conf:.0%}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        tw, th = right - left, bottom - top
        pad = max(2, thickness)
        # label above the box, or inside it when the box touches the top edge
        ty = y1 - pad if y1 - th - 3 * pad >= 0 else min(h - 1, y1 + th + 2 * pad)  # ty: the label's bottom
        tx = min(x1, max(0, w - tw - 2 * pad))
        draw.rectangle((tx, ty - th - 2 * pad, tx + tw + 2 * pad, ty), fill=colour)
        draw.text((tx + pad - left, ty - th - pad - top), label, font=font, fill=(255, 255, 255))

    out = io.BytesIO()
    image.save(out, format="JPEG", quality=int(quality))
    return out.getvalue()
