"""Webhook answer time on the parsing-bound inputs of the corpus (tests/corpus/cases.py, category "bounds").

Each case is POSTed over HTTP to the real process-email function (the local Functions host serving the
webhook-only app of tests/inbound, with Azurite and embedded PostgreSQL 16), ``--repeat`` times with the
tables emptied in between (so that every POST is processed, not answered as a duplicate). Printed per case:
the POST size, the answer time (median and max, ms, client side: upload of the body included), the
handler's time called in this process (median; no HTTP, no host), the parse time alone (parse_request),
and the outcome (status and reason code). The goal is an
answer under 1 s for any input up to 30 MB; the figures go to docs/inbound.md ("Bounds"), never into
assertions.

The host runs with INBOUND_CAMERA_PATTERNS set to the corpus's catastrophic pattern for every case (it
times out only on the subject built for it; on the others it fails fast).

    .venv/bin/python bench/inbound_bounds.py [--repeat 3] [--case ID ...]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
os.environ["TRAPALERT_LOCAL_SETTINGS"] = "/nonexistent/local.settings.json"

from functions import names  # noqa: E402
from functions.adapters.parks import CameraIn, ParkIn, ParkRepository  # noqa: E402
from functions.adapters.storage import Storage  # noqa: E402
from functions.db import Database  # noqa: E402
from functions.db.migrate import migrate  # noqa: E402
from functions.inbound.parse_sendgrid import parse_request  # noqa: E402
from functions.inbound.reasons import Rejected  # noqa: E402
from functions.localhost.services import Azurite, EmbeddedPostgres, free_port  # noqa: E402
from tests.corpus.cases import CATASTROPHIC_PATTERN, bounds  # noqa: E402
from tests.inbound.conftest import CAM01_SENDER, PARK_X  # noqa: E402
from tests.support.host import FUNCTION_KEY, HostProcess, host_env, write_host_json  # noqa: E402

WEBHOOK_APP = ROOT / "tests" / "inbound" / "webhook_app"


def parse_ms(body: bytes, content_type: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    try:
        email = parse_request(body, content_type, max_parts=140)
        what = f"parsed, {len(email.defects)} defects"
    except Rejected as exc:
        what = f"refused: {exc.code}"
    return (time.perf_counter() - t0) * 1000, what


def in_process_ms(request, db) -> float:
    """The handler called in this process (no HTTP, no host): parse, store the raw POST, record."""
    import azure.functions as func

    from functions.bootstrap import services
    from functions.handlers.process_email import handle

    db.execute("TRUNCATE inbound_emails, images, outbox RESTART IDENTITY CASCADE")
    req = func.HttpRequest(
        "POST", "http://127.0.0.1/api/inbound/sendgrid", headers=request.headers, body=request.body
    )
    t0 = time.perf_counter()
    handle(req, services())
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--case", nargs="*", help="case ids (default: all of the bounds category)")
    args = ap.parse_args()
    cases = [c for c in bounds() if not args.case or c.id in args.case]
    print(f"{len(cases)} cases x {args.repeat}; {os.cpu_count()} CPUs; Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="bench-bounds-") as tmp:
        tmp_path = Path(tmp)
        os.chmod(tmp_path, 0o755)  # the embedded PostgreSQL runs as its own user
        pg = EmbeddedPostgres(tmp_path / "pg", free_port()).start()
        az = Azurite(tmp_path / "az", free_port(), free_port(), free_port()).start()
        host = None
        try:
            db = Database(pg.url)
            migrate(db)
            storage = Storage(connection_string=az.connection_string)
            storage.ensure_resources()
            parks = ParkRepository(db)
            parks.add_park(ParkIn(slug="park-x", name="Park X", inbound_address=PARK_X))
            parks.add_camera("park-x", CameraIn(name="CAM01", sender_addresses=[CAM01_SENDER]))
            env = host_env(az.connection_string, pg.url)
            env["INBOUND_CAMERA_PATTERNS"] = CATASTROPHIC_PATTERN
            for k in ("AzureWebJobsStorage", "DATABASE_URL", "SCORING_URL", "INBOUND_CAMERA_PATTERNS"):
                os.environ[k] = env[k]  # the in-process column: the same settings as the host
            host = HostProcess(
                script_root=WEBHOOK_APP,
                env=env,
                port=free_port(),
                log_path=tmp_path / "host.log",
                host_json=write_host_json(tmp_path / "host.json"),
            ).start()
            target = urlsplit(host.api(names.INBOUND_ROUTE))
            print(
                f"{'case':42} {'MB':>6} {'answer p50 ms':>13} {'max ms':>7} {'in-process':>10} "
                f"{'parse ms':>8}  {'HTTP':>4} outcome"
            )
            for case in cases:
                request = case.build()
                times, outcome, status = [], "", 0
                for _ in range(args.repeat):
                    db.execute("TRUNCATE inbound_emails, images, outbox RESTART IDENTITY CASCADE")
                    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
                    headers = dict(request.headers, **{"x-functions-key": FUNCTION_KEY})
                    t0 = time.perf_counter()
                    conn.request("POST", target.path, body=request.body, headers=headers)
                    r = conn.getresponse()
                    text = r.read()
                    times.append((time.perf_counter() - t0) * 1000)
                    conn.close()
                    status = r.status
                    try:
                        answer = json.loads(text)
                        outcome = f"{answer.get('status')} {(answer.get('reason') or '').split(':', 1)[0]}"
                    except ValueError:
                        outcome = text[:80].decode("utf-8", "replace")
                p_ms, _ = parse_ms(request.body, request.headers.get("Content-Type", ""))
                ip_ms = statistics.median(in_process_ms(request, db) for _ in range(args.repeat))
                print(
                    f"{case.id:42} {len(request.body) / 1e6:>6.1f} {statistics.median(times):>13.0f} "
                    f"{max(times):>7.0f} {ip_ms:>10.0f} {p_ms:>8.0f}  {status:>4} {outcome}"
                )
            storage.queue(names.PROCESS_IMAGE_QUEUE).clear_messages()
            db.close()
        finally:
            if host is not None:
                host.stop(timeout_s=10)
            az.stop()
            pg.stop("immediate")


if __name__ == "__main__":
    main()
