"""The send-alert handler: fan one alert out to every channel of the camera's park (and zone).

Where things are decided:

* **Which channels**: enabled channels of the park with purpose ``alerts`` whose zone is unset or equals
  the camera's zone (ops notices go through functions/ops/notify.py).
* **Once per channel and version**: a channel whose ``deliveries.delivered_version`` is already >= the
  message's version is skipped (a redelivered message sends nothing twice). Otherwise the channel gets
  ``send_new`` (never delivered: resuming a stored partial if an earlier attempt left one) or
  ``send_update(previous)``. The alert is read fresh, so a channel is brought to the alert's *current*
  version (a late version-1 message after version 2 was committed sends version 2, and the version-2
  message then finds nothing to do).
* **Concurrency**: each (alert, channel) delivery is claimed (a lease in the deliveries row) while it is
  sent; a second message of the same alert waits for the claim, then re-reads what was delivered. The
  lease is short (CLAIM_LEASE_S) and renewed while the adapter works, so a claim left by a worker that
  died, or that could not record its result (the database restarting), holds the channel back for at
  most CLAIM_LEASE_S, not for the worst-case adapter time.
* **Channels are independent**: they are sent in parallel (a slow or dead EarthRanger does not delay the
  email), each result recorded on its own.
* **Errors**: a transient failure (timeout, 5xx, 429, network) is recorded on the channel and, after all
  channels ran, raised as :class:`ChannelsFailed` naming the failing channel(s): the host retries the
  message (delivered channels are skipped next time) and after maxDequeueCount moves it to
  ``send-alert-poison``, with the error naming the channel in ``message_failures``/``poison_records``.
  A *permanent* failure (ChannelConfigError: bad config, missing secret setting; PermanentDeliveryError:
  the remote refused for good) is recorded ``failed`` with its reason and logged at ERROR, and does not
  raise on its own: retrying cannot help until an operator fixes the channel, and the other channels must
  not be retried or delayed because of it. Ops see it in ``trapalert channels list`` (last delivery status
  and error per channel) and in the deliveries table; a message that does raise (some transient failure)
  names the permanent failures too.
* **The photo**: the best image annotated (boxes, labels) once and cached in the ``annotated`` container
  as ``<original's name without extension>-v<ANNOTATION_VERSION>.jpg`` (an image's detections never
  change; the version changes when the drawing does). A photo that cannot be read or drawn never blocks
  the alert: the notice goes out without it. The original photo is linked with a read-only SAS that
  expires after PHOTO_LINK_HOURS.
* **Metrics** (functions/ops/metrics.py): ``trapalert.deliveries`` and ``trapalert.delivery.duration`` per
  channel where its delivery is done (status delivered | failed (permanent) | transient | skipped);
  ``trapalert.alert.latency`` once per alert, when the ``new`` message delivers its last channel: from the
  receipt of the email of the alert's first photo to that moment.
* **Secrets**: channel configs name app settings; values are read from the environment when the adapter
  is built, never stored or logged, and scrubbed from recorded errors.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError

from .. import names
from ..adapters.deliveries import Claim, DeliveryBusy, DeliveryRepository
from ..db import DatabaseUnavailable
from ..domain.delivery import fix_for
from ..messages import SendAlert
from ..notify import (
    AlertNotice,
    Channel,
    ChannelConfigError,
    DeliveryError,
    DeliveryResult,
    DetectionRef,
    EnvSecrets,
    PermanentDeliveryError,
    build_notifier,
    close_notifier,
    park_secret_names,
)
from ..notify.annotate import AnnotateError, annotate
from ..notify.compose import AlertView, alert_notice, detection_refs, with_photo
from ..ops import metrics
from ..statuses import ChannelOutcomeKind

log = logging.getLogger(__name__)

ANNOTATION_VERSION = 1
CLAIM_LEASE_S = 30.0  # a claim's lease; renewed every CLAIM_RENEW_S while its adapter works
CLAIM_RENEW_S = 10.0
CLAIM_WAIT_S = 40.0  # wait for a claim held by another worker (or a dead one, until its lease ends)
MAX_PARALLEL_CHANNELS = 8


class AlertNotFound(RuntimeError):
    """The alert of the message does not exist (not committed yet, or deleted): retried, then poisoned."""


class AlertNotReady(RuntimeError):
    """The alert row is older than the message's version (its update is not visible yet): retried."""


class ChannelsFailed(RuntimeError):
    """Some channel failed transiently: the message must be retried. The message names each channel."""

    def __init__(self, alert_id: int, version: int, failures: list[ChannelOutcome]):
        self.failures = failures
        # the longest wait a throttled channel asked for: the retry is not sooner (middleware/retry.py)
        self.retry_after = max((f.retry_after for f in failures if f.retry_after), default=None)
        parts = [f"channel {f.channel_name!r} ({f.kind}, id {f.channel_id}): {f.error}" for f in failures]
        super().__init__(f"alert {alert_id} v{version} not delivered to " + "; ".join(parts))


