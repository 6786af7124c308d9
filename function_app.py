"""TrapAlert's Azure Functions: bindings only. Each trigger goes through the one middleware chain
(functions/middleware/: metrics and timing, message parsing, correlation id, failure recording) and calls
into functions/ with what its trigger brought and the typed Services.

camera trap --email--> SendGrid Inbound Parse --POST--> process-email --queue--> process-image
    --HTTP--> scoring service; --queue--> send-alert --> EarthRanger / CMORE / email / webhook
Each work queue has a poison queue watched by a monitor; timers watch camera health and digest ops notices.
"""

from __future__ import annotations

import azure.functions as func

from functions import names
from functions.bootstrap import Services, check_settings_on_start
from functions.handlers import batch, camera_health, poison, process_email, process_image, send_alert, sweeper
from functions.messages import BulkImage, ProcessImage, SendAlert
from functions.middleware import chain
from functions.ops import api as ops_api
from functions.ops.notify import flush_digest

STORAGE = "AzureWebJobsStorage"
PROCESS_IMAGE_POISON = names.poison_queue(names.PROCESS_IMAGE_QUEUE)
SEND_ALERT_POISON = names.poison_queue(names.SEND_ALERT_QUEUE)
BULK_IMAGE_POISON = names.poison_queue(names.BULK_IMAGE_QUEUE)
PROCESS_IMAGE_POISON_POISON, SEND_ALERT_POISON_POISON, BULK_IMAGE_POISON_POISON = names.POISON_POISON_QUEUES

