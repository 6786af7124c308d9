"""The bulk lane and batch scoring: ``process-image-bulk`` messages (BulkImage) and the batch API.

**The bulk lane never delays a live photo.** Three things keep it so:

1. the scoring service serves bulk requests (header ``X-TrapAlert-Lane: bulk``) only after every waiting live
   image and admits at most SCORING_BULK_QUEUE_LIMIT of them (scoring/batching.py);
2. each Function instance scores at most BULK_CONCURRENCY bulk photos at once (a process-wide semaphore
   here: the queue extension's ``batchSize`` in host.json applies to every queue function of the app alike,
   and the Python programming model has no per-function setting for it). On Flex Consumption each queue
   function scales on instances of its own (per-function scaling), so bulk work never shares a worker with
   process-image there; locally, the project's host gives each function its own worker pool;
3. a batch keeps at most ``batch_repo.WINDOW`` messages on the queue (each finished item queues the next).

**Purposes** (functions/messages.py ``BulkImage``): ``upload`` runs the live decision path
(functions/handlers/process_image.py ``handle``, alerts included) with the bulk lane's scoring; ``batch`` and
``rescore`` score a batch item and store its detections with the model version, never alerting. A re-scoring
run submitted with ``alert`` (``trapalert rescore --alert``), once done, opens one alert of kind ``rescore``
per event that would have fired and did not (:func:`open_past_alerts`, once per run).

**A batch item ends exactly once** (functions/adapters/batch_repo.py ``finish``), with ``failure`` strings:
``missing_blob: <name>``, ``not_an_image: ...``, ``duplicate: same photo as <file>``, the detector's own
(``unreadable_image: ...``, ``empty_image``, ``too_many_pixels``, ``too_large: ...``), ``cancelled``.
**Video clips** (by their bytes, functions/inbound/video.py) are scored by ``/v1/detect-video`` on the bulk
lane and written as MegaDetector's process_video writes a video (``frame_rate``, ``frames_processed``,
``frame_number`` on each detection); they end with the reasons the email path records
(``video_too_large: ...``, ``unsupported_video: ...`` for a file named like a clip that is none, the
service's ``unreadable_video: ...``, ``video_too_long: ...``). Re-scoring skips clips (their frames are
photos of their own). A transient failure (database, storage, detector unavailable) raises, and the retry
middleware tries again.

**The API** (function key): ``POST /api/batch`` (JSON ``{"park", "camera"?, "blobs": [...]}`` or
``{"park", "prefix"}``) answers 202 with the request id; ``GET /api/batch/{id}`` gives state, progress, the
first failures and, once finished, ``results_url``: a link valid RESULTS_LINK_HOURS to the results in the
MegaDetector batch output format (format_version 1.4), which Timelapse opens; ``POST /api/batch/{id}/cancel``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .. import names
from ..adapters.batch_repo import (
    RESULTS_PREFIX,
    UPLOAD_PREFIX,
    BatchRepository,
    BlobMissing,
    NewItem,
    batch_scope,
    list_blob_names,
    put_results,
    read_blob,
)
from ..domain.rescore import RescoredPhoto, compare, dets_from_json, past_alerts
from ..domain.rules import effective_rules
from ..exports.md_json import detector_info, md_document
from ..inbound.video import VIDEO_FORMATS, inspect_video, looks_like_video, sniff_video
from ..messages import BulkImage, ProcessImage
from ..ops import metrics
from . import process_image

log = logging.getLogger(__name__)

RESULTS_LINK_HOURS = 24
MAX_ITEMS = 100_000  # photos in one batch request

_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()


def bulk_slot(svc) -> threading.BoundedSemaphore:
    """The process-wide semaphore of the bulk lane (BULK_CONCURRENCY photos at once)."""
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(svc.settings.bulk_concurrency)
        return _slots


# -- the queue function ----------------------------------------------------------------------------------
def handle_bulk(msg: BulkImage, svc) -> Any:
    if msg.purpose == "upload":
        live = ProcessImage(
            correlation_id=msg.correlation_id,
            image_id=msg.image_id,
            blob_name=msg.blob_name,
            park_id=msg.park_id,
            camera_id=msg.camera_id or 0,
        )
        with bulk_slot(svc):
            return process_image.handle(live, svc, lane="bulk")
    return score_item(msg, svc)


def score_item(msg: BulkImage, svc) -> str:
    """Score one batch item (purpose batch/rescore); return what became of it."""
    repo = BatchRepository(svc.db)
    item = repo.item(msg.item_id) if msg.item_id is not None else None
    if item is None:
        log.warning("batch item %s is gone (batch deleted?): nothing to do", msg.item_id)
        return "gone"
    outcome = "done already"
    if item["state"] == "pending":
        outcome = _score_pending(svc, repo, item)
    if item["purpose"] == "rescore":  # the run's last item (or a redelivery of it) opens its alerts
        open_past_alerts(svc, repo.get(item["batch_id"]) or {})
    # every delivery flushes the batch's scope: what an earlier attempt queued but did not send goes now
    svc.outbox.flush(batch_scope(item["batch_id"]))
    return outcome


def _score_pending(svc, repo: BatchRepository, item: dict[str, Any]) -> str:
    if item["batch_state"] != "running":
        return _finish(svc, repo, item, state="cancelled", failure="cancelled")
    try:
        data = read_blob(svc.storage, item["blob_name"])
    except BlobMissing:
        return _finish(svc, repo, item, failure=f"missing_blob: {item['blob_name']}")
    kind = image_kind(data)
    clip = sniff_video(data) if kind is None else None
    if kind is None and (clip is not None or looks_like_video(None, item["file"])):
        # a clip (by its bytes), or a file named like one: checked as the email path checks an attachment
        check = inspect_video(
            data,
            fmt=clip,
            declared_type=None,  # a batch names its files, it declares no types
            max_bytes=svc.settings.video_max_bytes,
            email_date=None,
            received_at=datetime.now(UTC),
        )
        if check.status != "stored":
            return _finish(svc, repo, item, failure=check.reason)
    elif kind is None:
        failure = f"not_an_image: {len(data)} bytes, not JPEG/PNG/GIF/BMP/TIFF/WebP"
        return _finish(svc, repo, item, failure=failure)
    if item["purpose"] == "batch":
        first = repo.claim_hash(item["id"], hashlib.sha256(data).hexdigest())
        if first is not None:
            return _finish(svc, repo, item, failure=f"duplicate: same photo as {first}")
    if clip is not None:
        return _score_clip(svc, repo, item, data, clip)
    with bulk_slot(svc):
        score = svc.scoring.detect(
            data, filename=item["file"].rsplit("/", 1)[-1], content_type=f"image/{kind}", lane="bulk"
        )
    if score.permanent_failure:
        return _finish(svc, repo, item, failure=score.failure, model=score)
    detections = [d.model_dump(mode="json") for d in score.detections]
    return _finish(svc, repo, item, detections=detections, night=score.night, model=score)


def _score_clip(svc, repo: BatchRepository, item: dict[str, Any], data: bytes, fmt: str) -> str:
    """A clip of a batch: its sampled frames scored by ``/v1/detect-video`` on the bulk lane (sampling as for
    camera clips: VIDEO_EVERY_S, VIDEO_MAX_FRAMES), kept as MegaDetector's process_video writes a video:
    detections each with ``frame_number`` (and our ``frame_time_s``), the clip's ``frame_rate`` and
    ``frames_processed``. A clip the service cannot use ends with its reason (``unreadable_video: ...``,
    ``video_too_long: ...``, ``too_many_pixels``, ``too_large: ...``)."""
    with bulk_slot(svc):
        score = svc.scoring.detect_video(
            data,
            filename=item["file"].rsplit("/", 1)[-1],
            content_type=VIDEO_FORMATS[fmt][0],
            every_s=svc.settings.video_every_s,
            max_frames=svc.settings.video_max_frames,
            lane="bulk",
        )
    if score.permanent_failure:
        return _finish(svc, repo, item, failure=score.failure, model=score)
    detections = [
        d.model_dump(mode="json") | {"frame_number": f.frame_number, "frame_time_s": f.time_s}
        for f in score.frames
        for d in f.detections
    ]
    video = {
        **score.video,
        "frame_rate": score.frame_rate,
        "frames_processed": [f.frame_number for f in score.frames],
    }
    return _finish(svc, repo, item, detections=detections, night=score.night, model=score, video=video)


def _finish(
    svc,
    repo: BatchRepository,
    item: dict[str, Any],
    *,
    state: str | None = None,
    failure=None,
    detections=None,
    night=None,
    model=None,
    video=None,
) -> str:
    written, finished = repo.finish(
        item["id"],
        state=state,
        failure=failure,
        detections=detections,
        night=night,
        model_name=model.detector if model else None,
        model_version=model.detector_version if model else None,
        video=video,
    )
    if finished is not None:
        write_results(svc, finished)
        log.info("batch %s done (%s photos)", finished["request_id"], finished["total"])
    if not written:
        return "done already"
    return state or ("failed" if failure else "scored")


_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


def image_kind(data: bytes) -> str | None:
    """The image type the bytes start with (the detector decides whether it can read them)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((kind for magic, kind in _MAGIC if data.startswith(magic)), None)


