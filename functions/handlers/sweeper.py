"""The sweeper timer (every minute): nothing that should move on stays put.

Each run, in this order:
1. outbox rows not sent for 30 s (a producer's flush failed: the queue was unreachable) are sent;
2. photos stored (or scored) but not decided for ``SWEEP_STALE_S``, with no message about them in flight or
   waiting for a retry, get a new process-image message (an uploaded photo: a bulk-lane message, and only
   once the bulk lane is empty, since a large upload legitimately waits there);
3. alerts that an enabled channel has not received at their current version for ``SWEEP_STALE_S``, not
   failed permanently, not being sent and not waiting for a retry, get a new send-alert message.
Only work younger than the retry horizon of its queue is swept (older work is the poison queue's, for ops).
Every re-drive goes through the outbox and is idempotent with everything else: process-image does not
score or decide twice, send-alert's claims and delivered versions make a second message a no-op. What each
run did is logged and counted (``trapalert.sweeps``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from .. import names
from ..adapters.sweeper_repo import SWEEP_SCOPE, SweeperRepository
from ..ops import metrics

log = logging.getLogger(__name__)

OUTBOX_GRACE_S = 30.0


def handle(timer, svc, now: datetime | None = None) -> dict[str, int]:
    settings = svc.settings
    run = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    done = {"outbox": 0, "images": 0, "alerts": 0}
    done["outbox"] = svc.outbox.flush(older_than_s=OUTBOX_GRACE_S)
    repo = SweeperRepository(svc.db)
    images = repo.stale_images(settings.sweep_stale_s, settings.retry_horizon_process_image_s)
    if any(i["lane"] == "bulk" for i in images) and svc.storage.queue_depth(names.BULK_IMAGE_QUEUE) > 0:
        # an upload's photos may wait behind a long backlog on the bulk lane: only once that lane has
        # drained is an undecided uploaded photo known to be lost
        images = [i for i in images if i["lane"] != "bulk"]
    alerts = repo.stale_alerts(settings.sweep_stale_s, settings.retry_horizon_send_alert_s)
    if images or alerts:
        repo.redrive(images, alerts, run)
        svc.outbox.flush(SWEEP_SCOPE)
    done["images"], done["alerts"] = len(images), len(alerts)
    for kind, n in done.items():
        metrics.swept(kind, n)
    if any(done.values()):
        log.warning(
            "sweeper re-drove %d outbox messages, %d photos, %d alerts",
            done["outbox"],
            done["images"],
            done["alerts"],
            extra={
                "swept": done,
                "image_ids": [i["id"] for i in images][:20],
                "alert_ids": [a["id"] for a in alerts][:20],
            },
        )
    return done