check_settings_on_start()  # inside a Functions host, a missing or malformed setting stops the start

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.function_name("process-email")
@app.route(route=names.INBOUND_ROUTE, methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@chain.http()
def process_email_http(req: func.HttpRequest, svc: Services) -> func.HttpResponse:
    # Enqueues process-image itself (not an output binding): see functions/handlers/process_email.py.
    return process_email.handle(req, svc)


@app.function_name("process-image")
@app.queue_trigger(arg_name="msg", queue_name=names.PROCESS_IMAGE_QUEUE, connection=STORAGE)
@chain.queue(names.PROCESS_IMAGE_QUEUE, ProcessImage)
def process_image_queue(message: ProcessImage, svc: Services) -> None:
    process_image.handle(message, svc)


# The bulk lane (uploads, batch scoring, re-scoring): never delays process-image (functions/names.py).
@app.function_name("process-image-bulk")
@app.queue_trigger(arg_name="msg", queue_name=names.BULK_IMAGE_QUEUE, connection=STORAGE)
@chain.queue(names.BULK_IMAGE_QUEUE, BulkImage)
def process_image_bulk_queue(message: BulkImage, svc: Services) -> None:
    batch.handle_bulk(message, svc)


@app.function_name("send-alert")
@app.queue_trigger(arg_name="msg", queue_name=names.SEND_ALERT_QUEUE, connection=STORAGE)
@chain.queue(names.SEND_ALERT_QUEUE, SendAlert)
def send_alert_queue(message: SendAlert, svc: Services) -> None:
    send_alert.handle(message, svc)


@app.function_name("process-image-poison")
@app.queue_trigger(arg_name="msg", queue_name=PROCESS_IMAGE_POISON, connection=STORAGE)
@chain.poison_monitor(PROCESS_IMAGE_POISON)
def process_image_poison(msg: func.QueueMessage, svc: Services) -> int | None:
    return poison.record(PROCESS_IMAGE_POISON, msg, svc)


@app.function_name("send-alert-poison")
@app.queue_trigger(arg_name="msg", queue_name=SEND_ALERT_POISON, connection=STORAGE)
@chain.poison_monitor(SEND_ALERT_POISON)
def send_alert_poison(msg: func.QueueMessage, svc: Services) -> int | None:
    return poison.record(SEND_ALERT_POISON, msg, svc)


@app.function_name("process-image-bulk-poison")
@app.queue_trigger(arg_name="msg", queue_name=BULK_IMAGE_POISON, connection=STORAGE)
@chain.poison_monitor(BULK_IMAGE_POISON)
def process_image_bulk_poison(msg: func.QueueMessage, svc: Services) -> int | None:
    return poison.record(BULK_IMAGE_POISON, msg, svc)


# What the host moves when a monitor itself failed 5 times (it re-enqueues itself while the database is
# down, so this should stay empty): recorded like any poisoned message, so nothing sits unread.
@app.function_name("process-image-poison-poison")
@app.queue_trigger(arg_name="msg", queue_name=PROCESS_IMAGE_POISON_POISON, connection=STORAGE)
@chain.poison_monitor(PROCESS_IMAGE_POISON_POISON)
def process_image_poison_poison(msg: func.QueueMessage, svc: Services) -> int | None:
    return poison.record(PROCESS_IMAGE_POISON_POISON, msg, svc)


@app.function_name("send-alert-poison-poison")
@app.queue_trigger(arg_name="msg", queue_name=SEND_ALERT_POISON_POISON, connection=STORAGE)
@chain.poison_monitor(SEND_ALERT_POISON_POISON)
def send_alert_poison_poison(msg: func.QueueMessage, svc: Services) -> int | None:
    return poison.record(SEND_ALERT_POISON_POISON, msg, svc)


@app.function_name("process-image-bulk-poison-poison")
@app.queue_trigger(arg_name="msg", queue_name=BULK_IMAGE_POISON_POISON, connection=STORAGE)
@chain.poison_monitor(BULK_IMAGE_POISON_POISON)
def process_image_bulk_poison_poison(msg: func.QueueMessage, svc: Services) -> int | None:
    return poison.record(BULK_IMAGE_POISON_POISON, msg, svc)


# Batch scoring (function key): POST /api/batch, GET /api/batch/{id}, POST /api/batch/{id}/cancel.
@app.function_name("batch-api")
@app.route(route=names.BATCH_ROUTE + "/{*path}", methods=["GET", "POST"], auth_level=func.AuthLevel.FUNCTION)
@chain.http()
def batch_api(req: func.HttpRequest, svc: Services) -> func.HttpResponse:
    return batch.http(req, svc)


@app.function_name("batch-submit")
@app.route(route=names.BATCH_ROUTE, methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@chain.http()
def batch_submit(req: func.HttpRequest, svc: Services) -> func.HttpResponse:
    return batch.http(req, svc)


@app.function_name("sweeper")
@app.timer_trigger(schedule="15 * * * * *", arg_name="timer", run_on_startup=False)
@chain.timer()
def sweeper_timer(timer: func.TimerRequest, svc: Services) -> None:
    sweeper.handle(timer, svc)


@app.function_name("camera-health")
@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False)
@chain.timer()
def camera_health_timer(timer: func.TimerRequest, svc: Services) -> None:
    camera_health.handle(timer, svc)


@app.function_name("ops-digest")
@app.timer_trigger(schedule="30 */5 * * * *", arg_name="timer", run_on_startup=False)
@chain.timer()
def ops_digest_timer(timer: func.TimerRequest, svc: Services) -> None:
    flush_digest(svc)


# Admin JSON API (master key, for automation only; people use the console's ops page under the admin role):
# GET /api/ops/status, /api/ops/poison[/{id}], POST /api/ops/poison/{id}/replay, /api/ops/poison/replay-all,
# /api/ops/poison/purge?older_than=30d, GET /api/ops/images/{id}/thumbnail, /api/ops/deliveries[/redeliver].
@app.function_name("ops-api")
@app.route(route="ops/{*path}", methods=["GET", "POST"], auth_level=func.AuthLevel.ADMIN)
@chain.http()
def ops_admin_api(req: func.HttpRequest, svc: Services) -> func.HttpResponse:
    return ops_api.handle(req, svc)


# The park console (functions/console/, docs/console.md): pages under /api/console/<page>, its JSON API under
# /api/console/data/...; anonymous at the host because the console signs people in itself (Easy Auth
# principal or a one-time link session) and checks the role on every request.
@app.function_name("console")
@app.route(route="console/{*path}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@chain.http()
def console(req: func.HttpRequest, svc: Services) -> func.HttpResponse:
    from functions.console.app import handle

    return handle(req, svc)
