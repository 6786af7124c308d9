"""The ops sections of the park console's admin page (``/api/console/ops``, admin role; functions/console/):
server-rendered HTML, every value escaped with html.escape.

:func:`render_body` gives queues, poisoned messages (with their Replay buttons), refused deliveries, last
alerts, cameras and quarantined emails; the console wraps them in its page, and its script replays through the
console API with the admin's session and CSRF token (each replay audited). No master key is ever in a
browser: the key-protected JSON API (functions/ops/api.py) is for automation only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

from .. import names
from ..adapters.ops_repo import OpsRepository
from . import deliveries as ops_deliveries
from . import poison as ops_poison
from .status import cameras as camera_rows
from .status import queue_depths


def _e(value: Any) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, datetime):
        value = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, list | tuple):
        value = ", ".join(map(str, value))
    return escape(str(value), quote=True)


def _table(headers: list[str], rows: list[str], empty: str, table_id: str) -> str:
    if not rows:
        return f'<p class="empty" id="{table_id}-empty">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return (
        f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def render_body(svc) -> str:
    """The sections of the ops page (queues, poisoned messages, refused deliveries, alerts, cameras,
    quarantined emails) as escaped HTML: the console's admin page (functions/console/) shows them."""
    db = svc.db
    depths = queue_depths(svc.storage)
    counts = ops_poison.counts(db)
    records = ops_poison.list_records(db, limit=50)
    alerts = OpsRepository(db).recent_alerts()
    cams = camera_rows(db)
    quarantined = OpsRepository(db).recent_quarantined()
    refused = ops_deliveries.list_failures(db, limit=50)

    queue_cards = []
    for q in names.WORK_QUEUES:
        pq = names.poison_queue(q)
        ppq = names.poison_queue(pq)  # a monitor's own failures: must stay 0
        waiting = counts.get(q, {}).get("poisoned", 0)
        cls = "card bad" if waiting or depths.get(ppq) else "card"
        queue_cards.append(
            f'<div class="{cls}" data-queue="{_e(q)}"><h3>{_e(q)}</h3>'
            f"<p><b>{_e(depths.get(q))}</b> queued</p><p>{_e(depths.get(pq))} in {_e(pq)}</p>"
            f'<p class="poison-poison">{_e(depths.get(ppq))} in {_e(ppq)}</p>'
            f'<p><b class="poisoned-count">{_e(waiting)}</b> poisoned &middot; '
            f"{_e(counts.get(q, {}).get('invalid', 0))} invalid</p></div>"
        )
    for q in sorted(set(counts) - set(names.WORK_QUEUES)):
        queue_cards.append(
            f'<div class="card" data-queue="{_e(q)}"><h3>{_e(q)}</h3>'
            f'<p><b class="poisoned-count">{_e(counts[q].get("poisoned", 0))}</b> poisoned</p></div>'
        )

    poison_rows = []
    for r in records:
        button = (
            f'<button class="replay" data-id="{_e(r["id"])}">Replay</button>'
            if r["status"] in ops_poison.REPLAYABLE
            else ""
        )
        poison_rows.append(
            f'<tr id="poison-{_e(r["id"])}" data-id="{_e(r["id"])}"><td>{_e(r["id"])}</td>'
            f"<td>{_e(r['queue'])}</td>"
            f'<td class="status">{_e(r["status"])}</td><td>{_e(r["recorded_at"])}</td>'
            f'<td>{_e(r["dequeue_count"])}</td><td class="err">{_e(r["last_error"])}</td>'
            f'<td class="mono">{_e(r["correlation_id"])}</td><td>{button}</td></tr>'
        )

    alert_rows = []
    for a in alerts:
        thumb = (
            f'<img alt="photo of alert {_e(a["id"])}" width="160" data-thumb="{_e(a["best_image_id"])}">'
            if a["best_image_id"]
            else ""
        )
        deliveries = "".join(
            f'<li class="dl-{_e(d.get("status"))}">{_e(d.get("channel"))} ({_e(d.get("kind"))}): '
            f"{_e(d.get('status'))} v{_e(d.get('version'))}"
            + (f" &ndash; {_e(d.get('error'))}" if d.get("error") else "")
            + "</li>"
            for d in (a["deliveries"] or [])
        )
        alert_rows.append(
            f"<tr><td>{thumb}</td><td>{_e(a['id'])} ({_e(a['kind'])} v{_e(a['version'])})<br>"
            f"{_e(a['title'])}</td><td>{_e(a['park'])} / {_e(a['camera'])}</td><td>{_e(a['created_at'])}</td>"
            f"<td>{_e(a['categories'])} {_e(a['max_conf'])}</td>"
            f"<td><ul>{deliveries or '<li>no delivery yet</li>'}</ul></td></tr>"
        )

    cam_rows = [
        f'<tr class="{"bad" if c["health"] else ""}"><td>{_e(c["park"])}</td><td>{_e(c["name"])}</td>'
        f"<td>{_e(c['last_seen_at'])}</td><td>{_e(round(c['expected_interval_s'] / 3600, 1))} h</td>"
        f"<td>{_e(c['health']) if c['health'] else 'ok'}</td></tr>"
        for c in cams
    ]

    q_rows = [
        f"<tr><td>{_e(m['id'])}</td><td>{_e(m['received_at'])}</td><td>{_e(m['sender'])}</td>"
        f"<td>{_e(m['to_address'])}</td><td>{_e(m['subject'])}</td><td>{_e(m['reason'])}</td></tr>"
        for m in quarantined
    ]

    refused_rows = [
        f'<tr class="bad"><td>{_e(d["park"])}</td><td>{_e(d["channel"])} ({_e(d["kind"])})</td>'
        f"<td>{_e(d['alert_id'])} v{_e(d['version'])}</td><td>{_e(d['failed_at'])}</td>"
        f'<td class="err">{_e(d["error"])}</td><td class="err">{_e(d["fix"])}</td></tr>'
        for d in refused
    ]

    return f"""<h2>Queues</h2><div class="cards" id="queues">{"".join(queue_cards)}</div>
<h2>Poisoned messages</h2>
<p><button id="replay-all">Replay all poisoned</button></p>
{
        _table(
            ["id", "queue", "status", "recorded", "attempts", "last error", "correlation id", ""],
            poison_rows,
            "No poisoned messages.",
            "poison",
        )
    }
<h2>Refused for good: alerts waiting for you</h2>
{
        _table(
            ["park", "channel", "alert", "failed", "error", "what to do"],
            refused_rows,
            "No channel refused an alert.",
            "refused",
        )
    }
<h2>Last alerts</h2>
{
        _table(
            ["photo", "alert", "camera", "created", "seen", "deliveries"],
            alert_rows,
            "No alerts yet.",
            "alerts",
        )
    }
<h2>Cameras</h2>
{_table(["park", "camera", "last seen", "expected every", "health"], cam_rows, "No cameras.", "cameras")}
<h2>Quarantined emails</h2>
{
        _table(
            ["id", "received", "from", "to", "subject", "reason"],
            q_rows,
            "No quarantined emails.",
            "quarantined",
        )
    }
"""
