"""The local Functions host: runs function_app.py the way the Azure Functions host does.

It reads the function metadata Azure indexes (``app.get_functions()``) and serves:
- HTTP triggers under /api/<route> with auth levels (function key in ``?code=`` or ``x-functions-key``;
  admin level needs the master key), built on Starlette/uvicorn;
- queue triggers polled from Storage with host.json semantics (batchSize, newBatchThreshold, polling backoff
  up to maxPollingInterval, visibilityTimeout between attempts, base64 encoding, dequeue counts, and the
  move to ``<queue>-poison`` with the original body after maxDequeueCount failed attempts);
- queue output bindings, written only when the function returns without error;
- timer triggers on their six-field NCRONTAB schedule.
Unsupported bindings stop the start with a clear error. On stop, running invocations are finished; messages
not finished stay invisible until their lease ends and then reappear: nothing is lost.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import importlib
import inspect
import logging
import os
import re
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest
from croniter import croniter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..adapters.storage import Storage
from ..settings import SettingsError
from .hostconfig import QueueSettings, load_host_json

log = logging.getLogger("trapalert.host")

SUPPORTED_TRIGGERS = {"httpTrigger", "queueTrigger", "timerTrigger"}
SUPPORTED_OUTPUTS = {"http", "queue"}
FUNCTION_KEY_SETTING = "TRAPALERT_LOCAL_FUNCTION_KEY"
MASTER_KEY_SETTING = "TRAPALERT_LOCAL_MASTER_KEY"


class HostStartupError(RuntimeError):
    """The app cannot be hosted as declared (unsupported binding, missing setting, bad host.json)."""


class OutBinding(func.Out):
    """The value a function sets on an output binding."""

    def __init__(self) -> None:
        self._value: Any = None
        self._is_set = False

    def set(self, val: Any) -> None:
        self._value = val
        self._is_set = True

    def get(self) -> Any:
        return self._value


@dataclass
class FunctionSpec:
    name: str
    trigger: dict
    outputs: list[dict]
    user_function: Any
    parameters: list[str]

    @property
    def trigger_type(self) -> str:
        return self.trigger["type"]


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def read_functions(app: func.FunctionApp) -> list[FunctionSpec]:
    """The app's functions from the metadata Azure indexes; unsupported bindings raise HostStartupError."""
    specs = []
    for function in app.get_functions():
        name = function.get_function_name()
        trigger = None
        outputs = []
        for binding in function.get_bindings():
            d = {k: _plain(v) for k, v in binding.get_dict_repr().items()}
            if isinstance(d.get("methods"), list):
                d["methods"] = [str(_plain(m)).upper() for m in d["methods"]]
            direction = str(d.get("direction")).lower()
            if d["type"].endswith("Trigger"):
                if d["type"] not in SUPPORTED_TRIGGERS:
                    raise HostStartupError(f"function {name}: trigger type {d['type']!r} is not supported "
                                           f"by the local host (supported: {sorted(SUPPORTED_TRIGGERS)})")
                trigger = d
            elif direction in ("1", "out", "bindingdirection.out"):
                if d["type"] not in SUPPORTED_OUTPUTS:
                    raise HostStartupError(f"function {name}: output binding type {d['type']!r} "
                                           f"(binding {d.get('name')!r}) is not supported by the local host")
                outputs.append(d)
            else:
                raise HostStartupError(f"function {name}: input binding type {d['type']!r} "
                                       f"(binding {d.get('name')!r}) is not supported by the local host")
        if trigger is None:
            raise HostStartupError(f"function {name} has no trigger")
        user_function = function.get_user_function()
        params = list(inspect.signature(user_function).parameters)
        bound = {trigger["name"]} | {o["name"] for o in outputs if o["name"] != "$return"}
        unknown = [p for p in params if p not in bound]
        if unknown:
            raise HostStartupError(f"function {name}: parameters {unknown} have no binding")
        specs.append(FunctionSpec(name, trigger, outputs, user_function, params))
    return specs