@dataclass(frozen=True)
class ChannelOutcome:
    channel_id: int
    channel_name: str
    kind: str
    outcome: ChannelOutcomeKind
    error: str | None = None
    external_id: str | None = None
    retry_after: float | None = None


# ------------------------------------------------------------------------------------------ the handler
def handle(msg: SendAlert, svc) -> list[ChannelOutcome]:
    repo = DeliveryRepository(svc.db)
    alert = repo.alert_context(msg.alert_id)
    if alert is None:
        raise AlertNotFound(f"alert {msg.alert_id} does not exist")
    if alert["version"] < msg.version:
        raise AlertNotReady(
            f"alert {msg.alert_id} is at version {alert['version']}, the message asks for {msg.version}"
        )
    purpose = "alerts"
    channels = repo.channels_for(alert["park_id"], alert["camera_zone"], purpose)
    if not channels:
        log.warning(
            "alert %s: park %s has no enabled %s channel for zone %r",
            msg.alert_id,
            alert["park_slug"],
            purpose,
            alert["camera_zone"],
        )
        return []

    pending_cache: list = []
    notice = build_notice(alert, repo, svc, msg, defer=pending_cache.append)
    secrets = svc.secrets if hasattr(svc, "secrets") else EnvSecrets()
    allowed = park_secret_names(alert.get("park_settings"))  # besides CHANNEL_SECRET_* (notify/safety.py)
    with ThreadPoolExecutor(
        max_workers=min(MAX_PARALLEL_CHANNELS, len(channels)) + len(pending_cache),
        thread_name_prefix="send-alert",
    ) as pool:
        # the annotated photo is cached while the channels are sent (off the critical path)
        for task in pending_cache:
            pool.submit(task)
        futures = [
            pool.submit(
                contextvars.copy_context().run,
                deliver_to_channel,
                repo,
                ch,
                notice,
                alert["version"],
                msg,
                secrets,
                allowed,
            )
            for ch in channels
        ]  # keeps the correlation id
        outcomes = [f.result() for f in futures]

    transient = [o for o in outcomes if o.outcome == "transient"]
    permanent = [o for o in outcomes if o.outcome == "permanent"]
    log.info(
        "alert %s v%s: %s",
        msg.alert_id,
        alert["version"],
        ", ".join(f"{o.channel_name}={o.outcome}" for o in outcomes),
    )
    if transient:
        raise ChannelsFailed(msg.alert_id, alert["version"], transient + permanent)
    if msg.reason == "new" and any(o.outcome == "delivered" for o in outcomes):
        _alert_latency(repo, msg.alert_id)
    return outcomes


def _alert_latency(repo: DeliveryRepository, alert_id: int) -> None:
    """trapalert.alert.latency: the email of the alert's first photo received -> last channel delivered."""
    try:
        received = repo.first_received_at(alert_id)
    except Exception as exc:  # noqa: BLE001 - a metric never fails a delivered alert
        log.warning("alert %s: latency not measured: %s", alert_id, exc)
        return
    if received is not None:
        metrics.end_to_end_latency((datetime.now(UTC) - _utc(received)).total_seconds())


def deliver_to_channel(
    repo: DeliveryRepository,
    row: dict[str, Any],
    notice: AlertNotice,
    version: int,
    msg: SendAlert,
    secrets,
    allowed_secrets: tuple[str, ...] = (),
) -> ChannelOutcome:
    """Bring one channel to ``version`` of the alert; record the outcome; never raises a delivery error."""
    channel = Channel.from_row(row)

    def outcome(
        kind: ChannelOutcomeKind,
        error: str | None = None,
        external_id: str | None = None,
        retry_after: float | None = None,
    ) -> ChannelOutcome:
        return ChannelOutcome(channel.id, channel.name, channel.kind, kind, error, external_id, retry_after)

    try:
        claim = repo.claim(msg.alert_id, channel.id, lease_s=CLAIM_LEASE_S, wait_s=CLAIM_WAIT_S)
    except DeliveryBusy as exc:
        metrics.delivery(channel.kind, "transient")
        return outcome("transient", str(exc))
    if claim.delivered_version >= msg.version:
        repo.release(claim)
        metrics.delivery(channel.kind, "skipped")
        return outcome("skipped", external_id=claim.external_id)
    started = time.perf_counter()
    with _renewed(repo, claim) as lost:
        if lost.is_set():
            return outcome("transient", "the claim was lost before sending")
        done = _deliver_claimed(
            repo, claim, channel, notice, version, msg, secrets, outcome, lost, allowed_secrets
        )
    metrics.delivery(channel.kind, _METRIC_STATUS[done.outcome], time.perf_counter() - started)
    return done