# -- results ---------------------------------------------------------------------------------------------
def results_document(repo: BatchRepository, batch: dict[str, Any]) -> dict[str, Any]:
    """The batch's results in the MegaDetector batch output format (one entry per photo), written by the
    same writer as `trapalert export md-json` (functions/exports/md_json.py)."""
    model = repo.model_of(batch["id"]) or {}
    images = []
    for item in repo.items(batch["id"]):
        if item["state"] == "scored":
            entry = {"file": item["file"], "detections": item["detections"] or [], "failure": None}
            video = item.get("video") or {}
            if video.get("frame_rate"):  # a clip: MegaDetector's video fields
                entry["frame_rate"] = video["frame_rate"]
                entry["frames_processed"] = video.get("frames_processed") or []
            images.append(entry)
        else:
            failure = item["failure"] or ("cancelled" if item["state"] == "cancelled" else "not_scored")
            images.append({"file": item["file"], "detections": None, "failure": failure})
    info = detector_info(
        model.get("model_name"),
        model.get("model_version"),
        batch.get("finished_at") or datetime.now(UTC),
    )
    info["trapalert"] = {
        "request_id": str(batch["request_id"]),
        "state": batch["state"],
        "purpose": batch["purpose"],
    }
    return md_document(images, info)


def write_results(svc, batch: dict[str, Any]) -> str:
    repo = BatchRepository(svc.db)
    body = json.dumps(results_document(repo, batch), separators=(",", ":")).encode()
    blob = put_results(svc.storage, str(batch["request_id"]), body)
    repo.set_results_blob(batch["id"], blob)
    return blob


