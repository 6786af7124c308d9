"""From request bytes to the array a backend sees: decode, EXIF orientation, limits, night, resize, CLAHE.

Every problem with the bytes raises ``ImageFailure`` with a stable code (see scoring.errors). Decoding is
done by OpenCV; Pillow only reads the header first (size, format, EXIF orientation) so that a
decompression bomb is refused before a single pixel is allocated.

The result is a BGR uint8 array (OpenCV's order); backends convert to what their model wants.
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from scoring.errors import EMPTY_IMAGE, TOO_MANY_PIXELS, UNREADABLE_IMAGE, ImageFailure
from scoring.settings import ScoringSettings

# We enforce our own limit (SCORING_MAX_PIXELS) from the header, with our own failure code.
Image.MAX_IMAGE_PIXELS = None

EXIF_ORIENTATION_TAG = 0x0112
JPEG_EOI = b"\xff\xd9"
_EOI_WINDOW = 64 * 1024  # entropy-coded data cannot contain FF D9, so a truncated scan has no EOI here


@dataclass(slots=True)
class PreparedImage:
    file: str
    image: np.ndarray  # BGR uint8 HxWx3, what the model sees (after resize / CLAHE)
    width: int  # of the image as sent, after EXIF orientation
    height: int
    night: bool
    decode_ms: float
    preprocess_ms: float


@dataclass(frozen=True, slots=True)
class Header:
    format: str
    width: int
    height: int
    orientation: int


def read_header(data: bytes) -> Header:
    """Format, size and EXIF orientation from the header only (no pixel is decoded)."""
    if not data:
        raise ImageFailure(EMPTY_IMAGE, "the image has 0 bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                fmt = im.format or "unknown"
                orientation = 1
                try:
                    orientation = int(im.getexif().get(EXIF_ORIENTATION_TAG, 1) or 1)
                except Exception:  # a broken EXIF block must not lose the photo
                    orientation = 1
    except UnidentifiedImageError:
        raise ImageFailure(UNREADABLE_IMAGE, "not an image, or a format this service cannot read") from None
    except Exception as exc:  # Pillow raises many types for broken headers
        raise ImageFailure(UNREADABLE_IMAGE, f"broken image header ({type(exc).__name__}: {exc})") from None
    if width <= 0 or height <= 0:
        raise ImageFailure(UNREADABLE_IMAGE, f"image header says {width}x{height}")
    return Header(fmt, width, height, orientation if 1 <= orientation <= 8 else 1)


def _check_complete(data: bytes, fmt: str) -> None:
    if fmt == "JPEG":
        tail_start = max(0, len(data) - _EOI_WINDOW)
        if data.rfind(JPEG_EOI, tail_start) < 0:
            raise ImageFailure(UNREADABLE_IMAGE, "truncated JPEG (no end-of-image marker)")


def _to_bgr8(img: np.ndarray) -> np.ndarray:
    """Any decoded array (grey, grey+alpha, BGR, BGRA; 8/16-bit or float) to BGR uint8."""
    if img.dtype == np.uint16:
        img = cv2.convertScaleAbs(img, alpha=1.0 / 257.0)
    elif img.dtype in (np.float32, np.float64):
        scale = 255.0 if float(np.nanmax(img)) <= 1.0 else 1.0
        img = cv2.convertScaleAbs(np.nan_to_num(img), alpha=scale)
    elif img.dtype == np.int8 or img.dtype == np.int16 or img.dtype == np.int32:
        raise ImageFailure(UNREADABLE_IMAGE, f"unsupported sample type {img.dtype}")
    elif img.dtype != np.uint8:
        raise ImageFailure(UNREADABLE_IMAGE, f"unsupported sample type {img.dtype}")

    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    channels = img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR)
    if channels == 2:  # grey + alpha
        grey = _over_white(img[:, :, :1], img[:, :, 1])
        return cv2.cvtColor(grey[:, :, 0], cv2.COLOR_GRAY2BGR)
    if channels == 3:
        return img
    if channels == 4:
        return _over_white(img[:, :, :3], img[:, :, 3])
    raise ImageFailure(UNREADABLE_IMAGE, f"unsupported number of channels ({channels})")


def _over_white(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite over a white background (transparent pixels have no meaningful colour)."""
    if int(alpha.min()) == 255:
        return np.ascontiguousarray(color)
    a = alpha.astype(np.float32)[:, :, None] / 255.0
    out = color.astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) so that the array is upright, as a viewer shows the photo."""
    if orientation == 2:
        return cv2.flip(img, 1)
    if orientation == 3:
        return cv2.rotate(img, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(img, 0)
    if orientation == 5:
        return cv2.transpose(img)
    if orientation == 6:
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(img), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img


def night_stats(img: np.ndarray) -> tuple[float, float]:
    """(mean channel spread max-min, mean luma) of a BGR uint8 image, on a ~160-pixel-high sample."""
    h, w = img.shape[:2]
    step = max(1, min(h, w) // 160)
    small = (
        img
        if step == 1
        else cv2.resize(img, (max(1, w // step), max(1, h // step)), interpolation=cv2.INTER_NEAREST)
    )
    b, g, r = cv2.split(small)  # OpenCV element-wise ops: numpy reductions over a 3-wide axis are slow
    spread = cv2.mean(cv2.subtract(cv2.max(cv2.max(b, g), r), cv2.min(cv2.min(b, g), r)))[0]
    luma = cv2.mean(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))[0]
    return float(spread), float(luma)


def is_night(img: np.ndarray, settings: ScoringSettings) -> bool:
    """Infrared frames are greyscale; a dark colour frame is low light. Either counts as night."""
    spread, luma = night_stats(img)
    return spread <= settings.night_chroma_max or luma <= settings.night_luma_max


def apply_clahe(img: np.ndarray, clip_limit: float, tile: int) -> np.ndarray:
    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tile, tile))
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2LAB)
    lab[:, :, 0] = clahe.apply(np.ascontiguousarray(lab[:, :, 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def resize_for_model(img: np.ndarray, settings: ScoringSettings) -> np.ndarray:
    """Optional resize. Normalized boxes are unaffected (stretching or uniform scaling keeps them valid)."""
    h, w = img.shape[:2]
    target: tuple[int, int] | None = None
    if settings.input_size is not None:
        target = settings.input_size
    elif settings.resize_long_side is not None and max(h, w) > settings.resize_long_side:
        s = settings.resize_long_side / max(h, w)
        target = (max(1, round(w * s)), max(1, round(h * s)))
    if target is None or target == (w, h):
        return img
    shrinking = target[0] * target[1] < w * h
    return cv2.resize(img, target, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def prepare(data: bytes, file: str, settings: ScoringSettings) -> PreparedImage:
    """Bytes -> PreparedImage, or ImageFailure. Runs in a worker thread (OpenCV releases the GIL)."""
    t0 = time.perf_counter()
    header = read_header(data)
    pixels = header.width * header.height
    if pixels > settings.max_pixels:
        raise ImageFailure(
            TOO_MANY_PIXELS,
            f"{header.width}x{header.height} = {pixels} pixels, limit is {settings.max_pixels} "
            "(SCORING_MAX_PIXELS)",
        )
    _check_complete(data, header.format)
    try:
        raw = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageFailure(
            UNREADABLE_IMAGE, f"{header.format} data cannot be decoded ({exc.msg.strip()})"
        ) from None
    if raw is None or raw.size == 0:
        raise ImageFailure(UNREADABLE_IMAGE, f"{header.format} data cannot be decoded (corrupt or truncated)")
    img = _to_bgr8(raw)
    t1 = time.perf_counter()

    img = apply_orientation(img, header.orientation)
    height, width = img.shape[:2]
    night = is_night(img, settings)
    img = resize_for_model(img, settings)
    if settings.clahe == "always" or (settings.clahe == "night" and night):
        img = apply_clahe(img, settings.clahe_clip_limit, settings.clahe_tile)
    t2 = time.perf_counter()
    return PreparedImage(
        file=file,
        image=img,
        width=width,
        height=height,
        night=night,
        decode_ms=(t1 - t0) * 1000.0,
        preprocess_ms=(t2 - t1) * 1000.0,
    )