_METRIC_STATUS: dict[ChannelOutcomeKind, str] = {
    "delivered": "delivered",
    "permanent": "failed",
    "transient": "transient",
    "skipped": "skipped",
}


@contextmanager
def _renewed(repo: DeliveryRepository, claim: Claim):
    """Keep ``claim`` held (renewing its lease every CLAIM_RENEW_S) for the duration of the block."""
    done, lost = threading.Event(), threading.Event()

    def renew() -> None:
        while not done.wait(CLAIM_RENEW_S):
            try:
                if not repo.renew(claim, CLAIM_LEASE_S):
                    # another worker holds it now: send nothing more; what was sent is still recorded
                    log.error("delivery %s: the claim was lost while sending", claim.delivery_id)
                    lost.set()
                    return
            except Exception as exc:  # noqa: BLE001 - the database may be restarting; try at the next tick
                log.warning("could not renew the claim of delivery %s: %s", claim.delivery_id, exc)

    threading.Thread(target=renew, name=f"claim-{claim.delivery_id}", daemon=True).start()
    try:
        yield lost
    finally:
        done.set()


def _deliver_claimed(
    repo, claim: Claim, channel: Channel, notice, version: int, msg, secrets, outcome, lost=None, allowed=()
):
    recording = _RecordingSecrets(secrets)
    notifier = None
    try:
        notifier = build_notifier(channel, recording, allowed_secrets=allowed)
        previous, resume = _stored_results(claim)
        channel_notice = notice.model_copy(update={"kind": _notice_kind(notice, previous)})
        if previous is None:
            result = (
                notifier.send_new(channel_notice, resume=resume)
                if resume
                else notifier.send_new(channel_notice)
            )
        else:
            result = notifier.send_update(channel_notice, previous)
    except DeliveryError as exc:
        error = recording.scrub(f"{type(exc).__name__}: {exc}")
        partial = exc.partial
        keep = {
            "external_id": partial.external_id if partial else None,
            "state": _jsonable(partial.state) if partial else None,
        }
        if isinstance(exc, ChannelConfigError | PermanentDeliveryError):
            fix = fix_for(
                channel.name,
                channel.kind,
                channel.config,
                status=exc.status,
                config_error=isinstance(exc, ChannelConfigError),
            )
            repo.record_failed(claim, error, fix=fix, **keep)
            log.error(
                "alert %s: channel %s (%s) failed permanently: %s; %s",
                msg.alert_id,
                channel.name,
                channel.kind,
                error,
                fix,
            )
            _raise_channel_failure(repo, channel, msg, error, fix)
            return outcome("permanent", error)
        repo.record_failed(claim, error, **keep)
        log.warning(
            "alert %s: channel %s (%s) failed, will retry: %s",
            msg.alert_id,
            channel.name,
            channel.kind,
            error,
        )
        return outcome("transient", error, retry_after=getattr(exc, "retry_after", None))
    except Exception as exc:  # noqa: BLE001 - an adapter bug: retry (bounded by the queue), then poison
        error = recording.scrub(f"{type(exc).__name__}: {exc}")
        log.exception(
            "alert %s: channel %s (%s) raised unexpectedly", msg.alert_id, channel.name, channel.kind
        )
        repo.record_failed(claim, error)
        return outcome("transient", error)
    finally:
        close_notifier(notifier)
    _record_delivered(repo, claim, version, result, msg, channel, lost)
    return outcome("delivered", external_id=result.external_id)


RECORD_RETRY_S = (0.5, 1, 2, 4, 8, 15, 30, 30, 30)  # about 2 minutes: a PostgreSQL failover


def _record_delivered(repo, claim: Claim, version: int, result, msg, channel: Channel, lost) -> None:
    """Record what the remote now has. The remote id must not be lost (a later attempt would create a
    second remote event): a database that is down is waited for (a failover), and a claim lost meanwhile
    still gets the remote id written."""
    state = _jsonable(result.state)
    for pause in (*RECORD_RETRY_S, None):
        try:
            recorded = repo.record_delivered(claim, version, result.external_id, state)
            if not recorded:
                log.error(
                    "alert %s: channel %s delivered but its claim was lost (%s): recording it anyway",
                    msg.alert_id,
                    channel.name,
                    "renewal failed"
                    if lost is not None and lost.is_set()
                    else f"delivery took longer than {CLAIM_LEASE_S} s",
                )
                repo.record_delivered(claim, version, result.external_id, state, force=True)
            return
        except DatabaseUnavailable as exc:
            if pause is None:
                raise
            log.warning(
                "alert %s: channel %s delivered, recording it failed (%s): retrying in %s s",
                msg.alert_id,
                channel.name,
                exc,
                pause,
            )
            time.sleep(pause)


