"""The statuses rows and results can have, as types: each is the same list as the CHECK constraint of its
column in functions/db/migrations/ (tests/foundation/test_statuses.py compares them)."""

from __future__ import annotations

from typing import Literal

# inbound_emails.status, and what the webhook answers for one email
EmailStatus = Literal["accepted", "quarantined", "rejected", "released"]
EmailOutcome = Literal["accepted", "quarantined", "rejected", "released", "duplicate"]
# inbound_emails.mode
EmailMode = Literal["parsed", "raw", "unknown", "upload"]
# inbound_emails.authenticated_by: how the email proved authentic (DKIM/SPF aligned with From, camera token)
AuthMethod = Literal["dkim", "spf", "token"]
# inbound_emails.proofs / images.proofs: what named the camera (functions/inbound/identify.py says each)
Proof = Literal["sender", "sender_name", "token", "serial", "exif_serial", "token_name"]
# images.status: stored by process-email (or unsupported / rejected), then scored or failed by process-image
# linked: a photo given as a link, not fetched yet (process-image fetches it: functions/inbound/links.py)
ImageStatus = Literal["stored", "unsupported", "rejected", "scored", "failed", "linked"]
# an attachment as process-email judged it
AttachmentStatus = Literal["stored", "unsupported", "rejected"]
# images.taken_at_source
TakenAtSource = Literal["exif", "email_date", "received", "vendor"]
# alerts.kind (rescore: a finding about the past, `trapalert rescore --alert`, migration 0019)
AlertKind = Literal["detection", "health", "rescore"]
# channels.purpose
ChannelPurpose = Literal["alerts", "ops"]
# deliveries.status
DeliveryStatus = Literal["pending", "delivered", "failed"]
# one channel's outcome of one send-alert attempt
ChannelOutcomeKind = Literal["delivered", "skipped", "transient", "permanent"]
# poison_records.status
PoisonStatus = Literal["poisoned", "invalid", "replayed", "purged"]
# suppressions.status (functions/domain/suppression.py Status); proposed: waits for an operator
SuppressionStatus = Literal["watching", "proposed", "suppressed", "lifted", "rejected"]
# camera_health.condition / .status
HealthCondition = Literal[
    "silent",
    "low_battery",
    "temperature",
    "clock_skew",
    "someone_at_camera",
    "view_changed",
    "neighbours_silent",
]
HealthStatus = Literal["raised", "cleared"]

# feedback.verdict (rangers' feedback on an alert or one of its photos)
FeedbackVerdict = Literal["confirmed", "false_positive", "unsure"]

# audit_log.via
AuditVia = Literal["console", "cli", "api", "system"]

# batches.purpose / batches.state / batch_items.state (batch scoring and re-scoring, migration 0014)
BatchPurpose = Literal["batch", "rescore"]
BatchState = Literal["running", "done", "cancelled"]
BatchItemState = Literal["pending", "scored", "failed", "cancelled"]
