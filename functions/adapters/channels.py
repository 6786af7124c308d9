"""Channels in PostgreSQL (what `trapalert channels` edits) and the rule that keeps secrets out of them.

A channel's config is validated by its adapter's config model before it is saved, and refused when it
carries a secret value: secrets are named by app setting (``token_setting: CHANNEL_SECRET_ER_TOKEN_PARKX``),
never written into the database. The safety rules of every kind (functions/notify/safety.py: secret setting
names, https, public addresses) are checked with the park's allowed secret names
(``parks.settings.channel_secrets``). A channel added without ``people_photos`` gets its kind's default
written into its config (functions/notify/privacy.py), so that what it receives is visible in
``trapalert channels list``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..db import Database
from ..notify import Channel, ChannelConfigError, park_secret_names, validate_channel
from ..notify.privacy import default_policy

PURPOSES = ("alerts", "ops")
# key names that hold secrets unless they are *_setting references
_SECRET_KEY = re.compile(
    r"(token|passw|secret|api_?key|private_?key|credential|authorization|bearer|"
    r"signing_?key|access_?key|client_?secret|cookie)",
    re.I,
)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
# values that look like credentials whatever their key (SendGrid keys, bearer/basic headers, JWTs)
_SECRET_VALUE = re.compile(
    r"^(SG\.[\w-]{10,}|(Bearer|Basic|Token)\s+\S{8,}|eyJ[\w-]{10,}\.[\w-]+\.[\w-]+)", re.I
)


class ChannelError(ValueError):
    """A channel that cannot be added, found or removed as asked; the message says why."""


def secret_problems(config: Any, path: str = "") -> list[str]:
    """Where ``config`` carries a secret value instead of naming the app setting that holds it."""
    problems: list[str] = []
    if isinstance(config, dict):
        for key, value in config.items():
            where = f"{path}.{key}" if path else str(key)
            if str(key).endswith("_setting"):
                if value is not None and (not isinstance(value, str) or not _SETTING_NAME.match(value)):
                    problems.append(f"{where}: must be the NAME of an app setting (letters, digits, _ . : -)")
                continue
            if (
                _SECRET_KEY.search(str(key))
                and value not in (None, "", [], {})
                and not isinstance(value, bool)
            ):
                problems.append(
                    f"{where}: looks like a secret value; store it in an app setting and give its "
                    f"name as {key}_setting"
                )
                continue
            problems += secret_problems(value, where)
    elif isinstance(config, list):
        for i, item in enumerate(config):
            problems += secret_problems(item, f"{path}[{i}]")
    elif isinstance(config, str) and _SECRET_VALUE.match(config.strip()):
        problems.append(f"{path or '(config)'}: looks like a credential; use an app setting name instead")
    return problems


def check_channel(channel: Channel, *, allowed_secrets: tuple[str, ...] = ()) -> None:
    """Raise ChannelError when the config holds a secret, is unsafe, or its adapter's model refuses it."""
    problems = secret_problems(channel.config)
    if problems:
        raise ChannelError("secrets never go into a channel's config: " + "; ".join(problems))
    try:
        validate_channel(channel, allowed_secrets=allowed_secrets)
    except ChannelConfigError as exc:
        raise ChannelError(str(exc)) from None


class ChannelRepository:
    def __init__(self, db: Database):
        self.db = db

    def park_id(self, park_slug: str) -> int:
        row = self.db.fetchone("SELECT id FROM parks WHERE slug = %s", (park_slug,))
        if row is None:
            raise ChannelError(f"no park {park_slug!r} (see `trapalert parks list`)")
        return row["id"]

    def add(
        self,
        park_slug: str,
        name: str,
        kind: str,
        config: dict[str, Any],
        *,
        purpose: str = "alerts",
        zone: str | None = None,
        enabled: bool = True,
    ) -> dict[str, Any]:
        if purpose not in PURPOSES:
            raise ChannelError(f"purpose must be one of {PURPOSES}")
        if not name.strip():
            raise ChannelError("a channel needs a name")
        park_id = self.park_id(park_slug)
        if "people_photos" not in config:
            config = {**config, "people_photos": default_policy(kind)}
        check_channel(
            Channel(id=0, park_id=park_id, kind=kind, name=name, config=config, zone=zone),
            allowed_secrets=self.allowed_secrets(park_id),
        )
        row = self.db.fetchone(
            """INSERT INTO channels (park_id, name, kind, purpose, zone, config, enabled)
               VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s)
               ON CONFLICT (park_id, name) DO NOTHING RETURNING *""",
            (park_id, name, kind, purpose, zone, json.dumps(config), enabled),
        )
        if row is None:
            raise ChannelError(f"park {park_slug} already has a channel {name!r} (remove it first)")
        return row

    def allowed_secrets(self, park_id: int) -> tuple[str, ...]:
        """Secret setting names the park's channels may use besides ``CHANNEL_SECRET_*``."""
        row = self.db.fetchone("SELECT settings FROM parks WHERE id = %s", (park_id,))
        return park_secret_names(row["settings"] if row else None)

    def get(self, park_slug: str, name: str) -> dict[str, Any]:
        row = self.db.fetchone(
            "SELECT ch.* FROM channels ch JOIN parks p ON p.id = ch.park_id "
            "WHERE p.slug = %s AND ch.name = %s",
            (park_slug, name),
        )
        if row is None:
            raise ChannelError(f"park {park_slug} has no channel {name!r}")
        return row

    def remove(self, park_slug: str, name: str) -> dict[str, Any]:
        row = self.get(park_slug, name)
        self.db.execute("DELETE FROM channels WHERE id = %s", (row["id"],))
        return row

    def list(self, park_slug: str | None = None) -> list[dict[str, Any]]:
        """Channels with their last delivery (status, time, error) and delivery counts."""
        return self.db.fetchall(
            """SELECT ch.id, p.slug AS park, ch.name, ch.kind, ch.purpose, ch.zone, ch.enabled, ch.config,
                      last.status AS last_status, last.updated_at AS last_at, last.alert_id AS last_alert_id,
                      last.last_error AS last_error,
                      (SELECT count(*) FROM deliveries d
                       WHERE d.channel_id = ch.id AND d.status = 'delivered')
                          AS delivered,
                      (SELECT count(*) FROM deliveries d WHERE d.channel_id = ch.id AND d.status = 'failed')
                          AS failed
               FROM channels ch JOIN parks p ON p.id = ch.park_id
               LEFT JOIN LATERAL (SELECT d.status, d.updated_at, d.alert_id, d.last_error FROM deliveries d
                                  WHERE d.channel_id = ch.id ORDER BY d.updated_at DESC, d.id DESC LIMIT 1)
                   last ON true
               WHERE %(park)s::text IS NULL OR p.slug = %(park)s
               ORDER BY p.slug, ch.name""",
            {"park": park_slug},
        )
