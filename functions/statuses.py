"""The statuses rows and results can have, as types: each is the same list as the CHECK constraint of its
column in functions/db/migrations/ (tests/foundation/test_statuses.py compares them)."""

from __future__ import annotations

from typing import Literal

# inbound_emails.status, and what the webhook answers for one email
EmailStatus = Literal["accepted", "quarantined", "rejected", "released"]
EmailOutcome = Literal["accepted", "quarantined", "rejected", "released", "duplicate"]
# inbound_emails.mode
EmailMode = Literal["parsed", "raw", "unknown"]
# images.status: stored by process-email (or unsupported / rejected), then scored or failed by process-image
ImageStatus = Literal["stored", "unsupported", "rejected", "scored", "failed"]
# an attachment as process-email judged it
AttachmentStatus = Literal["stored", "unsupported", "rejected"]
# images.taken_at_source
TakenAtSource = Literal["exif", "email_date", "received"]
# alerts.kind
AlertKind = Literal["detection", "health"]
# channels.purpose
ChannelPurpose = Literal["alerts", "ops"]
# deliveries.status
DeliveryStatus = Literal["pending", "delivered", "failed"]
# one channel's outcome of one send-alert attempt
ChannelOutcomeKind = Literal["delivered", "skipped", "transient", "permanent"]
# poison_records.status
PoisonStatus = Literal["poisoned", "invalid", "replayed", "purged"]
# suppressions.status (functions/domain/suppression.py Status)
SuppressionStatus = Literal["watching", "suppressed", "lifted"]
# camera_health.condition / .status
HealthCondition = Literal["silent", "low_battery", "temperature", "clock_skew"]
HealthStatus = Literal["raised", "cleared"]