def load_app(script_root: Path, module: str = "function_app", attr: str = "app") -> func.FunctionApp:
    if str(script_root) not in sys.path:
        sys.path.insert(0, str(script_root))
    mod = importlib.import_module(module)
    app = getattr(mod, attr, None)
    if not isinstance(app, func.FunctionApp):
        raise HostStartupError(f"{module}.{attr} is not an azure.functions.FunctionApp")
    return app


# ---------------------------------------------------------------------------------------------- routes
_ROUTE_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\??\}")


def compile_route(route: str) -> re.Pattern:
    """An Azure route template ("ops/poison/{id:int}", "files/{*path}") as a regex."""
    pattern, pos = "", 0
    for m in _ROUTE_PARAM.finditer(route):
        pattern += re.escape(route[pos:m.start()])
        catch_all, pname, constraint = m.groups()
        if catch_all:
            pattern += f"(?P<{pname}>.*)"
        elif constraint in ("int", "long"):
            pattern += f"(?P<{pname}>-?[0-9]+)"
        else:
            pattern += f"(?P<{pname}>[^/]+)"
        pos = m.end()
    pattern += re.escape(route[pos:])
    return re.compile(f"^{pattern}/?$", re.IGNORECASE)


# ------------------------------------------------------------------------------------------- the host
@dataclass
class _InFlight:
    message_id: str
    pop_receipt: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False


