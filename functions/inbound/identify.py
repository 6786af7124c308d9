"""Which camera sent an email, and whether to believe it: a pure decision over the email, what its brand
plugin read from it, and the registered cameras (no I/O: ``ingest.py`` loads the data and records the
outcome).

An email is accepted as a camera's only when both hold:

1. **it is authentic** (``authenticate``): DMARC-style alignment, i.e. a passing DKIM signature of the From
   domain or of its organizational domain (``dkim``), or an SPF pass for an envelope domain aligned with it
   (``spf``); or the camera's secret token in the recipient address, ``park-x+<token>@...`` (``token``),
   which authenticates on its own for cameras whose mail has neither. A DKIM pass of ``attacker.tld`` on
   mail "From" the camera's domain, or an SPF pass of another domain, authenticates nothing.
2. **it names its camera by a proof the park trusts**, recorded per photo (``images.proofs``) and on the
   email (``inbound_emails.proofs``):
   - ``sender``: the authenticated sender is the camera's own address (registered on that camera only, and
     not a vendor's shared address: the brand plugin's ``vendor_shared``, or the park's ``shared_senders``);
   - ``sender_name``: several cameras of one park send from the same authenticated (non-shared) address,
     e.g. the park's own relay, and the email or photo names one of them (name or alias);
   - ``token``: the camera's secret token in the recipient address;
   - ``serial`` / ``exif_serial``: a registered serial or IMEI of the camera, as the brand plugin reads it
     from the email's structured fields (``IMEI:``/``Serial:`` lines, RidgeTec's ``data-imei``) or from the
     photo's EXIF (one email may carry photos of several cameras: CuddeLink networks). Not any word of the
     subject: an owner of the same brand chooses his camera's name, which the vendor writes there;
   - ``token_name``: the photo's own camera id names another camera of the token camera's park (a
     CuddeLink network whose home camera has the token).
   A vendor-shared sender names no camera on its own, and a name in the subject is not a proof by itself
   (anyone can write it). A park with ``require_token`` accepts only emails with a token of its cameras.

Anything else is quarantined with the reason (codes below) and never alerts or moves a health fact.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ..domain.authenticity import dkim_aligned, domain_of, spf_aligned
from ..statuses import AuthMethod, Proof
from .parse_sendgrid import InboundEmail
from .patterns import SafePattern, safe_compile
from .reasons import AMBIGUOUS_CAMERA, DKIM_REQUIRED, SPF_REQUIRED, UNKNOWN_SENDER, with_detail

# Quarantine codes of identification (besides reasons.UNKNOWN_SENDER / AMBIGUOUS_CAMERA / SPF_REQUIRED /
# DKIM_REQUIRED / CAMERA_INACTIVE).
UNAUTHENTICATED = "unauthenticated"  # claims a registered camera, but neither aligned DKIM/SPF nor a token
SHARED_SENDER = "shared_sender"  # a vendor's shared sender, and no token or serial names the camera
TOKEN_REQUIRED = "token_required"  # the park requires a camera token in the recipient address
UNATTRIBUTED_PHOTO = "unattributed_photo"  # a photo names a camera that no proof supports


@dataclass(frozen=True)
class Pattern:
    brand: str
    field: Literal["subject", "body", "any"]
    regex: SafePattern


_ID = r"(?P<camera>[A-Za-z0-9][A-Za-z0-9_.-]{0,40}[A-Za-z0-9]|[A-Za-z0-9])"

# How cameras write their own name in subject or body; used only to tell apart cameras that share one
# authenticated sender (``sender_name``), never as a proof on its own. Extend with INBOUND_CAMERA_PATTERNS.
BUILTIN_PATTERNS: list[dict[str, str]] = [
    {"brand": "reconyx", "field": "subject", "regex": r"^\s*RECONYX\b[^:\-]{0,80}[:\-]\s*" + _ID},
    {"brand": "bushnell", "field": "subject", "regex": r"^\s*Bushnell\b[^:]{0,80}:\s*" + _ID},
    {"brand": "browning", "field": "subject", "regex": r"^\s*Browning\b.{0,80}?\bfrom\s+" + _ID},
    {"brand": "spypoint", "field": "subject", "regex": r"\bSPYPOINT\b.{0,80}?\bfrom\s+" + _ID},
    {
        "brand": "generic",
        "field": "body",
        "regex": r"(?im)^[ \t]*Cam(?:era)?[ \t]*(?:Name|ID)?[ \t]*[:=][ \t]*" + _ID,
    },
    {"brand": "generic", "field": "subject", "regex": r"\[\s*" + _ID + r"\s*\]"},
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
        rx = safe_compile(entry["regex"], re.IGNORECASE, name=f"{where}")
    except ValueError as exc:
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


def normalize_serial(value: str | None) -> str:
    """As functions/adapters/parks.normalize_serial stores them: letters and digits, upper case."""
    return re.sub(r"[^0-9A-Z]+", "", (value or "").upper())


def split_plus(address: str) -> tuple[str, str | None]:
    """park-x+tag@d -> (park-x@d, tag)."""
    local, at, domain = address.partition("@")
    if not at or "+" not in local:
        return address, None
    base, _, tag = local.partition("+")
    return f"{base}@{domain}", tag or None


# ---------------------------------------------------------------------------------------- what it claims
@dataclass(frozen=True)
class PhotoClaim:
    """One photo of the email and what it says about its camera (from the brand plugin's reading)."""

    key: int | str  # attachment index (1-based), or the URL of a photo given by link
    camera_id: str | None = None  # the camera's own id for this photo (e.g. EXIF UserComment ID=...)
    serial: str | None = None  # serial / IMEI written for this photo (EXIF, file name)


@dataclass
class Claims:
    """What the email says about its camera(s): brand, shared sender, ids, serials, per-photo claims."""

    brand: str | None = None
    vendor_shared: bool = False
    camera_id: str | None = None  # the email's own camera id (subject/body), per its brand
    serials: list[str] = field(default_factory=list)  # serials/IMEIs in the email (brand reading, text)
    photos: list[PhotoClaim] = field(default_factory=list)


@dataclass
class PhotoCamera:
    key: int | str
    camera: dict | None
    proofs: list[Proof] = field(default_factory=list)
    problem: str | None = None


@dataclass
class Identification:
    camera: dict | None = None  # the email's camera (the only one, or the one the email-level proofs name)
    park: dict | None = None
    authenticated_by: list[AuthMethod] = field(default_factory=list)
    proofs: list[Proof] = field(default_factory=list)  # every proof used, email and photos
    photos: dict[int | str, PhotoCamera] = field(default_factory=dict)
    quarantine_reason: str | None = None
    brand: str | None = None
    ids: list[str] = field(default_factory=list)
    auth_detail: str = ""
    proofs_of_email: list[Proof] = field(default_factory=list)  # what named the email's own camera

    @property
    def cameras(self) -> list[dict]:
        """Every camera of the email's photos (and the email's own), each once."""
        seen: dict[int, dict] = {}
        for c in [self.camera, *(p.camera for p in self.photos.values())]:
            if c is not None:
                seen.setdefault(c["id"], c)
        return list(seen.values())

    def camera_of(self, key: int | str) -> PhotoCamera:
        return self.photos.get(key) or PhotoCamera(key, self.camera, list(self.proofs_of_email))


def extract_ids(
    email: InboundEmail, patterns: list[Pattern], defects: list[str] | None = None
) -> tuple[list[str], str | None]:
    """Camera ids the email writes about itself, and the brand of the first pattern that matched."""
    ids: list[str] = []
    brand = None
    body = (email.text or "")[:4000]
    subject = (email.subject or "")[:1000]
    for p in patterns:
        texts = {"subject": [subject], "body": [body], "any": [subject, body]}[p.field]
        for text in texts:
            for m in p.regex.finditer(text or "", defects, limit=20):
                value = m.group("camera").strip()
                if value and value not in ids:
                    ids.append(value)
                    brand = brand or p.brand
    return ids, brand


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


# ---------------------------------------------------------------------------------------- authenticity
def authenticate(email: InboundEmail, token_camera: dict | None) -> tuple[list[AuthMethod], str]:
    """How the email is authentic (possibly not at all), and a one-line account for the reason/logs."""
    from_domain = domain_of(email.sender_address)
    env_domain = domain_of(email.envelope_from)
    pairs = email.dkim_results
    methods: list[AuthMethod] = []
    if from_domain and dkim_aligned(from_domain, pairs):
        methods.append("dkim")
    if from_domain and spf_aligned(from_domain, env_domain, email.spf_result):
        methods.append("spf")
    if token_camera is not None:
        methods.append("token")
    dkim_text = ", ".join(f"{d} {r}" for d, r in pairs) or "none"
    detail = (
        f"From domain {from_domain or 'none'}; DKIM {dkim_text}; SPF {email.spf_result or 'none'} "
        f"for {env_domain or 'none'}; token {'yes' if token_camera else 'none'}"
    )
    return methods, detail[:400]


# ---------------------------------------------------------------------------------------- naming
def _keys(camera: dict) -> list[str]:
    return [k for k in [camera["name"], *(camera.get("aliases") or [])] if k]


def _names(camera: dict, wanted: set[str], texts: list[str]) -> bool:
    for key in _keys(camera):
        if normalize_id(key) in wanted:
            return True
        if len(key) >= 3:
            rx = r"(?<![A-Za-z0-9])" + re.escape(key) + r"(?![A-Za-z0-9])"
            if any(re.search(rx, t, re.IGNORECASE) for t in texts if t):
                return True
    return False


def _is_shared(address: str, parks: list[dict]) -> bool:
    domain = domain_of(address) or ""
    for park in parks:
        for entry in park.get("shared_senders") or []:
            entry = entry.lower()
            if entry == address or entry.lstrip("@") == domain:
                return True
    return False


def _one(cams: list[dict]) -> dict | None:
    return cams[0] if len(cams) == 1 else None


def identify(
    email: InboundEmail,
    claims: Claims,
    parks: list[dict],
    cameras: list[dict],
    patterns: list[Pattern],
    token_hashes: set[str] | None = None,
) -> Identification:
    """Decide authenticity and the camera of every photo.

    ``parks``: the parks reached through a recipient address; ``cameras``: the candidates (those with a
    matching sender address, token hash or serial, and every camera of ``parks`` and of the token camera's
    park), each with ``park_id`` and ``park_row``; ``token_hashes``: the hashes of the recipient plus tags.
    """
    ids, brand = extract_ids(email, patterns, email.defects)
    result = Identification(brand=claims.brand or brand, ids=ids)
    token_hashes = token_hashes or set()
    parks_by_id = {p["id"]: p for p in parks}
    for c in cameras:
        if c["park_id"] not in parks_by_id and c.get("park_row"):
            parks_by_id[c["park_id"]] = c["park_row"]
    reached = {p["id"] for p in parks}

    # -- 1. authentic? ------------------------------------------------------------------------------
    by_token = [c for c in cameras if c.get("token_hash") and c["token_hash"] in token_hashes]
    token_camera = _one(by_token)
    methods, result.auth_detail = authenticate(email, token_camera)
    result.authenticated_by = methods
    if not methods:
        senders = set(senders_of(email))
        claimed = [c for c in cameras if senders & set(c.get("sender_addresses") or [])]
        claimed += [c for c in cameras if set(claims.serials) & set(c.get("serials") or [])]
        if claimed:  # it claims to be a registered camera and cannot prove it
            result.quarantine_reason = with_detail(
                UNAUTHENTICATED,
                f"claims camera {', '.join(sorted({c['name'] for c in claimed}))}; {result.auth_detail}",
            )
        else:
            result.quarantine_reason = with_detail(
                UNKNOWN_SENDER,
                f"sender {', '.join(sorted(senders)) or 'none'}, to {', '.join(email.recipients) or 'none'}: "
                f"no registered camera; {result.auth_detail}",
            )
        return result

    # -- 2. what names the camera -------------------------------------------------------------------
    wanted = {normalize_id(i) for i in [*ids, *([claims.camera_id] if claims.camera_id else [])]}
    texts = [(email.subject or "")[:1000], (email.text or "")[:4000]]
    sender_authentic = "dkim" in methods or "spf" in methods
    senders = set(senders_of(email))
    by_sender: list[dict] = []
    shared = claims.vendor_shared
    if sender_authentic and senders:
        by_sender = [c for c in cameras if senders & set(c.get("sender_addresses") or [])]
        if reached and any(c["park_id"] in reached for c in by_sender):
            by_sender = [c for c in by_sender if c["park_id"] in reached]
        shared = shared or any(_is_shared(a, list(parks_by_id.values())) for a in senders)
        if len({c["park_id"] for c in by_sender}) > 1:
            shared = True  # registered in several parks: not one camera's own address
        if shared:
            by_sender = []

    serials_in_email = {normalize_serial(s) for s in claims.serials if normalize_serial(s)}
    # serials name cameras of the parks the email was sent to (or of the token camera's park)
    scope = reached | ({token_camera["park_id"]} if token_camera is not None else set())
    serial_pool = [c for c in cameras if not scope or c["park_id"] in scope]
    by_serial = [c for c in serial_pool if serials_in_email & set(c.get("serials") or [])]

    default: dict | None = None
    default_proofs: list[Proof] = []
    candidates: dict[int, dict] = {}
    named_by: dict[int, list[Proof]] = {}
    if token_camera is not None:
        candidates[token_camera["id"]] = token_camera
        named_by.setdefault(token_camera["id"], []).append("token")
    if len(by_sender) == 1:
        candidates[by_sender[0]["id"]] = by_sender[0]
        named_by.setdefault(by_sender[0]["id"], []).append("sender")
    elif len(by_sender) > 1:
        named = [c for c in by_sender if _names(c, wanted, texts)]
        if len(named) == 1:
            candidates[named[0]["id"]] = named[0]
            named_by.setdefault(named[0]["id"], []).append("sender_name")
    if len(by_serial) == 1:
        candidates[by_serial[0]["id"]] = by_serial[0]
        named_by.setdefault(by_serial[0]["id"], []).append("serial")
    elif len(by_serial) > 1:
        result.quarantine_reason = with_detail(
            AMBIGUOUS_CAMERA,
            f"serials {', '.join(sorted(serials_in_email))} match cameras "
            f"{', '.join(sorted(c['name'] for c in by_serial))}",
        )
        return result
    if len(candidates) > 1:
        result.quarantine_reason = with_detail(
            AMBIGUOUS_CAMERA,
            "the proofs name different cameras: "
            + "; ".join(f"{candidates[i]['name']} by {'+'.join(p)}" for i, p in named_by.items()),
        )
        return result
    if candidates:
        default = next(iter(candidates.values()))
        default_proofs = named_by[default["id"]]
    result.camera, result.proofs_of_email = default, list(default_proofs)

    # -- 3. per photo -------------------------------------------------------------------------------
    by_serial_all: dict[str, list[dict]] = {}
    for c in serial_pool:
        for s in c.get("serials") or []:
            by_serial_all.setdefault(s, []).append(c)
    if token_camera is not None:
        anchor, anchor_proof = [c for c in cameras if c["park_id"] == token_camera["park_id"]], "token_name"
    elif len(by_sender) > 1:
        anchor, anchor_proof = by_sender, "sender_name"
    else:
        anchor, anchor_proof = [], None
    problems: list[str] = []
    for claim in claims.photos:
        photo = PhotoCamera(claim.key, None)
        serial = normalize_serial(claim.serial)
        own_id = normalize_id(claim.camera_id) if claim.camera_id else None
        if serial and len(by_serial_all.get(serial, [])) == 1:
            cam = by_serial_all[serial][0]
            photo.camera, photo.proofs = cam, ["exif_serial"]
            if default is not None and cam["id"] == default["id"]:  # the email named it already
                photo.proofs = list(
                    dict.fromkeys([*default_proofs, *([] if "serial" in default_proofs else ["exif_serial"])])
                )
        elif default is not None and (own_id is None or own_id in {normalize_id(k) for k in _keys(default)}):
            photo.camera, photo.proofs = default, list(default_proofs)
        elif own_id and anchor_proof:
            named = [c for c in anchor if own_id in {normalize_id(k) for k in _keys(c)}]
            if len(named) == 1:
                photo.camera, photo.proofs = named[0], [anchor_proof]
            else:
                photo.problem = f"photo {claim.key} says camera {claim.camera_id!r}: no proof names it"
        elif own_id or serial:
            photo.problem = (
                f"photo {claim.key} says camera {claim.camera_id or '-'} serial {claim.serial or '-'}: "
                "no proof names it"
            )
        else:
            photo.problem = f"photo {claim.key}: nothing names its camera"
        result.photos[claim.key] = photo
        if photo.problem:
            problems.append(photo.problem)

    decided = [p for p in result.photos.values() if p.camera is not None]
    if default is None and len({p.camera["id"] for p in decided}) == 1:
        result.camera = decided[0].camera
    result.proofs = list(dict.fromkeys([*default_proofs, *(x for p in decided for x in p.proofs)]))
    if result.camera is None and not decided:
        if len(by_sender) > 1:
            result.quarantine_reason = with_detail(
                AMBIGUOUS_CAMERA,
                f"{len(by_sender)} cameras send from {', '.join(sorted(senders))}; "
                f"ids in the email: {', '.join(result.ids) or 'none'}",
            )
        else:
            result.quarantine_reason = _nothing_names(email, claims, shared, senders, result.ids)
        return result
    if problems:
        result.quarantine_reason = with_detail(UNATTRIBUTED_PHOTO, "; ".join(problems))
        return result
    result.park = parks_by_id.get((result.camera or decided[0].camera)["park_id"])

    # -- 4. what the parks require ------------------------------------------------------------------
    for cam in result.cameras:
        park = parks_by_id.get(cam["park_id"]) or cam.get("park_row") or {}
        if park.get("require_token") and (token_camera is None or token_camera["park_id"] != cam["park_id"]):
            result.quarantine_reason = with_detail(
                TOKEN_REQUIRED,
                f"park {park.get('slug')} requires a camera token in the recipient address "
                f"(park address +<token>); camera {cam['name']}",
            )
            return result
        if park.get("require_spf_pass") and "spf" not in methods:
            result.quarantine_reason = with_detail(
                SPF_REQUIRED, f"park {park.get('slug')} requires an aligned SPF pass; {result.auth_detail}"
            )
            return result
        if park.get("require_dkim_pass") and "dkim" not in methods:
            result.quarantine_reason = with_detail(
                DKIM_REQUIRED, f"park {park.get('slug')} requires an aligned DKIM pass; {result.auth_detail}"
            )
            return result
    return result


def _nothing_names(
    email: InboundEmail, claims: Claims, shared: bool, senders: set[str], ids: list[str]
) -> str:
    who = ", ".join(sorted(senders)) or "none"
    if shared:
        return with_detail(
            SHARED_SENDER,
            f"{who} is a shared sender ({claims.brand or 'vendor cloud'}): it names no camera; "
            "give the camera a token (park address +<token>) or register its serial",
        )
    return with_detail(
        UNKNOWN_SENDER,
        f"sender {who}, to {', '.join(email.recipients) or 'none'}, ids {', '.join(ids) or 'none'}, "
        f"serials {', '.join(claims.serials) or 'none'}: no registered camera's sender, token or serial",
    )
