"""The process-image handler: score one stored photo and decide, like an experienced operator would, whether
it is (part of) an alert.

Steps, each safe to repeat (delivery is at least once):

1. the image row says what is left to do: ``stored`` -> score; ``scored`` -> only the decision and the
   outbox (a redelivered message never scores twice); ``failed``/``unsupported``/``rejected`` -> nothing;
2. download the photo and call the scoring service (functions/adapters/scoring_client.py: retries within a
   bounded budget; a service that stays down raises, so the host retries the message and finally poisons
   it; an image the detector cannot read is recorded as ``failed`` and the message completes);
3. one transaction, under a row lock on the camera: store the detections, apply the rules, the event
   (burst), static false positives and the alert decision (functions/domain/,
   functions/adapters/alerts_repo.py);
4. after the commit, the outbox: one SendAlert per alert version not yet enqueued (reason ``new`` for the
   first, ``update`` after). If the enqueue fails the message fails and its retry enqueues it.
"""

from __future__ import annotations

import logging

from .. import names
from ..adapters.alerts_repo import AlertsRepository, Decision
from ..messages import ProcessImage, SendAlert

log = logging.getLogger(__name__)

DONE_STATUSES = ("failed", "unsupported", "rejected")


class ImageNotFound(LookupError):
    """The message names an image that is not in the database (yet): the message retries, then poisons."""


def handle(msg: ProcessImage, svc) -> Decision | None:
    repo = AlertsRepository(svc.db)
    image = repo.image(msg.image_id)
    if image is None:
        raise ImageNotFound(f"image {msg.image_id} is not in the database")
    if image["status"] in DONE_STATUSES:
        log.info("image %s is %s: nothing to do", msg.image_id, image["status"])
        return None
    camera_id = image["camera_id"] or msg.camera_id
    score = None
    if image["status"] == "stored":
        blob_name = image["blob_name"] or msg.blob_name
        data = svc.storage.get_blob(names.IMAGES_CONTAINER, blob_name)
        score = svc.scoring.detect(
            data,
            filename=image["filename"] or blob_name.rsplit("/", 1)[-1],
            content_type=image["content_type"] or "image/jpeg",
        )
        if score.permanent_failure:
            if repo.mark_failed(msg.image_id, score):
                log.warning(
                    "image %s cannot be scored: %s",
                    msg.image_id,
                    score.failure,
                    extra={"image_id": msg.image_id},
                )
            return None
    decision = repo.record_and_decide(msg.image_id, camera_id, score)
    flush_outbox(repo, svc, camera_id, str(msg.correlation_id))
    return decision


def flush_outbox(repo: AlertsRepository, svc, camera_id: int, correlation_id: str) -> int:
    """Enqueue a SendAlert for every alert of the camera whose current version is not enqueued yet."""
    sent = 0

    def send(alert_id: int, version: int, reason: str) -> str:
        message = SendAlert(alert_id=alert_id, version=version, reason=reason, correlation_id=correlation_id)
        return svc.storage.enqueue(names.SEND_ALERT_QUEUE, message)

    for alert_id in repo.pending_alerts(camera_id):
        done = repo.enqueue_pending(alert_id, send, correlation_id)
        if done is not None:
            sent += 1
            log.info(
                "alert %s version %s enqueued on %s (%s)",
                alert_id,
                done[0],
                names.SEND_ALERT_QUEUE,
                done[1],
                extra={"alert_id": alert_id},
            )
    return sent
