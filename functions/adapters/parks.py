"""Parks and cameras in PostgreSQL (the registry operators edit with `trapalert parks|cameras`).

Camera tokens are secrets: a new camera gets a random token (``new_token``), which is returned once to the
caller (the CLI shows it) and stored only as its sha256 (``token_hash``). A token has 120 random bits, so a
plain hash is as good as a keyed one against guessing; rotating it (``rotate_token``) invalidates the old
one at once.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import secrets
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator

from ..db import Database


class RegistryError(ValueError):
    """A park or camera that cannot be added as given; the message says why."""


def _check_tz(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name like Africa/Johannesburg)") from None
    return value


class ParkIn(BaseModel):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str = Field(min_length=1, max_length=200)
    timezone: str = "UTC"
    inbound_address: str | None = None
    require_spf_pass: bool = False
    require_dkim_pass: bool = False
    require_token: bool = False
    shared_senders: list[str] = []

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_tz(v) or "UTC"))

    @field_validator("shared_senders")
    @classmethod
    def _lower_senders(cls, v: list[str]) -> list[str]:
        return sorted({a.strip().lower() for a in v if a.strip()})

    @field_validator("inbound_address")
    @classmethod
    def _lower(cls, v: str | None) -> str | None:
        return v.strip().lower() if v else None


class CameraIn(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    brand: str | None = None
    sender_addresses: list[str] = []
    aliases: list[str] = []
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    timezone: str | None = None
    zone: str | None = None
    expected_interval_s: int = Field(86400, gt=0)
    serials: list[str] = []

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_tz(v)))

    @field_validator("serials")
    @classmethod
    def _normalize_serials(cls, v: list[str]) -> list[str]:
        out = sorted({normalize_serial(s) for s in v if normalize_serial(s)})
        if any(len(s) < 4 for s in out):
            raise ValueError("a serial or IMEI has at least 4 letters or digits")
        return out

    @field_validator("sender_addresses")
    @classmethod
    def _lower_all(cls, v: list[str]) -> list[str]:
        return sorted({a.strip().lower() for a in v if a.strip()})

    @field_validator("aliases")
    @classmethod
    def _strip_all(cls, v: list[str]) -> list[str]:
        return sorted({a.strip() for a in v if a.strip()})


def normalize_serial(value: str) -> str:
    """Serials and IMEIs compare on letters and digits, upper case (``86-1234 5678`` = ``8612345678``)."""
    return re.sub(r"[^0-9A-Z]+", "", (value or "").upper())


def new_token() -> str:
    """A fresh camera token: 24 lower-case base32 characters (120 bits), safe in an address's local part."""
    return base64.b32encode(secrets.token_bytes(15)).decode().lower()


def token_hash(token: str) -> str:
    """What the database keeps of a token (recipient addresses arrive lower-cased, so tokens compare so)."""
    return hashlib.sha256(token.strip().lower().encode()).hexdigest()


