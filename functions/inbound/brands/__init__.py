"""Camera brands as plugins: what a camera's email says, read by the module of its brand.

One small module per brand, each a ``Brand`` (common.py): ``detect(email) -> int`` (0 = not this brand,
higher = stronger evidence: 10 the sender's domain, 5 a subject/body marker, a few points for the layout)
and ``read(email, exif) -> BrandReading`` (camera id, serial, time and zone, battery, SD card, temperature,
and the photos: attachments, or links to fetch from the brand's ``link_hosts``). The camera is decided per
photo (``PhotoRef.camera_id``/``serial``; None = the email's): one CuddeLink email can carry photos of
several cameras.

    from functions.inbound.brands import read_email
    reading = read_email(email)            # exif: default reads each attachment's EXIF once
    reading.brand, reading.vendor_shared, reading.camera_id, reading.photos, reading.status()

Built in: cuddelink, spartan, ridgetec, uovision, wilsus, reconyx, bushnell, browning, spypoint, generic
(the fallback). Third-party brands register through the ``trapalert.camera_brands`` entry point group::

    [project.entry-points."trapalert.camera_brands"]
    acme = "acme_traps:BRAND"       # a Brand object, or a class instantiated without arguments

A built-in name cannot be shadowed (a warning is logged); a plugin that fails to load, or raises in
``detect``/``read``, is logged and skipped (the next best brand, at worst generic, reads the email).
Plugins are discovered once per process (``refresh()`` forgets them). ``trapalert brands list`` shows what
this process knows.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from ...plugins import discover, load_ref, origins
from ..parse_sendgrid import InboundEmail
from .common import Brand, BrandReading, ExifReader, PhotoRef, exif_reader, parse_status

__all__ = [
    "Brand",
    "BrandReading",
    "PhotoRef",
    "available_brands",
    "brands",
    "parse_status",
    "read_email",
    "refresh",
    "ENTRY_POINT_GROUP",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "trapalert.camera_brands"

BUILTIN_BRANDS: dict[str, str] = {
    "cuddelink": "functions.inbound.brands.cuddelink:BRAND",
    "spartan": "functions.inbound.brands.spartan:BRAND",
    "ridgetec": "functions.inbound.brands.ridgetec:BRAND",
    "uovision": "functions.inbound.brands.uovision:BRAND",
    "wilsus": "functions.inbound.brands.wilsus:BRAND",
    "reconyx": "functions.inbound.brands.reconyx:BRAND",
    "bushnell": "functions.inbound.brands.bushnell:BRAND",
    "browning": "functions.inbound.brands.browning:BRAND",
    "spypoint": "functions.inbound.brands.spypoint:BRAND",
    "generic": "functions.inbound.brands.generic:BRAND",
}
FALLBACK = "generic"


@lru_cache(maxsize=1)
def _builtins() -> dict[str, Brand]:
    return {name: load_ref(ref) for name, ref in BUILTIN_BRANDS.items()}


def refresh() -> None:
    """Forget the discovered plugins (read again at the next email): after installing a brand in a running
    process, and in tests."""
    _third_party.cache_clear()
    _loaded.cache_clear()


@lru_cache(maxsize=1)
def _third_party() -> dict[str, Any]:
    """name -> EntryPoint; discovered once per process (scanning the installed distributions takes ~10 ms,
    too much for every email): a newly installed brand appears at the next start, or after ``refresh()``."""
    return discover(
        ENTRY_POINT_GROUP, BUILTIN_BRANDS, log, "camera brand entry point %s=%s ignored: %r is built in"
    )


def _instance(obj: Any) -> Brand:
    brand = obj() if isinstance(obj, type) else obj
    for attr in ("detect", "read"):
        if not callable(getattr(brand, attr, None)):
            raise TypeError(f"no {attr}() method")
    return brand


def brands() -> dict[str, Brand]:
    """Every brand this process can read: the built-ins, then the plugins that load."""
    return dict(_loaded())


@lru_cache(maxsize=1)
def _loaded() -> dict[str, Brand]:
    out: dict[str, Brand] = dict(_builtins())
    for name, ep in _third_party().items():
        try:
            brand = _instance(ep.load())
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the mail
            log.error(
                "camera brand %s (entry point %s) failed to load: %s: %s",
                name,
                ep.value,
                type(exc).__name__,
                exc,
            )
            continue
        out[name] = brand
    return out


def available_brands() -> dict[str, str]:
    """Every brand name with where it comes from (``builtin <module>`` / ``entry point <ref> (<dist>)``)."""
    return origins(BUILTIN_BRANDS, _third_party())


def detect(email: InboundEmail, candidates: dict[str, Brand] | None = None) -> tuple[str, Brand]:
    """The brand with the strongest evidence (ties: built-ins first, in BUILTIN_BRANDS order); generic
    when none claims the email."""
    candidates = candidates if candidates is not None else brands()
    best_name, best_score = FALLBACK, 0
    for name, brand in candidates.items():
        if name == FALLBACK:
            continue
        try:
            score = int(brand.detect(email) or 0)
        except Exception as exc:  # noqa: BLE001
            log.error("camera brand %s: detect failed: %s: %s", name, type(exc).__name__, exc)
            continue
        if score > best_score:
            best_name, best_score = name, score
    return best_name, candidates.get(best_name) or _builtins()[FALLBACK]


def read_email(email: InboundEmail, exif: ExifReader | None = None) -> BrandReading:
    """Pick the brand by sender and content and read the email with it (generic when the brand's reader
    fails: the failure is in ``notes``). ``exif(attachment_index)``: EXIF tags by name; default reads the
    attachments (common.read_exif)."""
    exif = exif or exif_reader(email)
    candidates = brands()
    name, brand = detect(email, candidates)
    try:
        reading = brand.read(email, exif)
        reading.brand = reading.brand or name
        return reading
    except Exception as exc:  # noqa: BLE001 - a brand's bug must not lose the email
        log.error("camera brand %s: read failed: %s: %s", name, type(exc).__name__, exc)
        if name == FALLBACK:
            raise
        reading = _builtins()[FALLBACK].read(email, exif)
        reading.notes.append(f"brand {name} failed ({type(exc).__name__}); read as generic")
        return reading
