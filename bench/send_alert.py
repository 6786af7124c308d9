"""send-alert delivery latency: time from a SendAlert put on the queue to its last channel delivered.

Runs everything locally and for real: Azurite, embedded PostgreSQL, the project's local Functions host
(running function_app.py with the project's host.json unless --fast-polling), and three channels on local
stand-ins (EarthRanger event + photo, CMORE login/tags/event/photo comment, SendGrid mail with the photo).
Each alert has a stored 1920x1080 photo that send-alert annotates, caches and attaches.

Two measurements:
  idle   the first alert after the pipeline sat idle (the queue poller has backed off to maxPollingInterval)
  steady N alerts enqueued at --rate per second

    .venv/bin/python bench/send_alert.py [--alerts 100] [--rate 2] [--idle-samples 3] [--idle-s 8]

Latency = max(deliveries.delivered_at) of the alert - the time just before the enqueue call (one clock).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
os.environ["TRAPALERT_LOCAL_SETTINGS"] = "/nonexistent/local.settings.json"

from functions import names  # noqa: E402
from functions.adapters.storage import Storage  # noqa: E402
from functions.db import Database  # noqa: E402
from functions.db.migrate import migrate  # noqa: E402
from functions.localhost.services import Azurite, EmbeddedPostgres, free_port  # noqa: E402
from functions.messages import SendAlert  # noqa: E402
from tests.fakes import FakeCmore, FakeEarthRanger, FakeSendGrid  # noqa: E402
from tests.send_alert import helpers as h  # noqa: E402
from tests.support.host import HostProcess, host_env, write_host_json  # noqa: E402


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alerts", type=int, default=100)
    ap.add_argument("--rate", type=float, default=2.0, help="alerts enqueued per second (steady)")
    ap.add_argument("--idle-samples", type=int, default=3)
    ap.add_argument("--idle-s", type=float, default=8.0, help="idle time before each idle sample")
    ap.add_argument(
        "--fast-polling", action="store_true", help="maxPollingInterval 200 ms instead of host.json's"
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="trapalert-bench-"))
    pg = EmbeddedPostgres(work / "pg", free_port()).start()
    az = Azurite(work / "azurite", free_port(), free_port(), free_port()).start()
    host = None
    er, cm, sg = (
        FakeEarthRanger(token=h.ER_TOKEN),
        FakeCmore(users={h.CMORE_USER: h.CMORE_PASSWORD}),
        FakeSendGrid(api_key=h.SG_KEY),
    )
    try:
        for f in (er, cm, sg):
            f.start()
        db = Database(pg.url)
        migrate(db)
        storage = Storage(connection_string=az.connection_string)
        storage.ensure_resources()
        park_id = h.add_park(db)
        camera_id = h.add_camera(db, park_id)
        h.three_channels(db, park_id, er, cm, sg)

        hj = None
        if args.fast_polling:
            hj = write_host_json(work / "host.json", maxPollingInterval="00:00:00.200")
        host = HostProcess(
            script_root=ROOT,
            env=host_env(az.connection_string, pg.url, **h.SECRET_ENV),
            port=free_port(),
            log_path=work / "host.log",
            host_json=hj,
        ).start()

        def new_alert(i: int) -> int:
            image_id = h.add_image(db, storage, park_id, camera_id, seed=i, size=(1920, 1080))
            return h.add_alert(db, park_id, camera_id, image_id)

        def latency(alert_id: int, t0: datetime, timeout: float = 60) -> float:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                row = db.fetchone(
                    "SELECT count(*) FILTER (WHERE status = 'delivered') AS n, max(delivered_at) "
                    "AS last FROM deliveries WHERE alert_id = %s",
                    (alert_id,),
                )
                if row["n"] == 3:
                    return (row["last"] - t0).total_seconds()
                time.sleep(0.02)
            raise RuntimeError(
                f"alert {alert_id} not delivered to 3 channels in {timeout} s:\n{host.log()[-2000:]}"
            )

        # warm-up (imports, first CMORE login and tag list, first annotate)
        a = new_alert(10_000)
        t0 = datetime.now(UTC)
        storage.enqueue(names.SEND_ALERT_QUEUE, SendAlert(alert_id=a))
        warm = latency(a, t0)

        idle = []
        for i in range(args.idle_samples):
            a = new_alert(20_000 + i)
            time.sleep(args.idle_s)
            t0 = datetime.now(UTC)
            storage.enqueue(names.SEND_ALERT_QUEUE, SendAlert(alert_id=a))
            idle.append(latency(a, t0))

        alerts = [new_alert(i) for i in range(args.alerts)]
        sent: list[tuple[int, datetime]] = []
        start = time.monotonic()
        for i, a in enumerate(alerts):
            wait = start + i / args.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            t0 = datetime.now(UTC)
            storage.enqueue(names.SEND_ALERT_QUEUE, SendAlert(alert_id=a))
            sent.append((a, t0))
        steady = [latency(a, t0) for a, t0 in sent]

        dup = (len(er.events), len(cm.events), len(sg.messages))
        expected = args.alerts + args.idle_samples + 1
        hj_note = (
            "maxPollingInterval 200 ms" if args.fast_polling else "project host.json (maxPollingInterval 2 s)"
        )
        print(f"send-alert delivery latency, {platform.node()} ({os.cpu_count()} cores), {hj_note}")
        print(f"  warm-up (first alert after host start): {warm * 1000:.0f} ms")
        print(
            f"  first alert after {args.idle_s:.0f} s idle: "
            + ", ".join(f"{v * 1000:.0f}" for v in idle)
            + " ms"
        )
        print(
            f"  steady, {args.alerts} alerts at {args.rate:g}/s: p50 {pct(steady, 50) * 1000:.0f} ms, "
            f"p95 {pct(steady, 95) * 1000:.0f} ms, max {max(steady) * 1000:.0f} ms, "
            f"mean {statistics.mean(steady) * 1000:.0f} ms"
        )
        print(
            f"  remote objects: {dup[0]} EarthRanger events, {dup[1]} CMORE events, {dup[2]} emails "
            f"(expected {expected} each)"
        )
        if dup != (expected,) * 3:
            raise SystemExit("duplicate or missing deliveries")
    finally:
        if host is not None and host.proc is not None:
            host.stop(timeout_s=10)
        for f in (er, cm, sg):
            f.stop()
        az.stop()
        pg.stop("immediate")


if __name__ == "__main__":
    main()
