"""Alerts, channels and delivery records in PostgreSQL: what the send-alert handler reads and writes.

One ``deliveries`` row per (alert, channel). ``delivered_version`` is the alert version last delivered on
that channel; ``external_id``/``state`` are what the adapter left on the remote side (an EarthRanger event
id, a CMORE root message id), including the *partial* state of a failed attempt, so the next attempt
resumes instead of creating a second remote event. While ``delivered_version`` is 0 the stored state is a
partial (``send_new(resume=...)``); afterwards it is the previous result (``send_update(previous=...)``).

A delivery is *claimed* (``claim_token``/``claimed_until``, a lease) while a worker sends it, so that two
messages of one alert handled at once never both send (see migration 0006).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..db import Database
from ..messages import SendAlert
from ..names import SEND_ALERT_QUEUE
from ..statuses import DeliveryStatus
from .outbox import Outbox, OutboxMessage


class DeliveryBusy(RuntimeError):
    """Another worker holds the claim of this delivery and did not release it in time."""


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    token: str
    delivered_version: int
    external_id: str | None
    state: dict[str, Any]
    status: DeliveryStatus


class DeliveryRepository:
    def __init__(self, db: Database):
        self.db = db

    # -- reads ----------------------------------------------------------------------------------
    def alert_context(self, alert_id: int) -> dict[str, Any] | None:
        """The alert with its camera, park and best image, and the clip when that image is a video frame
        (None when the alert does not exist)."""
        return self.db.fetchone(
            """SELECT a.*, a.updated_at AS alert_updated_at,
                      c.name AS camera_name, c.latitude, c.longitude, c.zone AS camera_zone,
                      COALESCE(c.timezone, p.timezone) AS camera_timezone,
                      p.slug AS park_slug, p.name AS park_name, p.settings AS park_settings,
                      i.blob_name AS image_blob, i.sha256 AS image_sha256, i.taken_at AS image_taken_at,
                      clip.blob_name AS clip_blob
               FROM alerts a
               JOIN cameras c ON c.id = a.camera_id
               JOIN parks p ON p.id = a.park_id
               LEFT JOIN images i ON i.id = a.best_image_id
               LEFT JOIN images clip ON clip.id = i.clip_image_id
               WHERE a.id = %s""",
            (alert_id,),
        )

    def detections(self, image_id: int, alert: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The detections a notice draws on ``image_id``: its stored ones, or for a re-scoring alert (kind
        ``rescore``) the new model's, kept in the alert's details (the photo's own stay as they were)."""
        if alert is not None and alert.get("kind") == "rescore":
            found = ((alert.get("details") or {}).get("rescore") or {}).get("detections") or []
            rows = [
                {
                    "category": d["category"],
                    "conf": d["conf"],
                    **dict(zip(("bbox_x", "bbox_y", "bbox_w", "bbox_h"), d["bbox"], strict=True)),
                }
                for d in found
            ]
            return sorted(rows, key=lambda r: -float(r["conf"]))
        return self.db.fetchall(
            "SELECT category, conf, bbox_x, bbox_y, bbox_w, bbox_h FROM detections WHERE image_id = %s "
            "ORDER BY conf DESC, id",
            (image_id,),
        )

    def first_received_at(self, alert_id: int) -> datetime | None:
        """When the email of the alert's first photo was received (None: an alert without photos)."""
        row = self.db.fetchone(
            """SELECT min(e.received_at) AS received_at
               FROM images i JOIN inbound_emails e ON e.id = i.email_id
               WHERE i.alert_id = %(a)s OR i.id = (SELECT best_image_id FROM alerts WHERE id = %(a)s)""",
            {"a": alert_id},
        )
        return row["received_at"] if row else None

    def channels_for(self, park_id: int, zone: str | None, purpose: str) -> list[dict[str, Any]]:
        """Enabled channels of the park for ``purpose`` whose zone is unset or the camera's zone."""
        return self.db.fetchall(
            """SELECT * FROM channels
               WHERE park_id = %s AND enabled AND purpose = %s AND (zone IS NULL OR zone = %s)
               ORDER BY id""",
            (park_id, purpose, zone),
        )

    # -- claims ---------------------------------------------------------------------------------
    def try_claim(self, alert_id: int, channel_id: int, lease_s: float) -> Claim | None:
        token = str(uuid.uuid4())
        with self.db.transaction() as cur:
            cur.execute(
                """INSERT INTO deliveries (alert_id, channel_id, status) VALUES (%s, %s, 'pending')
                   ON CONFLICT (alert_id, channel_id) DO NOTHING""",
                (alert_id, channel_id),
            )
            cur.execute(
                """UPDATE deliveries SET claim_token = %s, claimed_until = now() + make_interval(secs => %s)
                   WHERE alert_id = %s AND channel_id = %s
                     AND (claimed_until IS NULL OR claimed_until < now())
                   RETURNING id, delivered_version, external_id, state, status""",
                (token, float(lease_s), alert_id, channel_id),
            )
            row = cur.fetchone()
        if row is None:
            return None
        return Claim(
            row["id"], token, row["delivered_version"], row["external_id"], row["state"] or {}, row["status"]
        )

    def claim(self, alert_id: int, channel_id: int, *, lease_s: float, wait_s: float) -> Claim:
        """Claim the delivery, waiting while another worker holds it (up to ``wait_s``)."""
        deadline = time.monotonic() + wait_s
        pause = 0.05
        while True:
            claim = self.try_claim(alert_id, channel_id, lease_s)
            if claim is not None:
                return claim
            if time.monotonic() >= deadline:
                raise DeliveryBusy(
                    f"delivery of alert {alert_id} to channel {channel_id} is held by another "
                    f"worker for more than {wait_s:.0f} s"
                )
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def renew(self, claim: Claim, lease_s: float) -> bool:
        """Extend a held claim while its sender works; False if the claim is no longer this one's."""
        n = self.db.execute(
            "UPDATE deliveries SET claimed_until = now() + make_interval(secs => %s) "
            "WHERE id = %s AND claim_token = %s",
            (float(lease_s), claim.delivery_id, claim.token),
        )
        return n == 1

    def release(self, claim: Claim) -> None:
        self.db.execute(
            "UPDATE deliveries SET claim_token = NULL, claimed_until = NULL "
            "WHERE id = %s AND claim_token = %s",
            (claim.delivery_id, claim.token),
        )

    # -- outcomes (each also releases the claim) ------------------------------------------------
    def record_delivered(
        self,
        claim: Claim,
        version: int,
        external_id: str | None,
        state: dict[str, Any],
        *,
        force: bool = False,
    ) -> bool:
        """Record a successful delivery of alert ``version``; False if the claim had been lost (``force``:
        record it all the same, never lowering what another worker recorded). A channel that was failing
        permanently is cleared by its first success."""
        row = self.db.fetchone(
            """WITH ok AS (
                   UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, last_error = NULL,
                          permanent = false, fix = NULL, external_id = %(ext)s, state = %(state)s::jsonb,
                          delivered_version = GREATEST(delivered_version, %(v)s), delivered_at = now(),
                          updated_at = now(),
                          claim_token = CASE WHEN claim_token = %(token)s THEN NULL ELSE claim_token END,
                          claimed_until = CASE WHEN claim_token = %(token)s THEN NULL ELSE claimed_until END
                   WHERE id = %(id)s
                     AND (claim_token = %(token)s OR (%(force)s AND delivered_version < %(v)s))
                   RETURNING channel_id),
               cleared AS (
                   UPDATE channel_failures f SET status = 'cleared', cleared_at = now()
                   FROM ok WHERE f.channel_id = ok.channel_id AND f.status = 'raised')
               SELECT count(*) AS n FROM ok""",
            {
                "ext": external_id,
                "state": json.dumps(state),
                "v": version,
                "token": claim.token,
                "id": claim.delivery_id,
                "force": force,
            },
        )
        return bool(row and row["n"] == 1)

    def record_failed(
        self,
        claim: Claim,
        error: str,
        *,
        fix: str | None = None,
        external_id: str | None = None,
        state: dict[str, Any] | None = None,
    ) -> bool:
        """Record a failed attempt; ``external_id``/``state`` (a partial result) replace the stored ones
        when given, so that the next attempt resumes where this one stopped. With ``fix``, the failure is
        permanent: the delivery waits for an operator, with what to fix."""
        n = self.db.execute(
            """UPDATE deliveries SET status = 'failed', attempts = attempts + 1, last_error = %(error)s,
                      permanent = permanent OR %(permanent)s, fix = COALESCE(%(fix)s, fix),
                      failed_at = CASE WHEN %(permanent)s THEN now() ELSE failed_at END,
                      external_id = COALESCE(%(ext)s, external_id), state = COALESCE(%(state)s::jsonb, state),
                      updated_at = now(), claim_token = NULL, claimed_until = NULL
               WHERE id = %(id)s AND claim_token = %(token)s""",
            {
                "error": error[:2000],
                "permanent": fix is not None,
                "fix": fix[:1000] if fix is not None else None,
                "ext": external_id,
                "state": None if state is None else json.dumps(state),
                "id": claim.delivery_id,
                "token": claim.token,
            },
        )
        return n == 1

    # -- channels failing permanently (one row per channel; raise notifies ops once) --------------
    def raise_channel_failure(self, channel_id: int, error: str, fix: str) -> bool:
        """True when this call raised the channel's failure (it was not raised already): notify ops."""
        row = self.db.fetchone(
            """INSERT INTO channel_failures (channel_id, status, error, fix) VALUES (%s, 'raised', %s, %s)
               ON CONFLICT (channel_id) DO UPDATE SET status = 'raised', error = EXCLUDED.error,
                   fix = EXCLUDED.fix, raised_at = now(), cleared_at = NULL, notified_at = NULL
               WHERE channel_failures.status = 'cleared'
               RETURNING channel_id""",
            (channel_id, error[:2000], fix[:1000]),
        )
        return row is not None

    def mark_notified(self, channel_id: int) -> None:
        self.db.execute(
            "UPDATE channel_failures SET notified_at = now() WHERE channel_id = %s", (channel_id,)
        )

    def permanent_failures(
        self, park_slug: str | None = None, channel: str | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        """Deliveries waiting for an operator, newest first."""
        return self.db.fetchall(
            """SELECT d.id, d.alert_id, a.version, d.delivered_version, ch.id AS channel_id,
                      ch.name AS channel, ch.kind, p.slug AS park, d.last_error AS error, d.fix, d.failed_at
               FROM deliveries d JOIN channels ch ON ch.id = d.channel_id JOIN alerts a ON a.id = d.alert_id
               JOIN parks p ON p.id = ch.park_id
               WHERE d.permanent AND (%(park)s::text IS NULL OR p.slug = %(park)s)
                 AND (%(channel)s::text IS NULL OR ch.name = %(channel)s)
               ORDER BY d.failed_at DESC, d.id DESC LIMIT %(limit)s""",
            {"park": park_slug, "channel": channel, "limit": limit},
        )

    def redeliver(
        self, park_slug: str | None, channel: str | None, alert_id: int | None = None
    ) -> list[dict[str, Any]]:
        """In one transaction: every permanently failed delivery that matches goes back to ``pending``, a
        SendAlert of its alert's current version is written to the outbox (scope ``redeliver``; flush it
        after), and the channels' failures are cleared. Returns the deliveries re-sent."""
        with self.db.transaction() as cur:
            cur.execute(
                """SELECT d.id, d.alert_id, d.channel_id, a.version, a.correlation_id, ch.name AS channel
                   FROM deliveries d JOIN channels ch ON ch.id = d.channel_id
                   JOIN alerts a ON a.id = d.alert_id JOIN parks p ON p.id = ch.park_id
                   WHERE d.permanent AND (%(park)s::text IS NULL OR p.slug = %(park)s)
                     AND (%(channel)s::text IS NULL OR ch.name = %(channel)s)
                     AND (%(alert)s::bigint IS NULL OR d.alert_id = %(alert)s)
                   ORDER BY d.alert_id FOR UPDATE OF d""",
                {"park": park_slug, "channel": channel, "alert": alert_id},
            )
            rows = [dict(r) for r in cur.fetchall()]
            for r in rows:
                cur.execute(
                    "UPDATE deliveries SET permanent = false, status = 'pending', updated_at = now() "
                    "WHERE id = %s RETURNING extract(epoch FROM updated_at)::bigint AS at",
                    (r["id"],),
                )
                at = cur.fetchone()["at"]
                message = SendAlert(
                    alert_id=r["alert_id"],
                    version=r["version"],
                    reason="update",
                    correlation_id=r["correlation_id"] or uuid.uuid4(),
                )
                Outbox.add(
                    cur, OutboxMessage(SEND_ALERT_QUEUE, message, f"redeliver:{r['id']}:{at}", "redeliver")
                )
            for channel_id in {r["channel_id"] for r in rows}:
                cur.execute(
                    "UPDATE channel_failures SET status = 'cleared', cleared_at = now() "
                    "WHERE channel_id = %s AND status = 'raised'",
                    (channel_id,),
                )
        return rows

    def deliveries_of(self, alert_id: int) -> list[dict[str, Any]]:
        return self.db.fetchall(
            """SELECT d.*, ch.name AS channel_name, ch.kind AS channel_kind
               FROM deliveries d JOIN channels ch ON ch.id = d.channel_id
               WHERE d.alert_id = %s ORDER BY ch.id""",
            (alert_id,),
        )
