"""The one place where queue, container and setting names are decided.

function_app.py, the local stack, infra/ (Bicep) and the tests all read these names from here, so a
rename is one edit. Queue names follow the Azure Functions convention: each work queue Q has Q-poison.
"""

from __future__ import annotations

# Work queues (Azure Storage queues).
PROCESS_IMAGE_QUEUE = "process-image"
SEND_ALERT_QUEUE = "send-alert"
# The bulk lane (messages: functions/messages.py BulkImage): photos uploaded through the console or
# `trapalert upload` (purpose "upload": the same decision path as a live photo, alerts included), batch
# scoring and re-scoring (purposes "batch"/"rescore": scored and stored, never alerting unless `rescore
# --alert`). It never delays the live lane: its messages are scored with the header ``X-TrapAlert-Lane:
# bulk``, which the scoring service admits only into a bounded share of its queue and serves after every
# waiting live image (scoring/batching.py), and each Function instance scores at most BULK_CONCURRENCY bulk
# photos at once (functions/handlers/batch.py). Producers write BulkImage to the outbox with key
# ``bulk:<purpose>:<id>``. See docs/scoring.md, "Batch scoring and re-scoring".
BULK_IMAGE_QUEUE = "process-image-bulk"
WORK_QUEUES: tuple[str, ...] = (PROCESS_IMAGE_QUEUE, SEND_ALERT_QUEUE, BULK_IMAGE_QUEUE)

POISON_SUFFIX = "-poison"


def poison_queue(queue: str) -> str:
    """Name of the poison queue the Functions host moves failed messages of ``queue`` to."""
    return f"{queue}{POISON_SUFFIX}"


POISON_QUEUES: tuple[str, ...] = tuple(poison_queue(q) for q in WORK_QUEUES)
# Where the host moves a message its poison monitor failed on maxDequeueCount times. The monitors re-enqueue
# themselves while the database is down, so these stay empty; they are declared, watched by monitors of their
# own, counted on the ops page and alarmed on all the same, so that nothing sits in a queue no one reads.
POISON_POISON_QUEUES: tuple[str, ...] = tuple(poison_queue(q) for q in POISON_QUEUES)
ALL_QUEUES: tuple[str, ...] = WORK_QUEUES + POISON_QUEUES + POISON_POISON_QUEUES

# Blob containers.
IMAGES_CONTAINER = "images"  # original photos: <park>/<camera>/<yyyy-mm-dd>/<sha256>.<ext>
RAW_EMAILS_CONTAINER = "raw-emails"  # every inbound email as received (quarantine, replay, audit)
ANNOTATED_CONTAINER = "annotated"  # photos with boxes drawn, as sent to rangers
ALL_CONTAINERS: tuple[str, ...] = (IMAGES_CONTAINER, RAW_EMAILS_CONTAINER, ANNOTATED_CONTAINER)

# HTTP routes (served under /api/ by the Functions host).
INBOUND_ROUTE = "inbound/sendgrid"
BATCH_ROUTE = "batch"  # POST /api/batch, GET /api/batch/{id}, POST /api/batch/{id}/cancel (function key)
