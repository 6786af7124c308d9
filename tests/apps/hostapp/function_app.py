"""A small function app that exercises every feature of the local host (used by tests/host)."""

import json
import os
import time
from pathlib import Path

import azure.functions as func

STATE = Path(os.environ.get("HOSTAPP_STATE_DIR", "/tmp/hostapp"))
STATE.mkdir(parents=True, exist_ok=True)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _append(name: str, record: dict) -> None:
    with open(STATE / name, "a") as f:
        f.write(json.dumps(record) + "\n")


@app.function_name("echo")
@app.route(route="echo/{name}", methods=["POST"])
@app.queue_output(arg_name="out", queue_name="hostapp-out", connection="AzureWebJobsStorage")
def echo(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    name = req.route_params["name"]
    out.set(json.dumps({"name": name, "body": req.get_body().decode()}))
    if req.params.get("fail") == "1":
        raise RuntimeError("asked to fail after setting the output")
    return func.HttpResponse(json.dumps({"hello": name}), mimetype="application/json", status_code=201)


@app.function_name("ping")
@app.route(route="ping", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")


@app.function_name("admin-only")
@app.route(route="secret", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin")


@app.function_name("flaky")
@app.queue_trigger(arg_name="msg", queue_name="hostapp-flaky", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="done", queue_name="hostapp-done", connection="AzureWebJobsStorage")
def flaky(msg: func.QueueMessage, done: func.Out[str]) -> None:
    body = msg.get_body().decode()
    _append("flaky.jsonl", {"id": msg.id, "dequeue_count": msg.dequeue_count, "body": body,
                            "insertion_time": str(msg.insertion_time)})
    done.set(f"done:{body}")
    if (STATE / "fail-switch").exists() and "fail" in body:
        raise RuntimeError(f"flaky fails on {body}")


@app.function_name("slow")
@app.queue_trigger(arg_name="msg", queue_name="hostapp-slow", connection="AzureWebJobsStorage")
def slow(msg: func.QueueMessage) -> None:
    data = json.loads(msg.get_body())
    _append("slow-start.jsonl", {"key": data["key"], "dequeue_count": msg.dequeue_count})
    time.sleep(data["seconds"])
    _append("slow-done.jsonl", {"key": data["key"], "dequeue_count": msg.dequeue_count})


@app.function_name("tick")
@app.timer_trigger(schedule="* * * * * *", arg_name="timer", run_on_startup=False)
def tick(timer: func.TimerRequest) -> None:
    _append("tick.jsonl", {"at": time.time(), "past_due": timer.past_due})
