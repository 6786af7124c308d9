"""The view signature of a photo: a small, robust summary of what the camera sees, computed once when
process-image handles the photo and stored with it (``images.view_sig``). functions/domain/watch.py
compares a photo's signature with the camera's recent photos to notice that the camera was moved, knocked
down or covered.

The signature is a 16x16 grayscale thumbnail (box-filtered, so sensor noise averages out) of the photo
without its top and bottom strips (:data:`STRIP`: many cameras burn their name, the time and the
temperature into a strip there, which changes on every photo), plus whether the frame is greyscale
(infrared night frames are: they are compared only with other infrared frames). Text form::

    v1:<g|c>:<512 hex digits>        g = greyscale (infrared), c = colour

Pillow only (no numpy in the Function app). Bytes Pillow cannot read give None: the photo is not watched
(the detector decides separately whether it is a usable photo).
"""

from __future__ import annotations

import io
import logging

from PIL import Image, ImageChops, ImageStat

log = logging.getLogger(__name__)

SIZE = 16
STRIP = 0.1  # fraction of the height cut at the top and at the bottom (burned-in data strips)
GREY_MAX_CHROMA = 4.0  # mean |R-G| + |G-B| (0..510) under which a frame counts as greyscale (infrared)
MAX_PIXELS = 80_000_000  # larger than any camera-trap photo; Pillow's bomb check protects beyond


def view_signature(data: bytes) -> str | None:
    """The signature of a photo's bytes, or None when Pillow cannot read them."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                return None
            img.draft("RGB", (SIZE * 16, SIZE * 16))  # JPEG: decode at a reduced scale (fast, same result)
            rgb = img.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - any unreadable image: not watched, and said why
        log.info("no view signature: %s", exc)
        return None
    w, h = rgb.size
    cut = int(h * STRIP)
    if h - 2 * cut >= 4:
        rgb = rgb.crop((0, cut, w, h - cut))
    small = rgb.resize((32, 32), Image.Resampling.BOX)
    r, g, b = small.split()
    rg = ImageStat.Stat(ImageChops.difference(r, g)).mean[0]
    gb = ImageStat.Stat(ImageChops.difference(g, b)).mean[0]
    grey = (rg + gb) <= GREY_MAX_CHROMA
    thumb = rgb.convert("L").resize((SIZE, SIZE), Image.Resampling.BOX)
    return f"v1:{'g' if grey else 'c'}:{bytes(thumb.getdata()).hex()}"
