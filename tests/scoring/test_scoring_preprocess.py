"""Decoding and preprocessing: formats, EXIF orientation, limits, stable failure codes, night, resize."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from scoring.errors import ImageFailure
from scoring.preprocess import apply_orientation, prepare
from tests.scoring.helpers import make_settings
from tests.support import tiny_models as tm

SETTINGS = make_settings()


def encode(img: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def failure_of(data: bytes, settings=SETTINGS) -> str:
    with pytest.raises(ImageFailure) as info:
        prepare(data, "x", settings)
    return info.value.failure


def png_header_only(width: int, height: int) -> bytes:
    """A syntactically valid PNG that claims width x height (the decompression-bomb shape)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_jpeg_decodes_to_bgr_with_size_and_timings():
    prepared = prepare(tm.make_blank_image((800, 600)), "a.jpg", SETTINGS)
    assert prepared.image.shape == (600, 800, 3) and prepared.image.dtype == np.uint8
    assert (prepared.width, prepared.height, prepared.file) == (800, 600, "a.jpg")
    assert prepared.decode_ms > 0 and prepared.preprocess_ms >= 0


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(orientation):
    rng = np.random.default_rng(orientation)
    rgb = cv2.resize(
        rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), (160, 120), interpolation=cv2.INTER_NEAREST
    )
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    data = buf.getvalue()
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    prepared = prepare(data, "o.jpg", SETTINGS)
    got = cv2.cvtColor(prepared.image, cv2.COLOR_BGR2RGB)
    assert got.shape == expected.shape
    assert (prepared.width, prepared.height) == (expected.shape[1], expected.shape[0])
    assert np.abs(got.astype(int) - expected.astype(int)).mean() < 2.0


def test_orientation_table_is_a_bijection_of_the_8_cases():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    outputs = {
        apply_orientation(img, o).tobytes() + bytes(apply_orientation(img, o).shape) for o in range(1, 9)
    }
    assert len(outputs) == 8


def test_png_with_alpha_is_composited_over_white():
    bgra = np.zeros((100, 100, 4), np.uint8)
    bgra[:, :50] = (0, 0, 255, 255)  # opaque red
    bgra[:, 50:] = (0, 0, 255, 0)  # transparent
    prepared = prepare(encode(bgra, ".png"), "a.png", SETTINGS)
    assert prepared.image[0, 0].tolist() == [0, 0, 255]
    assert prepared.image[0, 99].tolist() == [255, 255, 255]


def test_16_bit_png_is_scaled_to_8_bit():
    img16 = np.zeros((64, 64, 3), np.uint16)
    img16[:32] = 65535
    img16[32:] = 32896  # 128 * 257
    prepared = prepare(encode(img16, ".png"), "a.png", SETTINGS)
    assert prepared.image.dtype == np.uint8
    assert prepared.image[0, 0].tolist() == [255, 255, 255] and prepared.image[63, 0].tolist() == [
        128,
        128,
        128,
    ]


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tiff", ".bmp"])
def test_greyscale_images_become_three_channels_and_night(ext):
    grey = np.tile(np.linspace(20, 230, 120).astype(np.uint8), (90, 1))
    prepared = prepare(encode(grey, ext), "g" + ext, SETTINGS)
    assert prepared.image.shape == (90, 120, 3)
    assert prepared.night is True  # greyscale = infrared


def test_16_bit_greyscale_png():
    grey16 = np.full((40, 50), 257 * 200, np.uint16)
    prepared = prepare(encode(grey16, ".png"), "g16.png", SETTINGS)
    assert prepared.image.shape == (40, 50, 3) and int(prepared.image.mean()) == 200


def test_empty_image():
    assert failure_of(b"").startswith("empty_image: ")


def test_not_an_image():
    assert failure_of(b"%PDF-1.4 this is a document, not a photo").startswith("unreadable_image: ")
    assert failure_of(b"\x00" * 1000).startswith("unreadable_image: ")


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.95])
def test_truncated_jpeg(fraction):
    data = tm.make_blank_image((1280, 960))
    assert failure_of(data[: int(len(data) * fraction)]).startswith("unreadable_image: ")


def test_truncated_png():
    data = encode((np.random.default_rng(1).random((300, 300, 3)) * 255).astype(np.uint8), ".png")
    assert failure_of(data[: len(data) // 2]).startswith("unreadable_image: ")


def test_huge_dimensions_are_refused_from_the_header():
    failure = failure_of(png_header_only(100_000, 100_000))
    assert failure.startswith("too_many_pixels: ") and "10000000000" in failure


def test_pixel_limit_is_configurable():
    data = tm.make_blank_image((640, 480))
    assert failure_of(data, make_settings(max_pixels=640 * 480 - 1)).startswith("too_many_pixels: ")
    assert prepare(data, "x", make_settings(max_pixels=640 * 480)).width == 640


def test_night_detection_day_ir_and_low_light():
    assert prepare(tm.make_detection_image("2", 0.9), "d", SETTINGS).night is False
    assert prepare(tm.make_detection_image("2", 0.9, night=True), "n", SETTINGS).night is True
    dark = np.full((200, 300, 3), (10, 25, 35), np.uint8)  # a colour frame at dusk
    assert prepare(encode(dark, ".jpg"), "dusk", SETTINGS).night is True
    assert prepare(tm.make_blank_image(night=True), "ir", SETTINGS).night is True
    assert prepare(tm.make_blank_image(night=False), "day", SETTINGS).night is False


def test_clahe_applies_only_where_configured():
    night = tm.make_blank_image(night=True)
    plain = prepare(night, "n", SETTINGS).image
    enhanced = prepare(night, "n", make_settings(clahe="night")).image
    assert not np.array_equal(plain, enhanced)
    day = tm.make_blank_image(night=False)
    assert np.array_equal(
        prepare(day, "d", SETTINGS).image, prepare(day, "d", make_settings(clahe="night")).image
    )
    assert not np.array_equal(
        prepare(day, "d", SETTINGS).image, prepare(day, "d", make_settings(clahe="always")).image
    )


def test_resize_options_keep_reported_size():
    data = tm.make_blank_image((1920, 1080))
    long_side = prepare(data, "x", make_settings(resize_long_side=960))
    assert long_side.image.shape == (540, 960, 3) and (long_side.width, long_side.height) == (1920, 1080)
    fixed = prepare(data, "x", make_settings(input_size="640x640"))
    assert fixed.image.shape == (640, 640, 3) and (fixed.width, fixed.height) == (1920, 1080)
    small = prepare(tm.make_blank_image((320, 240)), "x", make_settings(resize_long_side=960))
    assert small.image.shape == (240, 320, 3)
