"""Parks and cameras in PostgreSQL (the registry operators edit with `trapalert parks|cameras`)."""

from __future__ import annotations

import csv
import io
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

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_tz(v) or "UTC"))

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

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_tz(v)))

    @field_validator("sender_addresses")
    @classmethod
    def _lower_all(cls, v: list[str]) -> list[str]:
        return sorted({a.strip().lower() for a in v if a.strip()})

    @field_validator("aliases")
    @classmethod
    def _strip_all(cls, v: list[str]) -> list[str]:
        return sorted({a.strip() for a in v if a.strip()})


class ParkRepository:
    def __init__(self, db: Database):
        self.db = db

    def add_park(self, park: ParkIn) -> dict[str, Any]:
        row = self.db.fetchone(
            """INSERT INTO parks (slug, name, timezone, inbound_address, require_spf_pass, require_dkim_pass)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name, timezone = EXCLUDED.timezone,
                   inbound_address = EXCLUDED.inbound_address, require_spf_pass = EXCLUDED.require_spf_pass,
                   require_dkim_pass = EXCLUDED.require_dkim_pass
               RETURNING *""",
            (park.slug, park.name, park.timezone, park.inbound_address, park.require_spf_pass,
             park.require_dkim_pass))
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
        park = self.park(park_slug)
        row = self.db.fetchone(
            """INSERT INTO cameras (park_id, name, brand, sender_addresses, aliases, latitude, longitude,
                                    timezone, zone, expected_interval_s)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (park_id, name) DO UPDATE SET brand = EXCLUDED.brand,
                   sender_addresses = EXCLUDED.sender_addresses, aliases = EXCLUDED.aliases,
                   latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude, timezone = EXCLUDED.timezone,
                   zone = EXCLUDED.zone, expected_interval_s = EXCLUDED.expected_interval_s
               RETURNING *""",
            (park["id"], cam.name, cam.brand, cam.sender_addresses, cam.aliases, cam.latitude, cam.longitude,
             cam.timezone, cam.zone, cam.expected_interval_s))
        assert row is not None
        return row

    def camera(self, park_id: int, name: str) -> dict[str, Any] | None:
        return self.db.fetchone("SELECT * FROM cameras WHERE park_id = %s AND name = %s", (park_id, name))

    def cameras(self, park_slug: str | None = None) -> list[dict[str, Any]]:
        if park_slug:
            return self.db.fetchall(
                "SELECT c.*, p.slug AS park_slug FROM cameras c JOIN parks p ON p.id = c.park_id "
                "WHERE p.slug = %s ORDER BY c.name", (park_slug,))
        return self.db.fetchall(
            "SELECT c.*, p.slug AS park_slug FROM cameras c JOIN parks p ON p.id = c.park_id "
            "ORDER BY p.slug, c.name")

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
            {"n": name, "p": park_slug, "id": camera_id})

    def first_camera(self, park_id: int, zone: str | None = None) -> dict[str, Any] | None:
        """The park's first camera (lowest id), of ``zone`` when given, with its effective time zone."""
        return self.db.fetchone(
            """SELECT c.*, COALESCE(c.timezone, p.timezone) AS effective_timezone
               FROM cameras c JOIN parks p ON p.id = c.park_id
               WHERE c.park_id = %s AND (%s::text IS NULL OR c.zone = %s) ORDER BY c.id LIMIT 1""",
            (park_id, zone, zone))

    def import_cameras_csv(self, text: str) -> list[dict[str, Any]]:
        """Columns: park, name, sender_addresses (;-separated), aliases (;-separated), latitude, longitude,
        timezone, zone, expected_interval_h, brand. All rows are checked before any is written."""
        reader = csv.DictReader(io.StringIO(text))
        required = {"park", "name"}
        if not reader.fieldnames or not required <= set(reader.fieldnames):
            raise RegistryError(f"the CSV needs the columns {sorted(required)}; it has {reader.fieldnames}")
        parsed: list[tuple[str, CameraIn]] = []
        for lineno, row in enumerate(reader, start=2):
            try:
                interval_h = row.get("expected_interval_h") or "24"
                cam = CameraIn(
                    name=row["name"], brand=row.get("brand") or None,
                    sender_addresses=_split(row.get("sender_addresses")), aliases=_split(row.get("aliases")),
                    latitude=row.get("latitude") or None, longitude=row.get("longitude") or None,
                    timezone=row.get("timezone") or None, zone=row.get("zone") or None,
                    expected_interval_s=int(float(interval_h) * 3600))
            except (ValueError, TypeError) as exc:
                raise RegistryError(f"line {lineno}: {exc}") from None
            self.park(row["park"])
            parsed.append((row["park"], cam))
        return [self.add_camera(park, cam) for park, cam in parsed]


def _split(value: str | None) -> list[str]:
    return [v for v in (value or "").replace(",", ";").split(";") if v.strip()]
