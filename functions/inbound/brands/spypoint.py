"""Spypoint cellular cameras, through the vendor's service.

Facts: the subject format ("SPYPOINT - New photo from <camera>") is the one TrapAlert matched before brands
were plugins (identify.py's built-in patterns; not verified against a vendor sample); the old pattern was
quadratic on a long subject (issue 19): this one is bounded. ARCHITECTURE.md "Camera email formats": after 4
missed check-ins a Spypoint camera enters a survival mode with one check-in a day (a quiet Spypoint is not
necessarily a stolen one; see docs/inbound.md). A sender domain with "spypoint" in it is the vendor's.
"""

from __future__ import annotations

from .common import _ID, CloudBrand


class Spypoint(CloudBrand):
    name = "spypoint"
    word = "spypoint"
    markers = (r"\bSPYPOINT\b",)
    id_patterns = (r"\bSPYPOINT\b[^\r\n]{0,120}?\bfrom\s+(?P<camera>" + _ID + ")",)


BRAND = Spypoint()