# -- submitting, status, cancel (API and CLI) ------------------------------------------------------------
class BatchRequestError(ValueError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    park: str = Field(min_length=1, max_length=200)
    camera: str | None = Field(None, max_length=200)
    blobs: list[str] | None = Field(None, max_length=MAX_ITEMS)
    files: list[str] | None = Field(None, max_length=MAX_ITEMS)  # the names in the results, beside blobs
    prefix: str | None = Field(None, min_length=1, max_length=1024)
    created_by: str | None = Field(None, max_length=200)

    @field_validator("blobs")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if not name or len(name) > 1024 or ".." in name.split("/") or name.startswith("/"):
                raise ValueError(f"not a blob name: {name[:100]!r}")
        return value


def _allowed(park: dict[str, Any], name: str) -> bool:
    """A batch reads only its park's photos: ``<slug>/...`` (stored) or ``batch/<slug>/...`` (uploaded)."""
    slug = park["slug"]
    return name.startswith((f"{slug}/", f"{UPLOAD_PREFIX}{slug}/")) and not name.startswith(RESULTS_PREFIX)


def submit(svc, body: SubmitBody) -> dict[str, Any]:
    repo = BatchRepository(svc.db)
    park = repo.park(body.park)
    if park is None:
        raise BatchRequestError(404, f"unknown park {body.park!r}")
    camera_id = None
    if body.camera:
        camera = repo.camera(park["id"], body.camera)
        if camera is None:
            raise BatchRequestError(404, f"unknown camera {body.camera!r} in park {park['slug']}")
        camera_id = camera["id"]
    if (body.blobs is None) == (body.prefix is None):
        raise BatchRequestError(400, "give either blobs (a list of blob names) or prefix")
    if body.prefix is not None:
        if not _allowed(park, body.prefix):
            slug = park["slug"]
            raise BatchRequestError(403, f"prefix must start with {slug}/ or {UPLOAD_PREFIX}{slug}/")
        blobs = list_blob_names(svc.storage, body.prefix, MAX_ITEMS + 1)
        if len(blobs) > MAX_ITEMS:
            raise BatchRequestError(413, f"more than {MAX_ITEMS} blobs under {body.prefix}")
        files = [b.removeprefix(body.prefix).lstrip("/") or b for b in blobs]
        source = {"prefix": body.prefix}
    else:
        blobs = list(body.blobs or [])
        outside = [b for b in blobs if not _allowed(park, b)]
        if outside:
            raise BatchRequestError(
                403, f"{len(outside)} blob(s) outside park {park['slug']}, e.g. {outside[0]!r}"
            )
        if body.files is not None and len(body.files) != len(blobs):
            raise BatchRequestError(400, "files must name each of blobs, in the same order")
        files = list(body.files) if body.files is not None else blobs
        source = {"blobs": len(blobs)}
    items = [NewItem(file=f, blob_name=b) for f, b in zip(files, blobs, strict=True)]
    batch = repo.create(
        park_id=park["id"],
        camera_id=camera_id,
        purpose="batch",
        items=items,
        source=source,
        created_by=body.created_by,
    )
    _flush(svc, batch)
    return status(svc, batch)


def submit_rescore(
    svc,
    park: dict[str, Any],
    since: datetime,
    until: datetime | None,
    camera_id: int | None,
    created_by: str | None = None,
    alert: bool = False,
) -> dict[str, Any]:
    repo = BatchRepository(svc.db)
    photos = repo.stored_photos(park["id"], since, until, camera_id)
    items = [NewItem(file=p["blob_name"], blob_name=p["blob_name"], image_id=p["id"]) for p in photos]
    source = {"since": since.isoformat(), "until": until.isoformat() if until else None}
    batch = repo.create(
        park_id=park["id"],
        camera_id=camera_id,
        purpose="rescore",
        items=items,
        source=source,
        alert=alert,
        created_by=created_by,
    )
    _flush(svc, batch)
    return batch


def _flush(svc, batch: dict[str, Any]) -> None:
    try:
        svc.outbox.flush(batch_scope(batch["id"]))
    except Exception as exc:  # noqa: BLE001 - committed: the sweeper sends what this flush could not
        log.warning("batch %s: first flush failed (the sweeper sends it): %s", batch["request_id"], exc)


def status(
    svc, batch: dict[str, Any], *, top_up: bool = True, stale_s: float | None = None
) -> dict[str, Any]:
    """State, progress, the first failures and, once finished, the results link. A read of a running batch
    also keeps it moving (``BatchRepository.top_up``: lost or poisoned messages are queued again)."""
    repo = BatchRepository(svc.db)
    if top_up and batch["state"] == "running":
        kwargs = {} if stale_s is None else {"stale_s": stale_s}
        queued, finished = repo.top_up(batch["id"], **kwargs)
        if queued:
            _flush(svc, batch)
        if finished is not None:
            write_results(svc, finished)
        batch = repo.get(batch["id"]) or batch
    open_past_alerts(svc, batch)  # a run whose alerts were not opened yet (its last message failed)
    progress = repo.progress(batch["id"])
    out: dict[str, Any] = {
        "request_id": str(batch["request_id"]),
        "purpose": batch["purpose"],
        "state": batch["state"],
        "total": batch["total"],
        "progress": progress,
        "done": progress["scored"] + progress["failed"] + progress["cancelled"],
        "errors": repo.failures(batch["id"]),
        "created_at": batch["created_at"].isoformat(),
        "finished_at": batch["finished_at"].isoformat() if batch.get("finished_at") else None,
    }
    if batch["state"] != "running":
        blob = batch.get("results_blob") or write_results(svc, batch)
        out["results_blob"] = blob
        out["results_url"] = svc.storage.blob_url(names.IMAGES_CONTAINER, blob, hours=RESULTS_LINK_HOURS)
        out["results_expire_in_hours"] = RESULTS_LINK_HOURS
    return out


def cancel(svc, batch: dict[str, Any]) -> dict[str, Any]:
    repo = BatchRepository(svc.db)
    after = repo.cancel(batch["id"])
    if after is not None and after["state"] == "cancelled" and batch["state"] == "running":
        write_results(svc, after)
    return status(svc, repo.get(batch["id"]) or batch, top_up=False)


def _rescore_changes(svc, batch: dict[str, Any]):
    """(rows, changes by camera id) of a re-scoring run (functions/domain/rescore.py ``compare``)."""
    repo = BatchRepository(svc.db)
    rows = repo.rescore_rows(batch["id"])
    photos = [
        RescoredPhoto(
            image_id=r["image_id"],
            camera_id=r["camera_id"],
            camera=r["camera"],
            taken_at=r["taken_at"],
            timezone=r["timezone"],
            night=bool(r["new_night"] if r["new_night"] is not None else r["night"]),
            event_id=r["event_id"],
            alert_id=r["alert_id"],
            old=dets_from_json(r["old_detections"]),
            new=dets_from_json(r["new_detections"]),
        )
        for r in rows
    ]
    cameras = {p.camera_id for p in photos}
    rules_of = {cam: effective_rules(*repo.rule_layers(batch["park_id"], cam)) for cam in cameras}
    return rows, compare(photos, rules_of)


def _models(rows: list[dict[str, Any]], which: str) -> list[str]:
    return sorted({f"{r[f'{which}_model']} {r[f'{which}_version']}" for r in rows})


def open_past_alerts(svc, batch: dict[str, Any]) -> list[dict[str, Any]] | None:
    """``trapalert rescore --alert``: once the run is done, one alert (kind ``rescore``) per event that would
    have fired and did not, delivered to the park's channels like any alert (its SendAlert through the
    outbox, flushed here with the run's scope). Once per run: None when there is nothing to do (not such a
    run, not done, or its alerts were opened already); a run cancelled opens none."""
    if (
        batch.get("purpose") != "rescore"
        or not batch.get("alert")
        or batch.get("state") != "done"
        or batch.get("alerted_at") is not None
    ):
        return None
    rows, changes = _rescore_changes(svc, batch)
    found = past_alerts(
        changes,
        run=str(batch["request_id"]),
        old_models=_models(rows, "old"),
        new_models=_models(rows, "new"),
    )
    opened = BatchRepository(svc.db).open_past_alerts(batch["id"], found)
    if opened is None:
        return None
    for a in opened:
        metrics.alert_raised(kind="rescore", reason="rescore")
        log.info("re-scoring run %s: alert %s for %s", batch["request_id"], a["alert_id"], a["event"])
    _flush(svc, batch)
    return opened


def rescore_report(svc, batch: dict[str, Any]) -> dict[str, Any]:
    """What the re-scoring run changed, by camera (functions/domain/rescore.py decides)."""
    rows, changes = _rescore_changes(svc, batch)
    return {
        "request_id": str(batch["request_id"]),
        "state": batch["state"],
        "photos": len(rows),
        "old_models": _models(rows, "old"),
        "new_models": _models(rows, "new"),
        "would_have_fired": sum(len(c.new_alerts) for c in changes.values()),
        "would_not_have_fired": sum(len(c.lost_alerts) for c in changes.values()),
        "cameras": [c.to_json() for _, c in sorted(changes.items(), key=lambda kv: kv[1].camera)],
        "alert": bool(batch.get("alert")),
        "alerts_opened": BatchRepository(svc.db).past_alerts_of(batch["id"]),
    }


# -- HTTP ------------------------------------------------------------------------------------------------
def _json(data: Any, status_code: int = 200) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(data, default=str),
        status_code=status_code,
        mimetype="application/json",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


def http(req: func.HttpRequest, svc) -> func.HttpResponse:
    path = (req.route_params.get("path") or "").strip("/")
    try:
        if not path:
            if req.method != "POST":
                return _json({"error": "POST a batch to /api/batch"}, 405)
            try:
                body = SubmitBody.model_validate_json(req.get_body() or b"{}")
            except ValidationError as exc:
                first = exc.errors()[0]
                return _json({"error": f"{first.get('loc')}: {first.get('msg')}"}, 400)
            return _json(submit(svc, body), 202)
        parts = path.split("/")
        batch = BatchRepository(svc.db).get(parts[0])
        if batch is None or batch["purpose"] != "batch":
            return _json({"error": f"no batch {parts[0]}"}, 404)
        if len(parts) == 1 and req.method == "GET":
            return _json(status(svc, batch))
        if parts[1:] == ["cancel"] and req.method == "POST":
            return _json(cancel(svc, batch))
        return _json({"error": "not found"}, 404)
    except BatchRequestError as exc:
        return _json({"error": str(exc)}, exc.status)
