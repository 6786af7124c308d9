"""Ops notifications of poisoned messages, rate limited per ops channel with the state in PostgreSQL.

A poison storm (a downstream outage poisons a thousand messages) must send one notification, not a
thousand: the first poisoned message notifies each target ops channel (channels.purpose = 'ops') at once;
for the next ``OPS_NOTIFY_INTERVAL_S`` seconds further messages are only counted
(ops_notify_state.suppressed);
after the interval the next poisoned message, or the ops-digest timer, sends one summary of what was
counted. The claim "I send now" is a row lock in the database, so it holds across processes and instances
(the SQL is in functions/adapters/ops_repo.py).

Which ops channels: those of the park the message belongs to (``park_id`` in the message, or the park of
its ``alert_id`` / ``image_id``); every park's ops channels when the message names no park.
Sending is best effort: a failure is logged and counted back as suppressed, so the next attempt reports it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..adapters.ops_repo import OpsRepository
from ..console.urls import ops_page_url
from ..notify.base import AlertNotice, Channel, EnvSecrets, ParkRef, close_notifier
from ..notify.compose import ops_notice
from ..notify.registry import build_notifier
from ..notify.safety import park_secret_names
from ..settings import get_settings
from . import metrics

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 900


def parks_of_message(db, body: str) -> list[int] | None:
    """Park ids a queue message belongs to, or None when it names none (or does not parse)."""
    try:
        data = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("park_id"), int):
        return [data["park_id"]]
    repo = OpsRepository(db)
    for key in ("alert_id", "image_id"):
        if isinstance(data.get(key), int):
            park_id = repo.park_of(**{key: data[key]})
            if park_id is not None:
                return [park_id]
    return None


def ops_channels(db, park_ids: list[int] | None) -> list[dict[str, Any]]:
    return OpsRepository(db).ops_channels(park_ids)


def _notice(
    channel: dict[str, Any], *, title: str, summary: str, ref_id: int, correlation_id: str, ops_url: str
) -> AlertNotice:
    """The ops notice for ``channel``'s park (composed by functions/notify/compose.py)."""
    park = ParkRef(id=channel["park_id"], slug=channel["park_slug"], name=channel["park_name"])
    return ops_notice(
        park, title=title, summary=summary, ref_id=ref_id, correlation_id=correlation_id, ops_url=ops_url
    )


def _send(channel: dict[str, Any], notice: AlertNotice, secrets=None) -> None:
    notifier = build_notifier(
        Channel.from_row(channel),
        secrets or EnvSecrets(),
        allowed_secrets=park_secret_names(channel.get("park_settings")),
    )
    try:
        notifier.send_new(notice)
    finally:
        close_notifier(notifier)


def _public_base_url() -> str:
    """PUBLIC_BASE_URL of this process ("" when the settings cannot be read: the link is then relative)."""
    try:
        return get_settings().public_base_url
    except Exception as exc:  # noqa: BLE001 - the notice matters more than its link
        log.warning("ops notice without a console link: %s", exc)
        return ""


def notify_channel_failed(
    db, channel, error: str, fix: str, correlation_id: str, *, secrets=None, base_url: str | None = None
) -> bool:
    """Tell the ops channels of ``channel``'s park that it failed permanently (the caller makes it once per
    failing channel). True when at least one ops channel got it. Never raises. The notice links to the
    console's ops page at ``base_url`` (default: PUBLIC_BASE_URL)."""
    try:
        channels = OpsRepository(db).ops_channels([channel.park_id])
    except Exception as exc:  # noqa: BLE001
        log.warning("ops notification skipped: %s", exc)
        return False
    sent = False
    for ch in channels:
        notice = _notice(
            ch,
            title=f"TrapAlert: channel {channel.name} ({channel.kind}) is failing; alerts wait for you",
            summary=f"Alerts to channel {channel.name} are refused for good and will not be retried.\n"
            f"Error: {error}\nWhat to do: {fix}.\n"
            f"Waiting alerts: `trapalert deliveries list --channel {channel.name}`.",
            ref_id=int(channel.id),
            correlation_id=correlation_id,
            ops_url=ops_page_url(_public_base_url() if base_url is None else base_url),
        )
        try:
            _send(ch, notice, secrets)
            sent = True
            metrics.ops_notification("sent")
        except Exception as exc:  # noqa: BLE001
            metrics.ops_notification("failed")
            log.warning("ops notification on channel %s failed: %s", ch["id"], exc)
    return sent


