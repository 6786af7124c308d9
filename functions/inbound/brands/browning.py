"""Browning cellular cameras (Defender, Recon Force cellular), through the vendor's service.

Facts: the subject format ("Browning Defender Pro Scout - Photo from <camera>") is the one TrapAlert
matched before brands were plugins (identify.py's built-in patterns; not verified against a vendor sample).
A sender domain with "browning" in it is the vendor's: shared by every owner.
"""

from __future__ import annotations

from .common import _ID, CloudBrand


class Browning(CloudBrand):
    name = "browning"
    word = "browning"
    markers = (r"\bBrowning\b",)
    id_patterns = (r"^\s*Browning\b[^\r\n]{0,120}?\bfrom\s+(?P<camera>" + _ID + ")",)


BRAND = Browning()
