"""process-image overhead per photo, excluding model time.

Runs for real and locally: Azurite, embedded PostgreSQL, the scoring service with the null backend (no model:
SCORING_BACKEND=null, every photo "sees" one person), and the process-image handler called in this process
as the Functions worker calls it. Photos are 640x480 JPEGs (about 25 kB) from --cameras cameras, in bursts
of --burst photos 3 s apart, so every path runs: blob download, scoring call, detections stored, rules,
event, static-box tracking, alert open/attach, outbox enqueue.

    .venv/bin/python bench/process_image.py [--photos 300] [--cameras 10] [--burst 10] [--threads 1 4]

Reported per photo: wall ms (the handler call, end to end), the scoring service's own time (its
info.timing_ms.total: HTTP body read, JPEG decode, preprocessing; model time is 0 with the null backend),
the pipeline overhead = wall - service time, its phases (blob, scoring HTTP round trip, decision
transaction, outbox), and CPU ms of this process (the Function app's CPU, not the scoring service's).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
os.environ["TRAPALERT_LOCAL_SETTINGS"] = "/nonexistent/local.settings.json"

from functions.adapters.outbox import Outbox  # noqa: E402
from functions.adapters.storage import Storage  # noqa: E402
from functions.bootstrap import Services  # noqa: E402
from functions.db import Database  # noqa: E402
from functions.db.migrate import migrate  # noqa: E402
from functions.handlers import process_image  # noqa: E402
from functions.localhost.services import Azurite, EmbeddedPostgres, free_port  # noqa: E402
from functions.settings import load_settings  # noqa: E402
from tests.process_image.helpers import add_image, make_camera, make_park  # noqa: E402
from tests.support.scoring_process import run_scoring_service  # noqa: E402
from tests.support.tiny_models import make_detection_image  # noqa: E402

PHASES: dict[str, list[float]] = defaultdict(list)
SERVICE_MS: list[float] = []


def timed(name, fn):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            PHASES[name].append((time.perf_counter() - t) * 1000)

    return wrapper


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))]


def run(svc, msgs, threads: int) -> dict:
    PHASES.clear()
    SERVICE_MS.clear()
    walls: list[float] = []

    def one(m):
        t = time.perf_counter()
        process_image.handle(m, svc)
        walls.append((time.perf_counter() - t) * 1000)

    cpu0, t0 = time.process_time(), time.perf_counter()
    if threads == 1:
        for m in msgs:
            one(m)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, msgs))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    n = len(msgs)
    service = statistics.mean(SERVICE_MS)
    return {
        "threads": threads,
        "n": n,
        "wall_mean": statistics.mean(walls),
        "wall_p50": pct(walls, 50),
        "wall_p95": pct(walls, 95),
        "service_mean": service,
        "overhead_mean": statistics.mean(walls) - service,
        "throughput": n / elapsed,
        "cpu_ms_per_image": cpu * 1000 / n,
        "phases": {k: statistics.mean(v) for k, v in PHASES.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=300)
    ap.add_argument("--cameras", type=int, default=10)
    ap.add_argument("--burst", type=int, default=10)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="trapalert-bench-pi-"))
    pg = EmbeddedPostgres(work / "pg", free_port()).start()
    az = Azurite(work / "azurite", free_port(), free_port(), free_port()).start()
    try:
        db = Database(pg.url)
        migrate(db)
        storage = Storage(connection_string=az.connection_string)
        storage.ensure_resources()
        with run_scoring_service({"SCORING_BACKEND": "null", "SCORING_NULL_RESULT": "person"}) as url:
            os.environ.update(
                {"AzureWebJobsStorage": az.connection_string, "DATABASE_URL": pg.url, "SCORING_URL": str(url)}
            )
            svc = Services(load_settings())
            orig_detect = svc.scoring.detect

            def detect(*a, **kw):
                score = orig_detect(*a, **kw)
                SERVICE_MS.append(score.service_ms or 0.0)
                return score

            svc.scoring.detect = timed("scoring_http", detect)
            svc.storage.get_blob = timed("blob", svc.storage.get_blob)
            process_image.decide_photo = timed("decide_tx", process_image.decide_photo)
            Outbox.flush = timed("outbox", Outbox.flush)

            park_id = make_park(db, "bench")
            jpeg = make_detection_image("2", 0.9, (0.3, 0.3, 0.2, 0.4))
            t0 = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
            results = []
            for round_no, threads in enumerate([1, *args.threads]):  # the first round warms up
                cams = [make_camera(db, park_id, f"r{round_no}-cam{c}") for c in range(args.cameras)]
                msgs = []
                for i in range(args.photos if round_no else 30):
                    cam = cams[(i // args.burst) % len(cams)]
                    burst_no = i // (args.burst * len(cams))
                    at = t0 + timedelta(seconds=600 * burst_no + 3 * (i % args.burst))
                    msgs.append(add_image(db, storage, park_id, cam, jpeg, at))
                r = run(svc, msgs, threads)
                if round_no:
                    results.append(r)
            alerts = db.fetchone("SELECT count(*) AS n, sum(image_count) AS imgs FROM alerts")
            sends = db.fetchone("SELECT count(*) AS n FROM outbox WHERE queue = 'send-alert'")
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}; "
            f"{args.photos} photos/round, {args.cameras} cameras, bursts of {args.burst}"
        )
        print(f"alerts: {alerts['n']} holding {alerts['imgs']} photos; send-alert messages: {sends['n']}")
        for r in results:
            ph = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["phases"].items()))
            print(
                f"threads={r['threads']}: wall {r['wall_mean']:.1f} ms/image (p50 {r['wall_p50']:.1f}, "
                f"p95 {r['wall_p95']:.1f}); scoring service's own time {r['service_mean']:.1f} ms; "
                f"pipeline overhead {r['overhead_mean']:.1f} ms/image; "
                f"CPU {r['cpu_ms_per_image']:.1f} ms/image; "
                f"throughput {r['throughput']:.0f} images/s"
            )
            print(f"    phases (ms, mean): {ph}")
        svc.scoring.close()
        svc.db.close()
        db.close()
    finally:
        az.stop()
        pg.stop("immediate")


if __name__ == "__main__":
    main()
