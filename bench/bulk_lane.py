"""Live photo latency with the bulk lane idle and busy: the bulk lane must not delay live alerts.

Runs for real: Azurite, embedded PostgreSQL, the scoring service with the null backend and a simulated model
time (SCORING_NULL_DELAY_MS, --model-ms per model call, batches of up to SCORING_MAX_BATCH=4) so that the
detector is the bottleneck, as a GPU is in production. Live photos go one at a time through the
process-image handler in this process (blob, scoring, decision, outbox), timed end to end. Three rounds:

1. ``idle``: no bulk work;
2. ``busy, lanes``: a second process (the bulk function runs on instances of its own on Flex Consumption)
   keeps --bulk-workers requests on the detector at all times, with the bulk lane's header
   ``X-TrapAlert-Lane: bulk``, as process-image-bulk scaled out would: the service serves live images first,
   puts at most SCORING_BULK_MAX_BATCH bulk images in one model call and admits at most
   SCORING_BULK_QUEUE_LIMIT of them (the others get 503 + Retry-After and wait);
3. ``busy, no lanes``: the same bulk load without the header (served like live photos, first come first
   served), for comparison: what the lanes are worth.

    .venv/bin/python bench/bulk_lane.py [--live 60] [--bulk-workers 12] [--model-ms 100]

Printed per round: live latency mean / p50 / p95 / max in ms and the bulk photos scored meanwhile.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
os.environ["TRAPALERT_LOCAL_SETTINGS"] = "/nonexistent/local.settings.json"

from PIL import Image  # noqa: E402

from functions.adapters.storage import Storage  # noqa: E402
from functions.bootstrap import Services  # noqa: E402
from functions.db import Database  # noqa: E402
from functions.db.migrate import migrate  # noqa: E402
from functions.handlers import process_image  # noqa: E402
from functions.localhost.services import Azurite, EmbeddedPostgres, free_port  # noqa: E402
from functions.settings import load_settings  # noqa: E402
from tests.process_image.helpers import add_image, make_camera, make_park  # noqa: E402
from tests.support.scoring_process import run_scoring_service  # noqa: E402


def photo(i: int) -> bytes:
    img = Image.new("RGB", (320, 240), ((i * 37) % 256, (i * 91) % 256, (i // 256 * 53) % 256))
    img.putpixel((0, 0), (i % 256, (i // 256) % 256, 9))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def bulk_load(url: str, workers: int, lane: str | None, stop, done) -> None:
    """In its own process (the bulk function runs on instances of its own): ``workers`` threads post photos
    to the detector as the bulk lane does, with its lane header (or none: served like live photos)."""
    import httpx

    headers = {"Content-Type": "image/jpeg"} | ({"X-TrapAlert-Lane": lane} if lane else {})

    def loop(k: int) -> None:
        data = photo(200_000 + k)
        with httpx.Client(base_url=url, timeout=60) as client:
            while not stop.is_set():
                response = client.post("/v1/detect?file=bulk.jpg", content=data, headers=headers)
                if response.status_code == 200:
                    with done.get_lock():
                        done.value += 1
                else:  # 503 overloaded: the bulk lane is full; wait as the client would
                    stop.wait(float(response.headers.get("Retry-After", "1")))

    threads = [threading.Thread(target=loop, args=(k,), daemon=True) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def live_round(svc, db, storage, park_id, cam_id, count, start, offset) -> list[float]:
    out = []
    for i in range(count):
        at = start + timedelta(minutes=30 * (offset + i))  # each photo its own event
        msg = add_image(db, storage, park_id, cam_id, photo(100_000 + offset + i), at)
        t = time.perf_counter()
        process_image.handle(msg, svc)
        out.append((time.perf_counter() - t) * 1000)
        time.sleep(0.05)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--live", type=int, default=60, help="live photos per round")
    ap.add_argument("--bulk-workers", type=int, default=12)
    ap.add_argument("--model-ms", type=float, default=100.0)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="trapalert-bench-lane-"))
    pg = EmbeddedPostgres(work / "pg", free_port()).start()
    az = Azurite(work / "azurite", free_port(), free_port(), free_port()).start()
    env = {
        "SCORING_BACKEND": "null",
        "SCORING_NULL_RESULT": "person",
        "SCORING_NULL_DELAY_MS": str(args.model_ms),
        "SCORING_MAX_BATCH": "4",
    }
    rows = []
    try:
        db = Database(pg.url)
        migrate(db)
        storage = Storage(connection_string=az.connection_string)
        storage.ensure_resources()
        with run_scoring_service(env) as url:
            os.environ.update(
                {
                    "AzureWebJobsStorage": az.connection_string,
                    "DATABASE_URL": pg.url,
                    "SCORING_URL": str(url),
                    "SCORING_RETRY_BUDGET_S": "120",
                }
            )
            svc = Services(load_settings())
            park_id = make_park(db, "bench", tz="UTC")
            cam_id = make_camera(db, park_id, "live-cam")
            start = datetime(2026, 11, 1, tzinfo=UTC)
            live_round(svc, db, storage, park_id, cam_id, 5, start, 10_000)  # warm-up
            rounds = [("idle", None), ("busy, lanes", "bulk"), ("busy, no lanes", None)]
            for n, (label, lane) in enumerate(rounds):
                stop, done = mp.Event(), mp.Value("i", 0)
                load = None
                if label != "idle":
                    load = mp.Process(target=bulk_load, args=(str(url), args.bulk_workers, lane, stop, done))
                    load.start()
                    time.sleep(2.0)  # the bulk lane is busy
                t, before = time.perf_counter(), done.value
                lat = live_round(svc, db, storage, park_id, cam_id, args.live, start, n * 1000)
                elapsed = time.perf_counter() - t
                bulk_rate = (done.value - before) / elapsed
                stop.set()
                if load is not None:
                    load.join(60)
                q = statistics.quantiles(lat, n=20)
                rows.append((label, statistics.mean(lat), statistics.median(lat), q[18], max(lat), bulk_rate))
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}, "
            f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; null backend, "
            f"{args.model_ms:g} ms per model call, max batch 4; {args.live} live photos per round; "
            f"{args.bulk_workers} bulk workers"
        )
        for label, mean, p50, p95, worst, rate in rows:
            print(
                f"{label:>15}: live latency mean {mean:.0f} ms, p50 {p50:.0f}, p95 {p95:.0f}, "
                f"max {worst:.0f}; bulk {rate:.1f} photos/s meanwhile"
            )
        svc.scoring.close()
        svc.db.close()
        db.close()
    finally:
        az.stop()
        pg.stop("immediate")


if __name__ == "__main__":
    main()
