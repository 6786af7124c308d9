"""A minimal local SMTP sink (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), recording each message.

    with FakeSmtp() as smtp:
        smtp.host, smtp.port
        smtp.messages       # [SmtpMessage(mail_from, rcpt_to, data: bytes, message: EmailMessage)]
        smtp.fail_next(n, code=451)   # the next n DATA commands answer ``code``

Source: RFC 5321 (the commands and reply codes above, a 4xx reply to DATA is a transient failure), as the
standard library's ``smtplib.SMTP`` client (used by the email channel's ``smtp`` mode) speaks it.

Run alone: ``python -m tests.fakes.smtp --port 2525`` (a local mail sink for the demo).
"""

from __future__ import annotations

import argparse
import socketserver
import threading
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser


@dataclass
class SmtpMessage:
    mail_from: str
    rcpt_to: list[str]
    data: bytes
    message: EmailMessage


class FakeSmtp:
    name = "fake-smtp"

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self._port = port
        self.messages: list[SmtpMessage] = []
        self._fail: list[int] = []
        self._lock = threading.Lock()
        self._server: socketserver.ThreadingTCPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def fail_next(self, n: int = 1, code: int = 451) -> None:
        with self._lock:
            self._fail.extend([code] * n)

    def start(self) -> FakeSmtp:
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode("ascii") + b"\r\n")

            def handle(self) -> None:
                self.reply("220 fake-smtp ready")
                mail_from, rcpts = "", []
                while True:
                    raw = self.rfile.readline(65536)
                    if not raw:
                        return
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    cmd = line[:4].upper()
                    if cmd == "EHLO":
                        self.reply("250-fake-smtp")
                        self.reply("250 8BITMIME")
                    elif cmd == "HELO" or cmd == "NOOP":
                        self.reply("250 ok")
                    elif cmd == "MAIL":
                        mail_from, rcpts = line.split(":", 1)[1].strip().split(" ")[0].strip("<>"), []
                        self.reply("250 ok")
                    elif cmd == "RCPT":
                        rcpts.append(line.split(":", 1)[1].strip().strip("<>"))
                        self.reply("250 ok")
                    elif cmd == "RSET":
                        mail_from, rcpts = "", []
                        self.reply("250 ok")
                    elif cmd == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        chunks = []
                        while True:
                            chunk = self.rfile.readline(1 << 20)
                            if not chunk or chunk in (b".\r\n", b".\n"):
                                break
                            chunks.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                        data = b"".join(chunks)
                        with fake._lock:
                            code = fake._fail.pop(0) if fake._fail else 0
                        if code:
                            self.reply(f"{code} injected failure")
                            continue
                        msg = BytesParser(policy=policy.default).parsebytes(data)
                        with fake._lock:
                            fake.messages.append(SmtpMessage(mail_from, list(rcpts), data, msg))  # type: ignore[arg-type]
                        self.reply("250 queued")
                    elif cmd == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        self._server = socketserver.ThreadingTCPServer((self.host, self._port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name=self.name, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSmtp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="run a local SMTP sink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    args = parser.parse_args()
    sink = FakeSmtp(args.host, args.port).start()
    print(f"fake-smtp listening on {args.host}:{sink.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sink.stop()