def _raise_channel_failure(repo, channel: Channel, msg, error: str, fix: str) -> None:
    """The first permanent failure of a channel tells the park's ops channels, once (until redelivered or
    the channel delivers again)."""
    try:
        if repo.raise_channel_failure(channel.id, error, fix):
            from ..ops.notify import notify_channel_failed

            if notify_channel_failed(repo.db, channel, error, fix, str(msg.correlation_id)):
                repo.mark_notified(channel.id)
    except Exception as exc:  # noqa: BLE001 - the failure is recorded; the notice is best effort
        log.warning("channel %s: ops not told of its permanent failure: %s", channel.name, exc)


def _stored_results(claim: Claim) -> tuple[DeliveryResult | None, DeliveryResult | None]:
    """(previous, resume): the last successful result, or the partial of a failed first delivery."""
    stored = DeliveryResult(external_id=claim.external_id, state=dict(claim.state or {}))
    if claim.delivered_version > 0:
        return stored, None
    if claim.external_id or claim.state:
        return None, stored
    return None, None


def _notice_kind(notice: AlertNotice, previous: DeliveryResult | None) -> str:
    if notice.kind in ("health", "ops"):
        return notice.kind
    return "new" if previous is None else "update"


def _jsonable(state: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(state, default=str))


class _RecordingSecrets:
    """Wraps the secret resolver to remember the values handed out, so errors can be scrubbed of them."""

    def __init__(self, inner):
        self._inner = inner
        self._values: list[str] = []

    def __call__(self, name: str) -> str:
        value = self._inner(name)
        self._values.append(value)
        return value

    def scrub(self, text: str) -> str:
        for v in self._values:
            if v and len(v) >= 4:
                text = text.replace(v, "***")
        return text


# ------------------------------------------------------------------------------------------ the notice
def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def build_notice(
    alert: dict[str, Any], repo: DeliveryRepository, svc, msg: SendAlert, defer=None
) -> AlertNotice:
    """The notice of ``alert`` (composed by functions/notify/compose.py); ``defer(task)`` receives work
    that may run after (caching the photo)."""
    view = AlertView.from_row(alert)
    found = repo.detections(view.best_image_id, alert) if view.best_image_id is not None else []
    detections = detection_refs(found)
    notice = alert_notice(view, detections, correlation_id=str(msg.correlation_id))
    if view.best_image_id is None or not alert["image_blob"]:
        return notice
    photo, url = _photo(svc, alert, detections, defer or (lambda task: task()))
    return with_photo(notice, view, photo, url)


def _photo(
    svc, alert: dict[str, Any], detections: list[DetectionRef], defer
) -> tuple[bytes | None, str | None]:
    """(annotated JPEG or None, time-limited link to the original or None: the clip itself when the best
    image is a frame of a video clip). Never raises."""
    storage = svc.storage
    url = None
    try:
        url = storage.blob_url(
            names.IMAGES_CONTAINER,
            alert.get("clip_blob") or alert["image_blob"],
            hours=svc.settings.photo_link_hours,
        )
    except Exception as exc:  # noqa: BLE001 - a link is a nicety; the alert goes out without it
        log.warning("alert %s: no photo link (%s)", alert["id"], exc)
    # Named after the original (<park>/<camera>/<date>/<sha256>), so the park's photo retention rule covers
    # it and a recreated database (ids start again) never picks up another photo's drawing.
    # A re-scoring alert draws the new model's boxes: a drawing of its own.
    rescore = f"-rescore{alert['id']}" if alert.get("kind") == "rescore" else ""
    cache_name = f"{alert['image_blob'].rsplit('.', 1)[0]}-v{ANNOTATION_VERSION}{rescore}.jpg"
    try:
        return storage.get_blob(names.ANNOTATED_CONTAINER, cache_name), url
    except Exception:  # noqa: BLE001 - not cached yet (or storage trouble: try the original below)
        pass
    try:
        original = storage.get_blob(names.IMAGES_CONTAINER, alert["image_blob"])
        jpeg = annotate(original, detections)
    except (AnnotateError, AzureError, OSError, RuntimeError) as exc:
        log.warning("alert %s: sending without photo: %s", alert["id"], exc)
        return None, url

    def cache() -> None:
        try:
            storage.put_blob(
                names.ANNOTATED_CONTAINER,
                cache_name,
                jpeg,
                content_type="image/jpeg",
                metadata={"alert_id": str(alert["id"]), "image_id": str(alert["best_image_id"])},
            )
        except Exception as exc:  # noqa: BLE001 - the cache is optional
            log.warning("alert %s: annotated photo not cached: %s", alert["id"], exc)

    defer(cache)
    return jpeg, url
