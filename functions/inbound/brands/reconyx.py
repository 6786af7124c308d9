"""Reconyx cellular cameras (HyperFire 2 Cellular, MicroFire cellular), through the vendor's service.

Facts: the subject formats below are the ones TrapAlert matched before brands were plugins (identify.py's
built-in patterns, as configured in the field; not verified against a vendor sample). ARCHITECTURE.md
"Camera email formats": Reconyx writes the burst position ("4/5") in its EXIF maker note (binary, vendor-
specific: not read here). A sender domain with "reconyx" in it is the vendor's: shared by every owner.
"""

from __future__ import annotations

from .common import _ID, CloudBrand


class Reconyx(CloudBrand):
    name = "reconyx"
    word = "reconyx"
    markers = (r"\bRECONYX\b",)
    # "RECONYX HyperFire 2 Cellular - CAM07 - Motion" / "RECONYX: CAM07"
    id_patterns = (r"^\s*RECONYX\b[^:\-\r\n]{0,80}[:\-]\s*(?P<camera>" + _ID + ")",)


BRAND = Reconyx()