class LocalHost:
    """Hosts one FunctionApp: HTTP on 127.0.0.1, queue pollers and timers in threads."""

    def __init__(self, app: func.FunctionApp, host_json: dict, *, storage: Storage | None,
                 function_key: str | None, master_key: str | None, lease_s: float = 30.0,
                 stop_grace_s: float = 30.0):
        self.functions = read_functions(app)
        self.queue_settings = QueueSettings.from_host_json(host_json)
        self.storage = storage
        self.function_key = function_key
        self.master_key = master_key
        self.lease_s = lease_s
        self.stop_grace_s = stop_grace_s
        self._stop = threading.Event()
        self._queues_ready: set[str] = set()  # queues this host has made sure exist (once each)
        self._queues_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._executors: list[ThreadPoolExecutor] = []
        self._http = [(compile_route(f.trigger.get("route") or f.name), f)
                      for f in self.functions if f.trigger_type == "httpTrigger"]
        self.started_at: float | None = None
        if any(f.trigger_type == "queueTrigger" for f in self.functions) and storage is None:
            raise HostStartupError("queue triggers need storage: AzureWebJobsStorage is not set")
        if any(f.trigger_type == "httpTrigger" and f.trigger.get("authLevel", "function") != "anonymous"
               for f in self.functions):
            if not function_key or not master_key:
                raise HostStartupError(f"HTTP functions with auth need keys: set {FUNCTION_KEY_SETTING} "
                                       f"and {MASTER_KEY_SETTING} in local.settings.json")

    # -- lifecycle ------------------------------------------------------------------------------
    def start_background(self) -> None:
        """Start queue pollers and timers (HTTP is served by the ASGI app)."""
        self.started_at = time.time()
        for spec in self.functions:
            if spec.trigger_type == "queueTrigger":
                self._ensure_queue(spec.trigger["queueName"])
                t = threading.Thread(target=self._poll_queue, args=(spec,), name=f"queue:{spec.name}",
                                     daemon=True)
            elif spec.trigger_type == "timerTrigger":
                t = threading.Thread(target=self._run_timer, args=(spec,), name=f"timer:{spec.name}",
                                     daemon=True)
            else:
                continue
            self._threads.append(t)
            t.start()
        log.info("host started", extra={"functions": [f.name for f in self.functions]})

    def stop(self) -> None:
        """Stop fetching; let running invocations finish (up to stop_grace_s); unfinished ones reappear."""
        self._stop.set()
        deadline = time.time() + self.stop_grace_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.time()))
        log.info("host stopped")

    def _ensure_queue(self, name: str) -> None:
        """Create ``name`` if missing, once per host (not a storage round trip per output or poison move)."""
        if name in self._queues_ready:
            return
        with self._queues_lock:
            if name in self._queues_ready:
                return
            try:
                self.storage.queue(name, encoded=False).create_queue()
            except ResourceExistsError:
                pass
            self._queues_ready.add(name)

    # -- invocation -----------------------------------------------------------------------------
    def _invoke(self, spec: FunctionSpec, trigger_value: Any) -> Any:
        kwargs: dict[str, Any] = {spec.trigger["name"]: trigger_value}
        outs: dict[str, OutBinding] = {}
        for o in spec.outputs:
            if o["name"] != "$return":
                outs[o["name"]] = kwargs[o["name"]] = OutBinding()
        invocation_id = str(uuid.uuid4())
        started = time.perf_counter()
        try:
            result = spec.user_function(**kwargs)
        except BaseException:
            log.warning("Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms)", spec.name, invocation_id,
                        (time.perf_counter() - started) * 1000, exc_info=True)
            raise
        # Outputs are written only after success, as the Azure host does.
        for o in spec.outputs:
            if o["type"] == "queue":
                value = result if o["name"] == "$return" else outs[o["name"]].get()
                self._write_queue_output(o["queueName"], value)
        log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms)", spec.name, invocation_id,
                 (time.perf_counter() - started) * 1000)
        return result

    def _write_queue_output(self, queue: str, value: Any) -> None:
        if value is None:
            return
        items = value if isinstance(value, list) else [value]
        self._ensure_queue(queue)
        client = self.storage.queue(queue, encoded=False)
        for item in items:
            if isinstance(item, str):
                raw = item.encode()
            elif isinstance(item, bytes):
                raw = item
            else:
                raise TypeError(f"queue output {queue}: {type(item).__name__} is not str or bytes")
            text = base64.b64encode(raw).decode() if self.queue_settings.message_encoding == "base64" \
                else raw.decode()
            client.send_message(text)

    # -- HTTP -----------------------------------------------------------------------------------
    def asgi_app(self) -> Starlette:
        async def dispatch(request: Request) -> Response:
            from starlette.concurrency import run_in_threadpool

            path = request.path_params["path"]
            match = None
            for pattern, spec in self._http:
                m = pattern.match(path)
                if m:
                    match = (spec, m.groupdict())
                    break
            if match is None:
                return Response(status_code=404)
            spec, route_params = match
            methods = spec.trigger.get("methods") or ["GET", "POST"]
            if request.method.upper() not in methods:
                return Response(status_code=405, headers={"Allow": ", ".join(methods)})
            if not self._authorized(spec, request):
                return Response(status_code=401)
            body = await request.body()
            headers = {k: v for k, v in request.headers.items()}
            params = {k: v for k, v in request.query_params.items() if k != "code"}
            req = func.HttpRequest(request.method.upper(), str(request.url), headers=headers, params=params,
                                   route_params=route_params, body=body)
            try:
                result = await run_in_threadpool(self._invoke, spec, req)
            except Exception:
                return Response(status_code=500)
            if not isinstance(result, func.HttpResponse):
                log.error("function %s returned %r instead of an HttpResponse", spec.name, type(result))
                return Response(status_code=500)
            resp_headers = dict(result.headers.items()) if result.headers else {}
            resp_headers.pop("content-length", None)
            media = result.mimetype or "text/plain"
            if result.charset and media.startswith("text/") and "charset" not in media:
                media = f"{media}; charset={result.charset}"
            return Response(content=result.get_body(), status_code=result.status_code, headers=resp_headers,
                            media_type=media)

        async def host_status(request: Request) -> Response:
            return JSONResponse({"state": "Running" if not self._stop.is_set() else "Stopping",
                                 "functions": [f.name for f in self.functions],
                                 "uptime_s": round(time.time() - (self.started_at or time.time()), 1)})

        return Starlette(routes=[
            Route("/admin/host/status", host_status, methods=["GET"]),
            Route("/api/{path:path}", dispatch,
                  methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
        ])

    def _authorized(self, spec: FunctionSpec, request: Request) -> bool:
        level = str(spec.trigger.get("authLevel", "function")).lower()
        if level == "anonymous":
            return True
        supplied = request.query_params.get("code") or request.headers.get("x-functions-key") or ""
        accepted = [self.master_key] if level == "admin" else [self.function_key, self.master_key]
        return any(key and hmac.compare_digest(supplied.encode(), key.encode()) for key in accepted)

    # -- queues ---------------------------------------------------------------------------------
    def _poll_queue(self, spec: FunctionSpec) -> None:
        qs = self.queue_settings
        queue = spec.trigger["queueName"]
        client = self.storage.queue(queue, encoded=False)
        pool = ThreadPoolExecutor(max_workers=qs.batch_size + qs.new_batch_threshold,
                                  thread_name_prefix=f"fn:{spec.name}")
        self._executors.append(pool)
        in_flight: dict[str, _InFlight] = {}
        in_flight_lock = threading.Lock()
        min_delay, delay = 0.1, 0.1
        last_renew = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - last_renew > self.lease_s / 3:
                self._renew_leases(client, in_flight, in_flight_lock)
                last_renew = time.monotonic()
            with in_flight_lock:
                running = len(in_flight)
            if running > qs.new_batch_threshold:
                self._stop.wait(0.02)
                continue
            try:
                batch = list(client.receive_messages(messages_per_page=qs.batch_size,
                                                     max_messages=qs.batch_size,
                                                     visibility_timeout=int(self.lease_s)))
            except (AzureError, OSError) as exc:
                log.warning("queue %s: receive failed (%s); backing off", queue, exc)
                batch = []
                delay = qs.max_polling_interval_s
            if not batch:
                self._stop.wait(delay)
                delay = min(delay * 2, qs.max_polling_interval_s)
                continue
            delay = min_delay
            for msg in batch:
                entry = _InFlight(msg.id, msg.pop_receipt)
                with in_flight_lock:
                    in_flight[msg.id] = entry
                pool.submit(self._process_message, spec, client, msg, entry, in_flight, in_flight_lock)
        pool.shutdown(wait=True, cancel_futures=False)

    def _renew_leases(self, client, in_flight, in_flight_lock) -> None:
        with in_flight_lock:
            entries = list(in_flight.values())
        for entry in entries:
            with entry.lock:
                if entry.done:
                    continue
                try:
                    updated = client.update_message(entry.message_id, entry.pop_receipt,
                                                    visibility_timeout=int(self.lease_s))
                    entry.pop_receipt = updated.pop_receipt
                except (AzureError, OSError) as exc:
                    log.warning("could not renew the lease of message %s: %s", entry.message_id, exc)

    def _process_message(self, spec, client, msg, entry: _InFlight, in_flight, in_flight_lock) -> None:
        queue = spec.trigger["queueName"]
        qs = self.queue_settings
        try:
            if msg.dequeue_count > qs.max_dequeue_count:
                # Seen more often than allowed (e.g. the host died while running it): straight to poison.
                self._move_to_poison(client, queue, msg, entry)
                return
            try:
                body = self._decode(msg.content)
                qmsg = QueueMessage(id=msg.id, body=body, dequeue_count=msg.dequeue_count,
                                    expiration_time=msg.expires_on, insertion_time=msg.inserted_on,
                                    time_next_visible=msg.next_visible_on, pop_receipt=entry.pop_receipt)
                self._invoke(spec, qmsg)
            except Exception as exc:
                if msg.dequeue_count >= qs.max_dequeue_count:
                    log.error("message %s on %s failed %d times: moving to %s-poison (%s)", msg.id, queue,
                              msg.dequeue_count, queue, exc)
                    self._move_to_poison(client, queue, msg, entry)
                else:
                    with entry.lock:
                        entry.done = True
                        try:
                            client.update_message(msg.id, entry.pop_receipt,
                                                  visibility_timeout=int(qs.visibility_timeout_s))
                        except (AzureError, OSError) as uexc:
                            log.warning("message %s: could not release for retry (%s); it reappears when "
                                        "its lease ends", msg.id, uexc)
                return
            with entry.lock:
                entry.done = True
                try:
                    client.delete_message(msg.id, entry.pop_receipt)
                except ResourceNotFoundError:
                    log.warning("message %s was already gone when deleting it", msg.id)
                except (AzureError, OSError) as exc:
                    log.warning("message %s: delete failed (%s); it will be delivered again", msg.id, exc)
        finally:
            with in_flight_lock:
                in_flight.pop(msg.id, None)

    def _decode(self, content: str) -> bytes:
        if self.queue_settings.message_encoding == "none":
            return content.encode()
        try:
            return base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"message is not valid base64 ({exc})") from None

    def _move_to_poison(self, client, queue: str, msg, entry: _InFlight) -> None:
        poison = f"{queue}-poison"
        self._ensure_queue(poison)
        with entry.lock:
            entry.done = True
            # The original text goes on the poison queue unchanged (still base64, as Azure does).
            self.storage.queue(poison, encoded=False).send_message(msg.content)
            try:
                client.delete_message(msg.id, entry.pop_receipt)
            except ResourceNotFoundError:
                pass

    # -- timers ---------------------------------------------------------------------------------
    def _run_timer(self, spec: FunctionSpec) -> None:
        schedule = spec.trigger["schedule"]
        if len(schedule.split()) != 6:
            log.error("timer %s: schedule %r is not a six-field NCRONTAB expression", spec.name, schedule)
            return
        if spec.trigger.get("runOnStartup"):
            self._fire_timer(spec, past_due=False)
        it = croniter(schedule, datetime.now(timezone.utc), second_at_beginning=True)
        while not self._stop.is_set():
            next_at = it.get_next(datetime)
            wait = (next_at - datetime.now(timezone.utc)).total_seconds()
            if wait > 0 and self._stop.wait(wait):
                return
            self._fire_timer(spec, past_due=wait < -1)

    def _fire_timer(self, spec: FunctionSpec, past_due: bool) -> None:
        try:
            self._invoke(spec, TimerRequest(past_due=past_due))
        except Exception:
            pass  # logged by _invoke; a failed timer run waits for its next occurrence, as in Azure


