"""Bushnell cellular cameras (CelluCORE and others), through the vendor's service.

Facts: the subject format ("Bushnell CelluCORE: <camera name>") and the body line "Camera Name: X" are the
ones TrapAlert matched before brands were plugins (identify.py's built-in patterns; not verified against a
vendor sample). A sender domain with "bushnell" in it is the vendor's: shared by every owner.
"""

from __future__ import annotations

from .common import _ID, CloudBrand


class Bushnell(CloudBrand):
    name = "bushnell"
    word = "bushnell"
    markers = (r"\bBushnell\b",)
    id_patterns = (r"^\s*Bushnell\b[^:\r\n]{0,80}:\s*(?P<camera>" + _ID + ")",)


BRAND = Bushnell()