class ParkRepository:
    def __init__(self, db: Database):
        self.db = db

    def add_park(self, park: ParkIn) -> dict[str, Any]:
        row = self.db.fetchone(
            """INSERT INTO parks (slug, name, timezone, inbound_address, require_spf_pass, require_dkim_pass,
                                  require_token, shared_senders)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name, timezone = EXCLUDED.timezone,
                   inbound_address = EXCLUDED.inbound_address, require_spf_pass = EXCLUDED.require_spf_pass,
                   require_dkim_pass = EXCLUDED.require_dkim_pass, require_token = EXCLUDED.require_token,
                   shared_senders = EXCLUDED.shared_senders
               RETURNING *""",
            (
                park.slug,
                park.name,
                park.timezone,
                park.inbound_address,
                park.require_spf_pass,
                park.require_dkim_pass,
                park.require_token,
                park.shared_senders,
            ),
        )
        assert row is not None
        return row

    def park(self, slug_or_id: str | int) -> dict[str, Any]:
        if isinstance(slug_or_id, int) or str(slug_or_id).isdigit():
            row = self.db.fetchone("SELECT * FROM parks WHERE id = %s", (int(slug_or_id),))
        else:
            row = self.db.fetchone("SELECT * FROM parks WHERE slug = %s", (slug_or_id,))
        if row is None:
            raise RegistryError(f"no park {slug_or_id!r}")
        return row

    def parks(self) -> list[dict[str, Any]]:
        return self.db.fetchall("SELECT * FROM parks ORDER BY slug")

    def add_camera(self, park_slug: str, cam: CameraIn) -> dict[str, Any]:
        """Insert or update a camera. A new camera gets a token: the returned row then has ``token`` (the only
        time it is seen in clear); an updated one keeps its token (``token`` is None)."""
        park = self.park(park_slug)
        token = new_token()
        row = self.db.fetchone(
            """INSERT INTO cameras (park_id, name, brand, sender_addresses, aliases, latitude, longitude,
                                    timezone, zone, expected_interval_s, serials, token_hash,
                                    token_rotated_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
               ON CONFLICT (park_id, name) DO UPDATE SET brand = EXCLUDED.brand,
                   sender_addresses = EXCLUDED.sender_addresses, aliases = EXCLUDED.aliases,
                   latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude, timezone = EXCLUDED.timezone,
                   zone = EXCLUDED.zone, expected_interval_s = EXCLUDED.expected_interval_s,
                   serials = EXCLUDED.serials,
                   token_hash = COALESCE(cameras.token_hash, EXCLUDED.token_hash),
                   token_rotated_at = COALESCE(cameras.token_rotated_at, EXCLUDED.token_rotated_at)
               RETURNING *""",
            (
                park["id"],
                cam.name,
                cam.brand,
                cam.sender_addresses,
                cam.aliases,
                cam.latitude,
                cam.longitude,
                cam.timezone,
                cam.zone,
                cam.expected_interval_s,
                cam.serials,
                token_hash(token),
            ),
        )
        assert row is not None
        row["token"] = token if row["token_hash"] == token_hash(token) else None
        row["token_address"] = token_address(park.get("inbound_address"), park["slug"], row["token"])
        return row

    def rotate_token(self, camera_id: int) -> tuple[dict[str, Any], str]:
        """A new token for the camera (the old one stops working at once): (camera row, the new token)."""
        token = new_token()
        row = self.db.fetchone(
            """UPDATE cameras c SET token_hash = %s, token_rotated_at = now() FROM parks p
               WHERE c.id = %s AND p.id = c.park_id
               RETURNING c.*, p.slug AS park_slug, p.inbound_address AS park_inbound_address""",
            (token_hash(token), camera_id),
        )
        if row is None:
            raise RegistryError(f"no camera {camera_id}")
        row["token_address"] = token_address(row["park_inbound_address"], row["park_slug"], token)
        return row, token

    def camera(self, park_id: int, name: str) -> dict[str, Any] | None:
        return self.db.fetchone("SELECT * FROM cameras WHERE park_id = %s AND name = %s", (park_id, name))

    def cameras(self, park_slug: str | None = None) -> list[dict[str, Any]]:
        if park_slug:
            return self.db.fetchall(
                "SELECT c.*, p.slug AS park_slug FROM cameras c JOIN parks p ON p.id = c.park_id "
                "WHERE p.slug = %s ORDER BY c.name",
                (park_slug,),
            )
        return self.db.fetchall(
            "SELECT c.*, p.slug AS park_slug FROM cameras c JOIN parks p ON p.id = c.park_id "
            "ORDER BY p.slug, c.name"
        )

    def cameras_named(
        self, name: str, park_slug: str | None = None, *, or_id: bool = False
    ) -> list[dict[str, Any]]:
        """Cameras whose name or one of whose aliases is ``name`` (or, with ``or_id``, whose id it is), in
        park ``park_slug`` when given, with their park's slug, inbound address and effective time zone."""
        camera_id = int(name) if or_id and name.isdigit() else None
        return self.db.fetchall(
            """SELECT c.*, p.slug AS park_slug, p.inbound_address AS park_inbound_address,
                      COALESCE(c.timezone, p.timezone) AS effective_timezone
               FROM cameras c JOIN parks p ON p.id = c.park_id
               WHERE (c.name = %(n)s OR %(n)s = ANY(c.aliases) OR c.id = %(id)s)
                 AND (%(p)s::text IS NULL OR p.slug = %(p)s)
               ORDER BY c.id""",
            {"n": name, "p": park_slug, "id": camera_id},
        )

    def first_camera(self, park_id: int, zone: str | None = None) -> dict[str, Any] | None:
        """The park's first camera (lowest id), of ``zone`` when given, with its effective time zone."""
        return self.db.fetchone(
            """SELECT c.*, COALESCE(c.timezone, p.timezone) AS effective_timezone
               FROM cameras c JOIN parks p ON p.id = c.park_id
               WHERE c.park_id = %s AND (%s::text IS NULL OR c.zone = %s) ORDER BY c.id LIMIT 1""",
            (park_id, zone, zone),
        )

    def import_cameras_csv(self, text: str) -> list[dict[str, Any]]:
        """Columns: park, name, sender_addresses (;-separated), aliases (;-separated), latitude, longitude,
        timezone, zone, expected_interval_h, brand, serials (;-separated). All rows are checked before any is
        written. New cameras' rows carry their ``token`` (shown once)."""
        reader = csv.DictReader(io.StringIO(text))
        required = {"park", "name"}
        if not reader.fieldnames or not required <= set(reader.fieldnames):
            raise RegistryError(f"the CSV needs the columns {sorted(required)}; it has {reader.fieldnames}")
        parsed: list[tuple[str, CameraIn]] = []
        for lineno, row in enumerate(reader, start=2):
            try:
                interval_h = row.get("expected_interval_h") or "24"
                cam = CameraIn(
                    name=row["name"],
                    brand=row.get("brand") or None,
                    sender_addresses=_split(row.get("sender_addresses")),
                    aliases=_split(row.get("aliases")),
                    latitude=row.get("latitude") or None,
                    longitude=row.get("longitude") or None,
                    timezone=row.get("timezone") or None,
                    zone=row.get("zone") or None,
                    expected_interval_s=int(float(interval_h) * 3600),
                    serials=_split(row.get("serials")),
                )
            except (ValueError, TypeError) as exc:
                raise RegistryError(f"line {lineno}: {exc}") from None
            self.park(row["park"])
            parsed.append((row["park"], cam))
        return [self.add_camera(park, cam) for park, cam in parsed]


def token_address(inbound_address: str | None, park_slug: str, token: str | None) -> str | None:
    """The address a camera with ``token`` emails: the park's inbound address with ``+token``."""
    if not token:
        return None
    local, _, domain = (inbound_address or f"{park_slug}@").partition("@")
    return f"{local}+{token}@{domain or '<your inbound domain>'}"


def _split(value: str | None) -> list[str]:
    return [v for v in (value or "").replace(",", ";").split(";") if v.strip()]
