"""The machinery every fake service shares: a loopback HTTP server in a thread that records each request
and can be told to fail.

    with FakeEarthRanger() as er:          # any FakeServer subclass
        er.url                             # base URL to configure the client with
        er.requests                        # list[RecordedRequest], in arrival order (a copy)
        er.fail_next(2, status=500)        # the next 2 matching requests fail
        er.fail_next(1, status=429, retry_after=7)
        er.fail_until_recovered(503, path="/api/v1.0/activity/events")
        er.recover()                       # clear every failure rule
        er.delay_next(1, seconds=2.0)      # answer late (client timeouts)
        er.wait_for(3, timeout=5)          # block until 3 requests were recorded

Only the standard library is used; the server binds 127.0.0.1 on a free port unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class Headers(dict):
    """Case-insensitive header mapping (keys stored lower-case)."""

    def __init__(self, items: dict[str, str] | None = None):
        super().__init__()
        for k, v in (items or {}).items():
            self[k] = v

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass
class RecordedFile:
    field: str
    filename: str | None
    content_type: str
    data: bytes


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Headers
    body: bytes
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, RecordedFile] = field(default_factory=dict)
    status: int = 0  # the status this fake answered
    at: float = 0.0

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Rule:
    status: int
    remaining: int | None  # None: until recover()
    retry_after: float | str | None = None
    delay: float = 0.0
    body: Any = None
    path: str | None = None  # prefix of the request path (full path, base_path included)
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and (
            self.path is None or path.startswith(self.path)
        )


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, RecordedFile]]:
    """multipart/form-data -> (text fields, file parts), byte-exact."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise ValueError("multipart without boundary")
    delim = b"--" + m.group(1).encode("latin-1")
    form: dict[str, str] = {}
    files: dict[str, RecordedFile] = {}
    for chunk in body.split(delim)[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        head, _, data = chunk.partition(b"\r\n\r\n")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        msg = Message()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                msg[k.strip()] = v.strip()
        name = msg.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        filename = msg.get_filename()
        if filename is not None:
            files[name] = RecordedFile(
                name, filename, msg.get("Content-Type", "application/octet-stream"), data
            )
        else:
            form[name] = data.decode("utf-8", "replace")
    return form, files


Route = tuple[str, re.Pattern[str], Callable[..., Reply]]


class FakeServer:
    """Base of the fakes: subclasses add routes with ``self.route(method, regex, handler)``.

    A handler gets ``(request, *regex_groups)`` and returns a :class:`Reply`. Paths in routes are relative
    to ``base_path``. Unmatched requests get 404.
    """

    name = "fake"
    base_path = ""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._host = host
        self._port = port
        self._routes: list[Route] = []
        self._rules: list[_Rule] = []
        self._requests: list[RecordedRequest] = []
        self._cond = threading.Condition()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.lock = threading.RLock()  # guards the subclass's state

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _any(self) -> None:
                fake._dispatch(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self._httpd = ThreadingHTTPServer((self._host, self._port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name=f"{self.name}-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "not started"
        return self._httpd.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL to configure a client with (root + base_path)."""
        return self.root_url + self.base_path

    # ------------------------------------------------------------------ recording
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._cond:
            return list(self._requests)

    def requests_to(
        self, path_regex: str, method: str | None = None, ok_only: bool = False
    ) -> list[RecordedRequest]:
        """Recorded requests whose path (relative to base_path) matches ``path_regex`` (re.search)."""
        out = []
        for r in self.requests:
            rel = r.path[len(self.base_path) :] if r.path.startswith(self.base_path) else r.path
            if re.search(path_regex, rel) and (method is None or r.method == method.upper()):
                if not ok_only or 200 <= r.status < 300:
                    out.append(r)
        return out

    def clear(self) -> None:
        with self._cond:
            self._requests.clear()

    def wait_for(
        self, count_or_predicate: int | Callable[[list[RecordedRequest]], bool], timeout: float = 5.0
    ) -> list[RecordedRequest]:
        pred = (
            (lambda reqs: len(reqs) >= count_or_predicate)
            if isinstance(count_or_predicate, int)
            else count_or_predicate
        )
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(list(self._requests)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{self.name}: condition not met after {timeout}s ({len(self._requests)} requests)"
                    )
                self._cond.wait(left)
            return list(self._requests)

    # ------------------------------------------------------------------ fault injection
    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        retry_after: float | str | None = None,
        delay: float = 0.0,
        body: Any = None,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """The next ``n`` requests (matching ``path`` prefix / ``method`` if given) answer ``status``."""
        with self._cond:
            self._rules.append(_Rule(status, n, retry_after, delay, body, self._abs(path), method))

    def fail_until_recovered(
        self,
        status: int = 503,
        *,
        retry_after: float | str | None = None,
        delay: float = 0.0,
        body: Any = None,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        with self._cond:
            self._rules.append(_Rule(status, None, retry_after, delay, body, self._abs(path), method))

    def delay_next(self, n: int = 1, seconds: float = 1.0, *, path: str | None = None) -> None:
        """The next ``n`` requests are answered normally, but only after ``seconds``."""
        with self._cond:
            self._rules.append(_Rule(0, n, None, seconds, None, self._abs(path), None))

    def recover(self) -> None:
        with self._cond:
            self._rules.clear()

    def _abs(self, path: str | None) -> str | None:
        if path is None or path.startswith(self.base_path + "/") or not self.base_path:
            return path
        return self.base_path + path

    def _take_rule(self, method: str, path: str) -> _Rule | None:
        with self._cond:
            for rule in self._rules:
                if rule.matches(method, path):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining <= 0:
                            self._rules.remove(rule)
                    return rule
        return None

    # ------------------------------------------------------------------ routing
    def route(self, method: str, pattern: str, handler: Callable[..., Reply]) -> None:
        self._routes.append((method.upper(), re.compile(f"^{pattern}$"), handler))

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        headers = Headers({k: v for k, v in h.headers.items()})
        req = RecordedRequest(
            method=h.command,
            path=split.path,
            query=parse_qs(split.query),
            headers=headers,
            body=body,
            at=time.time(),
        )
        ctype = headers.get("content-type", "")
        try:
            if ctype.startswith("application/json") and body:
                req.json = json.loads(body)
            elif ctype.startswith("multipart/form-data"):
                req.form, req.files = parse_multipart(ctype, body)
            elif ctype.startswith("application/x-www-form-urlencoded"):
                req.form = {
                    k: v[-1] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()
                }
        except (ValueError, UnicodeDecodeError) as exc:
            reply: Reply | None = Reply(400, {"detail": f"unparseable body: {exc}"})
        else:
            reply = None

        rule = self._take_rule(req.method, req.path)
        if rule is not None and rule.delay:
            time.sleep(rule.delay)
        if reply is None and rule is not None and rule.status:
            headers_out = {}
            if rule.retry_after is not None:
                headers_out["Retry-After"] = str(rule.retry_after)
            reply = Reply(
                rule.status,
                rule.body if rule.body is not None else {"detail": "injected failure"},
                headers=headers_out,
            )
        if reply is None:
            reply = self._route(req)
        req.status = reply.status
        with self._cond:
            self._requests.append(req)
            self._cond.notify_all()
        self._write(h, reply)

    def _route(self, req: RecordedRequest) -> Reply:
        if not req.path.startswith(self.base_path):
            return Reply(404, {"detail": "Not found."})
        rel = req.path[len(self.base_path) :] or "/"
        allowed = False
        for method, pattern, handler in self._routes:
            m = pattern.match(rel)
            if m:
                if method != req.method:
                    allowed = True
                    continue
                try:
                    with self.lock:
                        return handler(req, *m.groups())
                except Exception as exc:  # a bug in the fake shows as a 500 with the reason
                    return Reply(500, {"detail": f"fake error: {type(exc).__name__}: {exc}"})
        return Reply(405 if allowed else 404, {"detail": "Method not allowed." if allowed else "Not found."})

    @staticmethod
    def _write(h: BaseHTTPRequestHandler, reply: Reply) -> None:
        body = reply.body
        headers = dict(reply.headers)
        if reply.json is not None:
            body = json.dumps(reply.json).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        try:
            h.send_response(reply.status)
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            if body and h.command != "HEAD":
                h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass


def serve_main(factory: Callable[..., FakeServer], argv: list[str] | None = None) -> None:
    """``python -m tests.fakes.<name> --port P``: run one fake in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(description=f"run the {factory.__name__} stand-in server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    fake = factory(host=args.host, port=args.port).start()
    print(f"{fake.name} listening on {fake.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
