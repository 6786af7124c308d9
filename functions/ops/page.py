"""The ops page: one server-rendered HTML page (every value escaped with html.escape) with a little JavaScript
for the Replay buttons and the thumbnails. Works on a phone (viewport meta, tables scroll sideways).

The admin key: open ``/api/ops?code=<master key>``. The page's script reads ``code`` from its own URL and
sends it as the ``x-functions-key`` header on API calls (and as ``?code=`` on thumbnail URLs, which an <img>
cannot send as a header). The page sends ``Referrer-Policy: no-referrer`` so the key never leaks to another
site; in production put Entra ID authentication (Easy Auth) in front and keep the key out of URLs.
"""

from __future__ import annotations

import secrets
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


def render_page(svc) -> tuple[str, str]:
    """The page's HTML and the CSP nonce of its inline script and style."""
    db = svc.db
    nonce = secrets.token_urlsafe(16)
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
            f'<td>{_e(r["queue"])}</td>'
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
        f'<td>{_e(d["alert_id"])} v{_e(d["version"])}</td><td>{_e(d["failed_at"])}</td>'
        f'<td class="err">{_e(d["error"])}</td><td class="err">{_e(d["fix"])}</td></tr>'
        for d in refused
    ]

    now = datetime.now(UTC)
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>TrapAlert ops</title>
<style nonce="{nonce}">
body {{ font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; padding: 0.75rem; max-width: 1200px;
        color: #222; }}
h1 {{ font-size: 1.3rem; }} h2 {{ font-size: 1.1rem; margin-top: 1.5rem; }}
h3 {{ margin: 0 0 .3rem; font-size: 1rem; }}
.cards {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: .5rem; }}
.card {{ border: 1px solid #ccc; border-radius: 6px; padding: .5rem .75rem; }} .card p {{ margin: .2rem 0; }}
.bad {{ border-color: #c00; background: #fff3f3; }}
.scroll {{ overflow-x: auto; }} table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .3rem .4rem; text-align: left; vertical-align: top; }}
td.err {{ max-width: 28rem; overflow-wrap: anywhere; }} .mono {{ font-family: monospace; font-size: .8rem; }}
ul {{ margin: 0; padding-left: 1rem; }} .dl-failed {{ color: #c00; }} .dl-delivered {{ color: #070; }}
button {{ font-size: 1rem; padding: .35rem .8rem; }} #message {{ min-height: 1.2rem; font-weight: bold; }}
img {{ max-width: 40vw; height: auto; }}
</style></head>
<body>
<h1>TrapAlert ops</h1>
<p>Generated {_e(now)} &middot; <a id="refresh" href="#">refresh</a></p>
<p id="message" role="status"></p>
<h2>Queues</h2><div class="cards" id="queues">{"".join(queue_cards)}</div>
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
<script nonce="{nonce}">
(function () {{
  "use strict";
  var key = new URLSearchParams(location.search).get("code") || "";
  var base = location.pathname.replace(/\\/ops\\/?$/, "");
  var message = document.getElementById("message");
  function say(text) {{ message.textContent = text; }}
  function call(method, path) {{
    return fetch(base + "/ops/" + path, {{ method: method, headers: {{ "x-functions-key": key }},
                                           credentials: "omit", cache: "no-store" }})
      .then(function (r) {{
        return r.json().catch(function () {{ return {{}}; }}).then(function (body) {{
          if (!r.ok) {{ throw new Error(body.error || ("HTTP " + r.status)); }}
          return body;
        }});
      }});
  }}
  function markReplayed(item) {{
    var row = document.getElementById("poison-" + item.id);
    if (!row) {{ return; }}
    row.querySelector(".status").textContent = "replayed";
    var b = row.querySelector("button.replay");
    if (b) {{ b.remove(); }}
  }}
  document.querySelectorAll("button.replay").forEach(function (button) {{
    button.addEventListener("click", function () {{
      var id = button.getAttribute("data-id");
      button.disabled = true;
      say("Replaying " + id + "...");
      call("POST", "poison/" + encodeURIComponent(id) + "/replay").then(function (res) {{
        (res.replayed || []).forEach(markReplayed);
        (res.skipped || []).forEach(function (s) {{
          var row = document.getElementById("poison-" + s.id);
          if (row) {{ row.querySelector(".status").textContent = s.status; }}
        }});
        say(res.replayed && res.replayed.length ? "Replayed " + id + " onto " + res.replayed[0].queue +
            " as message " + res.replayed[0].replay_message_id : "Not replayed: " +
            ((res.skipped && res.skipped[0] && res.skipped[0].reason) || "nothing to do"));
      }}).catch(function (err) {{ button.disabled = false; say("Replay failed: " + err.message); }});
    }});
  }});
  document.getElementById("replay-all").addEventListener("click", function () {{
    if (!window.confirm("Replay every poisoned message?")) {{ return; }}
    call("POST", "poison/replay-all").then(function (res) {{
      (res.replayed || []).forEach(markReplayed);
      say("Replayed " + (res.replayed || []).length + ", failed " + (res.failed || []).length);
    }}).catch(function (err) {{ say("Replay failed: " + err.message); }});
  }});
  document.querySelectorAll("img[data-thumb]").forEach(function (img) {{
    img.src = base + "/ops/images/" + encodeURIComponent(img.getAttribute("data-thumb")) +
              "/thumbnail?code=" + encodeURIComponent(key);
  }});
  document.getElementById("refresh").addEventListener("click", function (ev) {{
    ev.preventDefault(); location.reload();
  }});
}})();
</script>
</body></html>
"""
    return html, nonce