def notify_poisoned(svc, record: dict[str, Any], *, secrets=None) -> dict[str, int]:
    """Tell the ops channels about one poison record (rate limited). Never raises."""
    out = {"sent": 0, "suppressed": 0, "failed": 0}
    try:
        repo = OpsRepository(svc.db)
        interval = getattr(svc.settings, "ops_notify_interval_s", DEFAULT_INTERVAL_S)
        channels = repo.ops_channels(parks_of_message(svc.db, record.get("body") or ""))
    except Exception as exc:  # noqa: BLE001
        log.warning("ops notification skipped: %s", exc)
        return out
    base = getattr(svc.settings, "public_base_url", "").rstrip("/")
    for ch in channels:
        try:
            previous = repo.claim(ch["id"], interval, record["queue"])
        except Exception as exc:  # noqa: BLE001
            log.warning("ops notification state of channel %s unavailable: %s", ch["id"], exc)
            out["failed"] += 1
            continue
        if previous is None:
            out["suppressed"] += 1
            metrics.ops_notification("suppressed")
            continue
        earlier = int(previous["suppressed"] or 0)
        queues = sorted(set(previous.get("suppressed_queues") or []) | {record["queue"]})
        title = f"TrapAlert: message poisoned on {record['queue']}"
        if earlier:
            title = f"TrapAlert: {earlier + 1} messages poisoned ({', '.join(queues)})"
        lines = [
            f"A message on queue {record['queue']} failed {record.get('dequeue_count') or '?'} times and "
            f"was moved to its poison queue (poison record {record.get('id')}).",
            f"Last error: {record.get('last_error') or 'unknown'}",
        ]
        if earlier:
            lines.append(
                f"{earlier} more poisoned since {previous.get('suppressed_since')} "
                f"(notifications are limited to one per {interval} s)."
            )
        lines.append(
            "Find the cause: `trapalert poison show <id>`; after fixing it: `trapalert poison replay --all`."
        )
        notice = _notice(
            ch,
            title=title,
            summary="\n".join(lines),
            ref_id=int(record.get("id") or 0),
            correlation_id=str(record.get("correlation_id") or ""),
            ops_url=ops_page_url(base),
        )
        try:
            _send(ch, notice, secrets)
            out["sent"] += 1
            metrics.ops_notification("sent")
            log.info(
                "ops notified on channel %s about poison record %s (%d earlier summarized)",
                ch["id"],
                record.get("id"),
                earlier,
            )
        except Exception as exc:  # noqa: BLE001
            out["failed"] += 1
            metrics.ops_notification("failed")
            log.warning("ops notification on channel %s failed: %s", ch["id"], exc)
            try:
                repo.unclaim(ch["id"], previous, earlier + 1, queues, f"{type(exc).__name__}: {exc}")
            except Exception as db_exc:  # noqa: BLE001
                log.warning("could not restore the ops notification state: %s", db_exc)
    return out


def flush_digest(svc, *, secrets=None) -> dict[str, int]:
    """Send the summary of suppressed notifications whose interval is over (the ops-digest timer)."""
    out = {"sent": 0, "failed": 0}
    repo = OpsRepository(svc.db)
    interval = getattr(svc.settings, "ops_notify_interval_s", DEFAULT_INTERVAL_S)
    waiting = repo.channels_with_suppressed()
    if not waiting:
        return out
    channels = {c["id"]: c for c in repo.ops_channels(None)}
    base = getattr(svc.settings, "public_base_url", "").rstrip("/")
    for channel_id in waiting:
        ch = channels.get(channel_id)
        if ch is None:
            continue
        previous = repo.claim(ch["id"], interval, None)
        if previous is None:
            continue
        n = int(previous["suppressed"])
        queues = list(previous.get("suppressed_queues") or [])
        notice = _notice(
            ch,
            title=f"TrapAlert: {n} more messages poisoned ({', '.join(queues)})",
            summary=(
                f"{n} messages were poisoned since {previous.get('suppressed_since')} on "
                f"{', '.join(queues)}. `trapalert poison list --status poisoned` shows them; "
                "after fixing the cause: `trapalert poison replay --all`."
            ),
            ref_id=0,
            correlation_id="",
            ops_url=ops_page_url(base),
        )
        try:
            _send(ch, notice, secrets)
            out["sent"] += 1
            metrics.ops_notification("sent")
        except Exception as exc:  # noqa: BLE001
            out["failed"] += 1
            metrics.ops_notification("failed")
            log.warning("ops digest on channel %s failed: %s", ch["id"], exc)
            repo.unclaim(ch["id"], previous, n, queues, f"{type(exc).__name__}: {exc}")
    return out
