"""Webhook throughput (process-email): emails/s accepted with a 2 MB photo each.

Everything local and real: Azurite, embedded PostgreSQL 16, and the project's local Functions host serving
the real process-email function over HTTP (the webhook-only app of tests/inbound, so that the process-image
trigger does not compete for the 2 cores; `--full-app` serves the whole function_app.py instead). Each email
is a real-format SendGrid Inbound Parse POST (default mode, or raw with --mode raw) from a registered
camera with one distinct ~2 MB JPEG; "accepted" means answered 200 after the raw email and the photo are in
Blob Storage, the rows in PostgreSQL and the process-image message on the queue.

    .venv/bin/python bench/inbound.py [--emails 200] [--concurrency 1 2 4 8] [--mode parsed|raw]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
os.environ["TRAPALERT_LOCAL_SETTINGS"] = "/nonexistent/local.settings.json"

from PIL import Image  # noqa: E402

from bench.procstats import CpuMeter, postmaster_pid  # noqa: E402
from functions import names  # noqa: E402
from functions.adapters.parks import CameraIn, ParkIn, ParkRepository  # noqa: E402
from functions.adapters.storage import Storage  # noqa: E402
from functions.db import Database  # noqa: E402
from functions.db.migrate import migrate  # noqa: E402
from functions.inbound.sendgrid_payload import ImageFile, build_payload  # noqa: E402
from functions.localhost.services import Azurite, EmbeddedPostgres, free_port  # noqa: E402
from tests.support.host import FUNCTION_KEY, HostProcess, host_env, write_host_json  # noqa: E402

WEBHOOK_APP = ROOT / "tests" / "inbound" / "webhook_app"


def photo_2mb() -> bytes:
    """A camera-trap-sized JPEG of about 2 MB (noise keeps it from compressing)."""
    img = Image.frombytes("RGB", (2000, 1500), os.urandom(2000 * 1500 * 3))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emails", type=int, default=200, help="emails per concurrency level")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--mode", choices=["parsed", "raw"], default="parsed")
    ap.add_argument("--full-app", action="store_true", help="host the whole function_app.py")
    args = ap.parse_args()

    base_photo = photo_2mb()
    print(
        f"photo: {len(base_photo) / 1e6:.2f} MB JPEG; mode {args.mode}; {os.cpu_count()} CPUs; "
        f"{platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-inbound-") as tmp:
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
            parks.add_park(ParkIn(slug="bench", name="Bench", inbound_address="bench@alerts.example.org"))
            parks.add_camera("bench", CameraIn(name="CAM01", sender_addresses=["cam01@traps.example.org"]))
            host = HostProcess(
                script_root=ROOT if args.full_app else WEBHOOK_APP,
                env=host_env(az.connection_string, pg.url),
                port=free_port(),
                log_path=tmp_path / "host.log",
                host_json=write_host_json(tmp_path / "host.json"),
            ).start()
            target = urlsplit(host.api(names.INBOUND_ROUTE))
            pids = {
                "host": host.proc.pid,
                "azurite": az.proc.pid,
                "postgres": postmaster_pid(pg.pgdata),
                "client": os.getpid(),
            }
            print(
                f"{'concurrency':>11} {'emails':>6} {'emails/s':>9} {'MB/s':>6} {'p50 ms':>7} {'p95 ms':>7} "
                f"{'max ms':>7} {'queued':>6}  CPU ms/email: " + " ".join(f"{k:>8}" for k in pids)
            )
            n = 0
            for conc in args.concurrency:
                payloads = []
                for _ in range(args.emails):
                    n += 1
                    photo = base_photo + n.to_bytes(8, "big")  # distinct bytes after EOI: a distinct blob
                    payloads.append(
                        build_payload(
                            sender="cam01@traps.example.org",
                            to="bench@alerts.example.org",
                            subject=f"CAM01 motion {n}",
                            images=[ImageFile(f"IMG_{n:05d}.JPG", photo)],
                            mode=args.mode,
                        )
                    )
                depth_before = storage.queue_depth(names.PROCESS_IMAGE_QUEUE)
                local = threading.local()
                latencies: list[float] = []
                failures: list[str] = []

                def send(p, local=local, latencies=latencies, failures=failures):
                    # stdlib http.client, one keep-alive connection per thread: the load generator shares
                    # the 2 cores with what it measures, so it is kept lean (~1.5 ms of CPU per POST).
                    conn = getattr(local, "conn", None)
                    if conn is None:
                        conn = local.conn = http.client.HTTPConnection(
                            target.hostname, target.port, timeout=60
                        )
                    t0 = time.perf_counter()
                    conn.request(
                        "POST", target.path, body=p.body, headers=p.headers(function_key=FUNCTION_KEY)
                    )
                    r = conn.getresponse()
                    text = r.read()
                    latencies.append((time.perf_counter() - t0) * 1000)
                    if r.status != 200 or json.loads(text).get("status") != "accepted":
                        failures.append(f"{r.status} {text[:200]!r}")

                meter = CpuMeter(pids).start()
                started = time.perf_counter()
                with ThreadPoolExecutor(conc) as pool:
                    list(pool.map(send, payloads))
                wall = time.perf_counter() - started
                cpu = meter.stop()
                queued = storage.queue_depth(names.PROCESS_IMAGE_QUEUE) - depth_before
                mb = sum(len(p.body) for p in payloads) / 1e6
                print(
                    f"{conc:>11} {len(payloads):>6} {len(payloads) / wall:>9.1f} {mb / wall:>6.1f} "
                    f"{statistics.median(latencies):>7.0f} {pct(latencies, 95):>7.0f} {max(latencies):>7.0f} "
                    f"{queued:>6}                "
                    + " ".join(f"{cpu[k] * 1000 / len(payloads):>8.1f}" for k in pids)
                )
                if failures:
                    print(f"  {len(failures)} not accepted, e.g. {failures[0]}")
            rows = db.fetchone("SELECT count(*) AS n, count(DISTINCT dedupe_key) AS d FROM inbound_emails")
            print(
                f"recorded emails: {rows['n']} (distinct {rows['d']}); load average {os.getloadavg()[0]:.1f}"
            )
            db.close()
        finally:
            if host is not None:
                host.stop(timeout_s=10)
            az.stop()
            pg.stop("immediate")


if __name__ == "__main__":
    main()