def apply_local_settings(path: Path) -> dict[str, str]:
    """Put local.settings.json Values into os.environ (real environment variables win), like `func start`."""
    import json

    if not path.is_file():
        return {}
    values = json.loads(path.read_text(encoding="utf-8")).get("Values", {}) or {}
    for key, value in values.items():
        if value not in (None, "") and key not in os.environ:
            os.environ[key] = str(value)
    return values


def build_host(script_root: Path, *, lease_s: float | None = None, host_json_path: Path | None = None) -> LocalHost:
    host_json = load_host_json(host_json_path or script_root / "host.json")
    conn = os.environ.get("AzureWebJobsStorage")
    storage = Storage(connection_string=conn) if conn else None
    # As `func start` does, the worker knows it runs in a Functions host: function_app.py then checks its
    # settings when it is loaded (functions/bootstrap.py check_settings_on_start), and a missing, malformed or
    # unresolved setting stops this start with its name instead of failing every request.
    os.environ.setdefault("FUNCTIONS_WORKER_RUNTIME", "python")
    try:
        app = load_app(script_root)
    except SettingsError as exc:
        raise HostStartupError(str(exc)) from None
    return LocalHost(app, host_json, storage=storage,
                     function_key=os.environ.get(FUNCTION_KEY_SETTING),
                     master_key=os.environ.get(MASTER_KEY_SETTING),
                     lease_s=lease_s or float(os.environ.get("TRAPALERT_LOCAL_LEASE_S", "30")))
