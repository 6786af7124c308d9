"""Which park and camera sent an email: a pure decision over the email and the registered cameras.

Signals, strongest first:
1. the sender: ``From`` and the envelope sender against ``cameras.sender_addresses``;
2. the recipient: ``to``/``cc``/envelope ``to`` against ``parks.inbound_address`` (``park-x@...``); a plus tag
   (``park-x+cam01@...``) names the camera;
3. the camera's own idea of its name, written in the subject or body, found by per-brand patterns (below)
   and by looking for each registered name/alias as a whole word; ids compare case-, separator- and
   leading-zero-insensitively (``CAM-01`` = ``cam1`` = ``Cam 01``).

Rules: one camera matching the sender wins. Several cameras sharing a sender are told apart by the ids.
Without a sender match, an id match is accepted only inside a park reached through its inbound address
(an id alone, to an address of no park, proves nothing) and only when the park does not set
``settings.require_known_sender``. Anything else is quarantined with the reason.

Patterns: the built-in ones below, plus INBOUND_CAMERA_PATTERNS (a JSON list of
``{"brand", "field": "subject"|"body"|"any", "regex"}``, each regex with a named group ``camera``), which are
tried first. They live in a setting rather than the database because they describe camera firmware, which
is the same in every park, and a bad regex then fails at start, not on a ranger's alert.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .parse_sendgrid import InboundEmail
from .reasons import AMBIGUOUS_CAMERA, UNKNOWN_SENDER, with_detail


@dataclass(frozen=True)
class Pattern:
    brand: str
    field: Literal["subject", "body", "any"]
    regex: re.Pattern


_ID = r"(?P<camera>[A-Za-z0-9][A-Za-z0-9_.-]{0,40}[A-Za-z0-9]|[A-Za-z0-9])"

# Subject and body formats of common cellular camera traps (as configured in the field; extend with
# INBOUND_CAMERA_PATTERNS when a firmware writes something else).
BUILTIN_PATTERNS: list[dict[str, str]] = [
    # "RECONYX HyperFire 2 Cellular - CAM07 - Motion" / "RECONYX: CAM07"
    {"brand": "reconyx", "field": "subject", "regex": r"^\s*RECONYX\b[^:\-]*[:\-]\s*" + _ID},
    # "Bushnell CelluCORE: Ridge-East" (body: "Camera Name: Ridge-East")
    {"brand": "bushnell", "field": "subject", "regex": r"^\s*Bushnell\b[^:]*:\s*" + _ID},
    # "Browning Defender Pro Scout - Photo from BTC-12"
    {"brand": "browning", "field": "subject", "regex": r"^\s*Browning\b.*?\bfrom\s+" + _ID},
    # "SPYPOINT - New photo from LM2-WATERHOLE"
    {"brand": "spypoint", "field": "subject", "regex": r"\bSPYPOINT\b.*?\bfrom\s+" + _ID},
    # body lines many firmwares write: "Camera Name: X", "Camera ID: X", "Cam: X"
    {"brand": "generic", "field": "body", "regex": r"(?im)^\s*Cam(?:era)?\s*(?:Name|ID)?\s*[:=]\s*" + _ID},
    # "[CAM01] motion", "[Waterhole-N]"
    {"brand": "generic", "field": "subject", "regex": r"\[\s*" + _ID + r"\s*\]"},
    # "CAM01", "CAM-7", "cam_012" anywhere
    {
        "brand": "generic",
        "field": "any",
        "regex": r"(?i)(?<![A-Za-z0-9])(?P<camera>CAM[-_ ]?\d{1,4})(?![0-9])",
    },
]


def _compile(entry: Any, where: str) -> Pattern:
    if not isinstance(entry, dict) or not isinstance(entry.get("regex"), str):
        raise ValueError(f"{where}: each pattern is an object with a 'regex' string")
    fld = entry.get("field", "any")
    if fld not in ("subject", "body", "any"):
        raise ValueError(f"{where}: field must be subject, body or any (got {fld!r})")
    try:
        rx = re.compile(entry["regex"], re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"{where}: invalid regex {entry['regex']!r}: {exc}") from None
    if "camera" not in rx.groupindex:
        raise ValueError(f"{where}: regex {entry['regex']!r} has no named group 'camera'")
    return Pattern(str(entry.get("brand") or "custom"), fld, rx)


def load_patterns(extra_json: str | None = None) -> list[Pattern]:
    """The configured patterns (INBOUND_CAMERA_PATTERNS first), then the built-in ones."""
    extra: list = []
    if extra_json:
        try:
            extra = json.loads(extra_json)
        except ValueError as exc:
            raise ValueError(f"INBOUND_CAMERA_PATTERNS is not JSON: {exc}") from None
        if not isinstance(extra, list):
            raise ValueError("INBOUND_CAMERA_PATTERNS must be a JSON list")
    return [_compile(e, f"INBOUND_CAMERA_PATTERNS[{i}]") for i, e in enumerate(extra)] + [
        _compile(e, f"builtin[{i}]") for i, e in enumerate(BUILTIN_PATTERNS)
    ]


def normalize_id(value: str) -> str:
    """Compare ids loosely: case, separators and leading zeros do not matter (CAM-01 = cam1)."""
    s = re.sub(r"[^0-9a-z]+", "", value.casefold())
    return re.sub(r"\d+", lambda m: str(int(m.group())), s)


def split_plus(address: str) -> tuple[str, str | None]:
    """park-x+cam01@d -> (park-x@d, cam01)."""
    local, at, domain = address.partition("@")
    if not at or "+" not in local:
        return address, None
    base, _, tag = local.partition("+")
    return f"{base}@{domain}", tag or None


@dataclass
class Identification:
    camera: dict | None = None
    park: dict | None = None
    method: Literal["sender", "sender+id", "id", "plus-address"] | None = None
    quarantine_reason: str | None = None
    brand: str | None = None
    ids: list[str] = field(default_factory=list)


def extract_ids(email: InboundEmail, patterns: list[Pattern]) -> tuple[list[str], str | None]:
    """Camera ids the email writes about itself, and the brand of the first pattern that matched."""
    ids: list[str] = []
    brand = None
    body = (email.text or "")[:4000]
    for p in patterns:
        texts = {"subject": [email.subject], "body": [body], "any": [email.subject, body]}[p.field]
        for text in texts:
            for m in p.regex.finditer(text or ""):
                value = m.group("camera").strip()
                if value and value not in ids:
                    ids.append(value)
                    brand = brand or p.brand
    return ids, brand


def _keys(camera: dict) -> list[str]:
    return [k for k in [camera["name"], *(camera.get("aliases") or [])] if k]


def _mentions(camera: dict, wanted: set[str], texts: list[str]) -> bool:
    for key in _keys(camera):
        if normalize_id(key) in wanted:
            return True
        if len(key) >= 3:
            rx = r"(?<![A-Za-z0-9])" + re.escape(key) + r"(?![A-Za-z0-9])"
            if any(re.search(rx, t, re.IGNORECASE) for t in texts if t):
                return True
    return False


def senders_of(email: InboundEmail) -> list[str]:
    return [a for a in dict.fromkeys([email.sender_address, email.envelope_from]) if a]


def recipients_of(email: InboundEmail) -> tuple[list[str], list[str]]:
    """(base addresses, plus tags) of every recipient."""
    bases, tags = [], []
    for r in email.recipients:
        base, tag = split_plus(r)
        bases.append(base)
        if tag:
            tags.append(tag)
    return list(dict.fromkeys(bases)), tags


def identify(
    email: InboundEmail, parks: list[dict], cameras: list[dict], patterns: list[Pattern]
) -> Identification:
    """Decide the camera. ``parks``: parks reached through a recipient address; ``cameras``: candidate
    cameras (those with a matching sender address and those of ``parks``), each with ``park_id``."""
    ids, brand = extract_ids(email, patterns)
    _bases, tags = recipients_of(email)
    result = Identification(brand=brand, ids=ids + [t for t in tags if t not in ids])
    wanted = {normalize_id(i) for i in result.ids}
    texts = [email.subject, (email.text or "")[:4000]]
    senders = set(senders_of(email))
    park_ids = {p["id"] for p in parks}
    parks_by_id = {p["id"]: p for p in parks}

    by_sender = [c for c in cameras if senders & set(c.get("sender_addresses") or [])]
    if park_ids and any(c["park_id"] in park_ids for c in by_sender):
        by_sender = [c for c in by_sender if c["park_id"] in park_ids]
    if len(by_sender) == 1:
        result.camera, result.method = by_sender[0], "sender"
    elif len(by_sender) > 1:
        named = [c for c in by_sender if _mentions(c, wanted, texts)]
        if len(named) == 1:
            result.camera, result.method = named[0], "sender+id"
        else:
            result.quarantine_reason = with_detail(
                AMBIGUOUS_CAMERA,
                f"{len(by_sender)} cameras send from {', '.join(sorted(senders))}; "
                f"ids in the email: {', '.join(result.ids) or 'none'}",
            )
            return result
    else:
        in_parks = [
            c
            for c in cameras
            if c["park_id"] in park_ids
            and not (parks_by_id[c["park_id"]].get("settings") or {}).get("require_known_sender")
        ]
        tagged = [
            c
            for c in in_parks
            if tags and {normalize_id(t) for t in tags} & {normalize_id(k) for k in _keys(c)}
        ]
        named = tagged or [c for c in in_parks if _mentions(c, wanted, texts)]
        if len(named) == 1:
            result.camera, result.method = named[0], "plus-address" if tagged else "id"
        elif len(named) > 1:
            result.quarantine_reason = with_detail(
                AMBIGUOUS_CAMERA,
                f"ids {', '.join(result.ids) or '-'} match cameras "
                f"{', '.join(sorted(c['name'] for c in named))}",
            )
            return result
        else:
            result.quarantine_reason = with_detail(
                UNKNOWN_SENDER,
                f"sender {', '.join(sorted(senders)) or 'none'}, to "
                f"{', '.join(email.recipients) or 'none'}, ids {', '.join(result.ids) or 'none'}",
            )
            return result
    result.park = parks_by_id.get(result.camera["park_id"])
    return result
