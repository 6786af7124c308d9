"""Batch scoring throughput, end to end on the local stack, and exactly-once at volume.

Runs for real: Azurite, embedded PostgreSQL, the scoring service (null backend: no model time, every photo
"sees" one person; or --backend hog: OpenCV's HOG people detector on the CPU), the batch API's submit
(functions/handlers/batch.py) and --workers threads playing the Functions host of the bulk lane (each takes
one message at a time from process-image-bulk and calls the handler, as the host does). Photos are
--width x --height JPEGs, each different, uploaded first (not timed with the scoring).

    .venv/bin/python bench/batch_throughput.py --photos 10000                  # null backend
    .venv/bin/python bench/batch_throughput.py --photos 200 --backend hog      # HOG on the CPU

Printed: photos/s from submit to the batch's ``done`` (the rate the bulk lane scores), the upload rate, and
the exactly-once check (every item scored once: ``score_count`` = 1, the detector asked once per photo).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
os.environ["TRAPALERT_LOCAL_SETTINGS"] = "/nonexistent/local.settings.json"

from PIL import Image  # noqa: E402

from functions import names  # noqa: E402
from functions.adapters.batch_repo import BatchRepository  # noqa: E402
from functions.adapters.storage import Storage  # noqa: E402
from functions.bootstrap import Services  # noqa: E402
from functions.db import Database  # noqa: E402
from functions.db.migrate import migrate  # noqa: E402
from functions.handlers import batch  # noqa: E402
from functions.localhost.services import Azurite, EmbeddedPostgres, free_port  # noqa: E402
from functions.messages import BulkImage, parse_message  # noqa: E402
from functions.settings import load_settings  # noqa: E402
from tests.process_image.helpers import make_park  # noqa: E402
from tests.support.scoring_process import run_scoring_service  # noqa: E402


def photo(i: int, size: tuple[int, int]) -> bytes:
    img = Image.new("RGB", size, ((i * 37) % 256, (i * 91) % 256, (i // 256 * 53) % 256))
    img.putpixel((0, 0), (i % 256, (i // 256) % 256, (i // 65536) % 256))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def host_worker(svc: Services, stop: threading.Event, handled: list[int]) -> None:
    """One message at a time, as a Functions host worker thread does."""
    queue = svc.storage.queue(names.BULK_IMAGE_QUEUE)
    while not stop.is_set():
        got = list(queue.receive_messages(messages_per_page=1, max_messages=1, visibility_timeout=120))
        if not got:
            stop.wait(0.02)
            continue
        for m in got:
            batch.handle_bulk(parse_message(BulkImage, m.content), svc)
            queue.delete_message(m)
            handled.append(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=10_000)
    ap.add_argument("--backend", choices=["null", "hog"], default="null")
    ap.add_argument("--workers", type=int, default=4, help="host worker threads of the bulk lane")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="trapalert-bench-batch-"))
    pg = EmbeddedPostgres(work / "pg", free_port()).start()
    az = Azurite(work / "azurite", free_port(), free_port(), free_port()).start()
    env = {"SCORING_BACKEND": args.backend}
    if args.backend == "null":
        env["SCORING_NULL_RESULT"] = "person"
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
                    "BULK_CONCURRENCY": str(args.workers),
                    "SCORING_RETRY_BUDGET_S": "120",
                }
            )
            svc = Services(load_settings())
            calls: list[str] = []
            real_detect = svc.scoring.detect

            def detect(data, filename="image.jpg", content_type="image/jpeg", *, lane="live"):
                calls.append(filename)
                return real_detect(data, filename=filename, content_type=content_type, lane=lane)

            svc.scoring.detect = detect
            make_park(db, "bench")
            size = (args.width, args.height)
            t = time.perf_counter()
            blobs = [f"batch/bench/{i:06d}.jpg" for i in range(args.photos)]

            def put(i: int) -> None:
                storage.put_blob(names.IMAGES_CONTAINER, blobs[i], photo(i, size), content_type="image/jpeg")

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(put, range(args.photos)))
            upload_s = time.perf_counter() - t

            load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
            stop, handled = threading.Event(), []
            workers = [
                threading.Thread(target=host_worker, args=(svc, stop, handled), daemon=True)
                for _ in range(args.workers)
            ]
            t = time.perf_counter()
            status = batch.submit(svc, batch.SubmitBody(park="bench", blobs=blobs))
            submit_s = time.perf_counter() - t
            for w in workers:
                w.start()
            repo = BatchRepository(svc.db)
            found = repo.get(status["request_id"])
            while True:
                found = repo.get(found["id"])
                if found["state"] != "running":
                    break
                time.sleep(0.2)
            wall = time.perf_counter() - t
            stop.set()
            for w in workers:
                w.join(10)
            progress = repo.progress(found["id"])
            counts = db.fetchone(
                "SELECT count(*) FILTER (WHERE score_count = 1) AS once, "
                "count(*) FILTER (WHERE score_count <> 1) AS other FROM batch_items WHERE batch_id = %s",
                (found["id"],),
            )
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}; "
            f"backend {args.backend}; {args.photos} photos {args.width}x{args.height}; "
            f"{args.workers} bulk workers"
        )
        print(
            f"upload (8 threads): {args.photos / upload_s:.0f} photos/s ({upload_s:.1f} s); "
            f"submit: {submit_s:.2f} s; load average before: {load_before}"
        )
        print(
            f"scored: {progress['scored']}, failed: {progress['failed']} in {wall:.1f} s -> "
            f"{args.photos / wall:.1f} photos/s ({args.photos / wall * 86400:,.0f} photos/day)"
        )
        print(
            f"exactly once: {counts['once']} items recorded once, {counts['other']} otherwise; "
            f"detector asked {len(calls)} times for {args.photos} photos; messages handled {len(handled)}"
        )
        svc.scoring.close()
        svc.db.close()
        db.close()
    finally:
        az.stop()
        pg.stop("immediate")


if __name__ == "__main__":
    main()
