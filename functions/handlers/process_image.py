"""The process-image handler: score one stored photo and decide, like an experienced operator would, whether
it is (part of) an alert.

Steps, each safe to repeat (delivery is at least once):

1. the image row says what is left to do: ``linked`` -> fetch the photo from its link first
   (functions/inbound/links.py; a transient failure is retried, a permanent one recorded ``failed``);
   ``stored`` -> score; ``scored`` -> only the decision and the
   outbox (a redelivered message never scores twice); ``failed``/``unsupported``/``rejected`` -> nothing;
2. download the photo and call the scoring service (functions/adapters/scoring_client.py: retries within a
   bounded budget; a service that stays down raises, so the host retries the message and finally poisons
   it; an image the detector cannot read is recorded as ``failed`` and the message completes);
3. :func:`decide_photo`, one unit of work under a row lock on the camera: store the detections, load the
   camera's state, let the domain decide (functions/domain/decision.py: rules, the event (burst), static
   false positives, the alert) and save the decision, with the SendAlert of a new alert version written to
   the outbox in the same transaction (functions/adapters/alerts_repo.py);
4. after the commit, when the decision wrote a SendAlert, flush the camera's outbox scope
   (functions/adapters/outbox.py). If the enqueue fails the message fails, and its retry (which finds the
   photo decided) flushes it then;
5. the theft and tamper watch of the photo (functions/handlers/camera_health.py ``watch_photo``; decided in
   functions/domain/watch.py): someone at the camera, or a view that changed, raises a health alert now.
"""

from __future__ import annotations

import logging
from typing import Protocol

from .. import names
from ..adapters.alerts_repo import AlertsRepository, ImagesRepository, PostgresUnitOfWork, camera_scope
from ..adapters.scoring_client import ImageScore
from ..domain.decision import Decision, NewPhoto, decide, local_time_at
from ..domain.rules import effective_rules
from ..inbound.links import resolve_link_photo
from ..inbound.video import is_video
from ..messages import ProcessImage
from ..ops import metrics
from . import camera_health, process_video

log = logging.getLogger(__name__)

DONE_STATUSES = ("failed", "unsupported", "rejected")


class ImageNotFound(LookupError):
    """The message names an image that is not in the database (yet): the message retries, then poisons."""


class UnitOfWork(Protocol):
    """One transaction around one decision (PostgresUnitOfWork; tests use an in-memory one)."""

    alerts: AlertsRepository

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(self, *exc) -> bool | None: ...


def handle(msg: ProcessImage, svc, lane: str = "live") -> Decision | None:
    """One photo, live (queue process-image) or uploaded (the bulk lane, ``lane="bulk"``: functions/handlers/
    batch.py calls this for a BulkImage of purpose "upload"; only the scoring service's lane differs)."""
    images = ImagesRepository(svc.db)
    image = images.image(msg.image_id)
    if image is None:
        raise ImageNotFound(f"image {msg.image_id} is not in the database")
    if image["status"] == "linked":
        # a photo given as a link (RidgeTec): fetched and stored first; a transient failure raises (retried)
        if resolve_link_photo(svc, msg.image_id) != "stored":
            return None
        image = images.image(msg.image_id)
    if image["status"] in DONE_STATUSES:
        log.info("image %s is %s: nothing to do", msg.image_id, image["status"])
        return None
    if is_video(image["content_type"]):  # a video clip: its frames, as one burst (process_video.py)
        return process_video.handle_clip(msg, svc, image, lane=lane)
    camera_id = image["camera_id"] or msg.camera_id
    score, data = None, None
    if image["status"] == "stored":
        blob_name = image["blob_name"] or msg.blob_name
        data = svc.storage.get_blob(names.IMAGES_CONTAINER, blob_name)
        score = svc.scoring.detect(
            data,
            filename=image["filename"] or blob_name.rsplit("/", 1)[-1],
            content_type=image["content_type"] or "image/jpeg",
            lane=lane,
        )
        if score.permanent_failure:
            if images.mark_failed(msg.image_id, score):
                log.warning(
                    "image %s cannot be scored: %s",
                    msg.image_id,
                    score.failure,
                    extra={"image_id": msg.image_id},
                )
            return None
    decision = decide_photo(PostgresUnitOfWork(svc.db), msg.image_id, camera_id, score)
    if decision.notify is not None and not decision.already_decided:
        metrics.alert_raised(kind="detection", reason=decision.notify)
    if decision.notify is not None or decision.already_decided:
        # only a decision that wrote a SendAlert has one to send; a redelivered message sends what an
        # earlier attempt may have left (the sweeper sends anything else)
        svc.outbox.flush(camera_scope(camera_id))
    # 5. theft and tamper watch: someone at the camera, the view changed (raised with this photo)
    camera_health.watch_photo(svc, msg.image_id, camera_id, data)
    return decision


def decide_photo(uow: UnitOfWork, image_id: int, camera_id: int, score: ImageScore | None) -> Decision:
    """In one unit of work: lock the camera and the image, store ``score`` if the image is still 'stored',
    then decide unless it was decided already (a redelivered message changes nothing), and save."""
    with uow:
        repo = uow.alerts
        locked = repo.lock(camera_id, image_id)
        image = locked.image
        if image["status"] == "stored":
            if score is None:
                raise RuntimeError(f"image {image_id} is not scored yet")
            repo.record_score(image_id, score)
            image["night"] = bool(score.night)
        elif image["status"] != "scored":
            return Decision(image_id, reason=f"image status {image['status']}", already_decided=True)
        if image["decided_at"] is not None:
            return Decision(
                image_id, image["event_id"], image["alert_id"], reason="already decided", already_decided=True
            )
        rules = effective_rules(*repo.rule_layers(locked.camera))
        taken_at = image["taken_at"] or image["created_at"]
        found = repo.detections(image_id)
        photo = NewPhoto(
            image_id=image_id,
            taken_at=taken_at,
            night=bool(image["night"]),
            local_time=local_time_at(taken_at, locked.timezone),
            detections=tuple(d for _, d in found),
            detection_ids=tuple(i for i, _ in found),
            correlation_id=str(image["correlation_id"]) if image.get("correlation_id") else None,
        )
        state = repo.load(locked.camera, rules, taken_at)
        decision = decide(state, photo)
        repo.save(state, photo, decision)
        return decision
