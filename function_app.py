"""TrapAlert's Azure Functions: bindings only. Each trigger parses its input and calls into functions/.

camera trap --email--> SendGrid Inbound Parse --POST--> process-email --queue--> process-image
    --HTTP--> scoring service; --queue--> send-alert --> EarthRanger / CMORE / email / webhook
Each work queue has a poison queue watched by a monitor; a timer watches camera health.
"""

from __future__ import annotations

import azure.functions as func

from functions import names
from functions.bootstrap import check_settings_on_start, services
from functions.handlers import camera_health, poison, process_email, process_image, send_alert
from functions.messages import ProcessImage, SendAlert
from functions.middleware import run_queue_handler
from functions.ops import api as ops_api
from functions.ops.notify import flush_digest

STORAGE = "AzureWebJobsStorage"

check_settings_on_start()  # inside a Functions host, a missing or malformed setting stops the start

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.function_name("process-email")
@app.route(route=names.INBOUND_ROUTE, methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def process_email_http(req: func.HttpRequest) -> func.HttpResponse:
    # Enqueues process-image itself (not an output binding): see functions/handlers/process_email.py.
    return process_email.handle(req, services())


@app.function_name("process-image")
@app.queue_trigger(arg_name="msg", queue_name=names.PROCESS_IMAGE_QUEUE, connection=STORAGE)
def process_image_queue(msg: func.QueueMessage) -> None:
    run_queue_handler(names.PROCESS_IMAGE_QUEUE, msg, ProcessImage, process_image.handle)


@app.function_name("send-alert")
@app.queue_trigger(arg_name="msg", queue_name=names.SEND_ALERT_QUEUE, connection=STORAGE)
def send_alert_queue(msg: func.QueueMessage) -> None:
    run_queue_handler(names.SEND_ALERT_QUEUE, msg, SendAlert, send_alert.handle)


@app.function_name("process-image-poison")
@app.queue_trigger(arg_name="msg", queue_name=names.poison_queue(names.PROCESS_IMAGE_QUEUE), connection=STORAGE)
def process_image_poison(msg: func.QueueMessage) -> None:
    poison.record(names.poison_queue(names.PROCESS_IMAGE_QUEUE), msg, services())


@app.function_name("send-alert-poison")
@app.queue_trigger(arg_name="msg", queue_name=names.poison_queue(names.SEND_ALERT_QUEUE), connection=STORAGE)
def send_alert_poison(msg: func.QueueMessage) -> None:
    poison.record(names.poison_queue(names.SEND_ALERT_QUEUE), msg, services())


@app.function_name("camera-health")
@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False)
def camera_health_timer(timer: func.TimerRequest) -> None:
    camera_health.handle(timer, services())


@app.function_name("ops-digest")
@app.timer_trigger(schedule="30 */5 * * * *", arg_name="timer", run_on_startup=False)
def ops_digest_timer(timer: func.TimerRequest) -> None:
    flush_digest(services())


# Ops page and admin API (master key): GET /api/ops, /api/ops/status, /api/ops/poison[/{id}],
# POST /api/ops/poison/{id}/replay, /api/ops/poison/replay-all, /api/ops/poison/purge?older_than=30d,
# GET /api/ops/images/{id}/thumbnail.
@app.function_name("ops-page")
@app.route(route="ops", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def ops_page(req: func.HttpRequest) -> func.HttpResponse:
    return ops_api.page(req, services())


@app.function_name("ops-api")
@app.route(route="ops/{*path}", methods=["GET", "POST"], auth_level=func.AuthLevel.ADMIN)
def ops_admin_api(req: func.HttpRequest) -> func.HttpResponse:
    return ops_api.handle(req, services())
