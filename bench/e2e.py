"""End-to-end benchmark: camera email (SendGrid format, over HTTP) -> alert delivered on every channel.

Starts its own stack on free ports in a temporary folder: embedded PostgreSQL 16, Azurite, the scoring
service (``--backend null`` answers one person per photo with no model time; ``hog`` is OpenCV's people
detector; ``tiny`` the controlled TensorFlow detector of the tests), the local Functions host running the
real function_app.py with the project's host.json (``--max-polling`` to change maxPollingInterval), and the
EarthRanger / CMORE / SendGrid stand-ins (threads of this process). Each email is its own alert (the park's
rules: cooldown 0, burst gap 1 s, no static-box suppression; the photos of one email are one burst).

    .venv/bin/python bench/e2e.py --emails 100 --concurrency 8              # a burst
    .venv/bin/python bench/e2e.py --rate 5 --duration 180                   # 5 emails/s sustained
    .venv/bin/python bench/e2e.py --emails 0 --idle-s 30 --idle-samples 3   # first alert after idle

Prints webhook accept latency p50/p95, end-to-end latency (first POST of the email to the last of its three
channels receiving it, from the stand-ins' receipt times) p50/p95/max, throughput, CPU seconds per image by
component (psutil, process + descendants), peak RSS per component, and lost / duplicated counts (the
exactly-once check of tests/e2e/harness.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
os.environ["TRAPALERT_LOCAL_SETTINGS"] = "/nonexistent/local.settings.json"

from bench.procstats import Sampler, cpu_s, postmaster_pid  # noqa: E402
from functions.adapters.storage import Storage  # noqa: E402
from functions.db import Database  # noqa: E402
from functions.db.migrate import migrate  # noqa: E402
from functions.localhost.services import Azurite, EmbeddedPostgres, free_port  # noqa: E402
from functions.notify import cmore as cmore_module  # noqa: E402
from tests.e2e.harness import (  # noqa: E402
    CMORE_PASSWORD,
    CMORE_USER,
    ER_TOKEN,
    SECRET_ENV,
    SG_KEY,
    T0,
    Pipeline,
    make_photo,
)
from tests.fakes import FakeCmore, FakeEarthRanger, FakeSendGrid  # noqa: E402
from tests.support.host import HostProcess, host_env, write_host_json  # noqa: E402
from tests.support.scoring_process import run_scoring_service  # noqa: E402

RULES = {"cooldown_s": 0, "burst_gap_s": 1, "suppress_after": 0}


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))] if s else float("nan")


def photo_for(args, pipe: Pipeline, k: int, i: int) -> bytes:
    when = T0 + timedelta(minutes=10 * k, seconds=2 * i)  # each email its own event
    if args.backend == "tiny":
        from tests.support.tiny_models import make_detection_image

        return make_detection_image("2", 0.9, (0.3, 0.3, 0.2, 0.4), size=args.size)
    return make_photo(when, seed=k * 1000 + i, size=args.size)


def stage_times(pipe: Pipeline, measured: list, times: dict[int, float]) -> dict[str, list[float]]:
    """Where the end-to-end time goes, per photo, from the rows' own timestamps (same clock): POST ->
    process-image message enqueued (the webhook) -> decided (queue wait, blob read, scoring call, the
    decision transaction) -> last channel received (outbox enqueue, queue wait, send-alert)."""
    rows = {
        r["message_id"]: r
        for r in pipe.q(
            "SELECT e.message_id, i.alert_id, extract(epoch FROM o.sent_at) AS q, "
            "extract(epoch FROM i.decided_at) AS d "
            "FROM inbound_emails e JOIN images i ON i.email_id = e.id "
            "LEFT JOIN outbox o ON o.key = 'process-image:' || i.id"
        )
    }
    out: dict[str, list[float]] = {"webhook": [], "process-image": [], "send-alert": []}
    for sent in measured:
        r = rows.get(sent.payload.message_id.strip("<>"))
        if r is None or r["q"] is None or r["d"] is None or r["alert_id"] not in times:
            continue
        points = [sent.posted_at, float(r["q"]), float(r["d"]), times[r["alert_id"]]]
        for key, a, b in zip(out, points, points[1:], strict=False):
            out[key].append((b - a) * 1000)
    return out


def alert_times(pipe: Pipeline) -> dict[int, float]:
    """alert id -> time its last channel first received it (stand-ins' receipt times)."""
    first: dict[int, dict[str, float]] = {}
    for r in pipe.er.requests_to(r"^/api/v1\.0/activity/events/?$", "POST"):
        if r.status == 201:
            aid = (r.json or {}).get("event_details", {}).get("alert_id")
            if aid is not None:
                first.setdefault(int(aid), {}).setdefault("er", r.at)
    for r in pipe.cm.requests_to(r"/v2/messages/events$", "POST"):
        if r.status == 200 or r.status == 201:
            desc = (r.json or {}).get("description", "")
            if desc.startswith("TrapAlert alert "):
                aid = int(desc.split()[2].rstrip(":"))
                first.setdefault(aid, {}).setdefault("cmore", r.at)
    for r in pipe.sg.requests_to(r"/v3/mail/send$", "POST"):
        if r.status == 202:
            aid = ((r.json or {}).get("custom_args") or {}).get("alert_id")
            if aid is not None:
                first.setdefault(int(aid), {}).setdefault("email", r.at)
    return {a: max(t.values()) for a, t in first.items() if len(t) == 3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emails", type=int, default=100, help="emails of a burst (ignored with --rate)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--photos-per-email", type=int, default=1)
    ap.add_argument("--photo-size", default="640x480")
    ap.add_argument("--backend", choices=["null", "hog", "tiny"], default="null")
    ap.add_argument("--rate", type=float, default=0.0, help="emails/s sustained (with --duration)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of sustained rate")
    ap.add_argument("--idle-s", type=float, default=0.0, help="then: idle this long before each idle sample")
    ap.add_argument("--idle-samples", type=int, default=3)
    ap.add_argument("--max-polling", default=None, help="host.json maxPollingInterval, e.g. 00:00:00.500")
    ap.add_argument("--cameras", type=int, default=20)
    args = ap.parse_args()
    args.size = tuple(int(v) for v in args.photo_size.lower().split("x"))

    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        tmp_path = Path(tmp)
        os.chmod(tmp_path, 0o755)
        pg = EmbeddedPostgres(tmp_path / "pg", free_port()).start()
        az = Azurite(tmp_path / "az", free_port(), free_port(), free_port()).start()
        host = None
        scoring_env = {
            "null": {"SCORING_BACKEND": "null", "SCORING_NULL_RESULT": "person"},
            "hog": {"SCORING_BACKEND": "hog"},
        }.get(args.backend)
        if args.backend == "tiny":
            from tests.support.tiny_models import build_controlled_frozen_graph

            model = build_controlled_frozen_graph(tmp_path / "md_v5a_controlled.pb")
            scoring_env = {
                "SCORING_MODEL_PATH": str(model),
                "SCORING_MODEL_VERSION": "v5a-tiny",
                "SCORING_OUTPUT_THRESHOLD": "0.05",
            }
        cmore_module.clear_caches()
        try:
            with (
                run_scoring_service(scoring_env) as scoring,
                FakeEarthRanger(token=ER_TOKEN) as er,
                FakeCmore(users={CMORE_USER: CMORE_PASSWORD}) as cm,
                FakeSendGrid(api_key=SG_KEY) as sg,
            ):
                db = Database(pg.url)
                migrate(db)
                storage = Storage(connection_string=az.connection_string)
                storage.ensure_resources()
                cams = [f"CAM{i:02d}" for i in range(1, args.cameras + 1)]
                park_id, cameras, channels = Pipeline.register(db, er, cm, sg, cams)
                db.execute(
                    "UPDATE channels SET config = jsonb_set(config, '{details_keys}', %s::jsonb) "
                    "WHERE kind = 'earthranger'",
                    (
                        json.dumps(
                            {
                                "camera": "camera",
                                "categories": "categories",
                                "alert_id": "alert_id",
                                "image_count": "image_count",
                            }
                        ),
                    ),
                )
                db.execute(
                    "INSERT INTO alert_rules (park_id, rules) VALUES (%s, %s::jsonb)",
                    (park_id, json.dumps(RULES)),
                )
                hj = {"maxPollingInterval": args.max_polling} if args.max_polling else {}
                host = HostProcess(
                    script_root=ROOT,
                    port=free_port(),
                    log_path=tmp_path / "host.log",
                    env=host_env(az.connection_string, pg.url, SCORING_URL=str(scoring), **SECRET_ENV),
                    host_json=write_host_json(tmp_path / "host.json", **hj),
                ).start()
                pipe = Pipeline(
                    db=db,
                    storage=storage,
                    host=host,
                    scoring=scoring,
                    er=er,
                    cm=cm,
                    sg=sg,
                    park_id=park_id,
                    cameras=cameras,
                    channels=channels,
                )
                pids = {
                    "host": host.proc.pid,
                    "scoring": scoring.pid,
                    "azurite": az.proc.pid,
                    "postgres": postmaster_pid(pg.pgdata),
                    "bench+stand-ins": os.getpid(),
                }
                run(args, pipe, pids)
                pipe.close()
                db.close()
        finally:
            if host is not None and host.proc is not None:
                host.stop(timeout_s=10)
            az.stop()
            pg.stop("immediate")


def run(args, pipe: Pipeline, pids: dict[str, int]) -> None:
    n = int(args.rate * args.duration) if args.rate else args.emails
    P = args.photos_per_email
    print(
        f"backend {args.backend}; {n} emails x {P} photo(s) {args.photo_size}; "
        + (
            f"rate {args.rate}/s for {args.duration:.0f} s"
            if args.rate
            else f"concurrency {args.concurrency}"
        )
        + f"; {os.cpu_count()} CPUs"
    )
    batch = []
    for k in range(n):
        cam = f"CAM{k % args.cameras + 1:02d}"
        batch.append(pipe.build_email([photo_for(args, pipe, k, i) for i in range(P)], cam))
    # warm-up: one alert end to end (imports, connections, caches), not measured
    pipe.send_camera_email([photo_for(args, pipe, n + 1, 0)], "CAM01")
    pipe.wait_for_deliveries(timeout_s=60)

    sampler = Sampler(pids)
    sampler.start()
    cpu0 = {k: cpu_s(p) for k, p in pids.items()}
    lock = threading.Lock()
    started = time.time()

    def one(item):
        k, sent = item
        if args.rate:
            due = started + k / args.rate
            time.sleep(max(0.0, due - time.time()))
        pipe.post(sent)
        with lock:
            pipe.sent.append(sent)

    workers = args.concurrency if not args.rate else max(args.concurrency, int(args.rate * 2) + 2)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, enumerate(batch)))
    sent_done = time.time()
    if n:
        pipe.wait_for_deliveries(timeout_s=max(120.0, n * 0.5))
    finished = time.time()
    cpu1 = {k: cpu_s(p) for k, p in pids.items()}
    sampler.stop_flag.set()
    sampler.join()

    times = alert_times(pipe)
    alert_of_email = {}
    for r in pipe.q(
        "SELECT e.message_id, max(i.alert_id) AS alert_id FROM inbound_emails e "
        "JOIN images i ON i.email_id = e.id GROUP BY e.message_id"
    ):
        alert_of_email[r["message_id"]] = r["alert_id"]
    measured = pipe.sent[1:]
    e2e = [
        (times[alert_of_email[s.payload.message_id.strip("<>")]] - s.posted_at) * 1000
        for s in measured
        if alert_of_email.get(s.payload.message_id.strip("<>")) in times
    ]
    accept = [s.accept_s * 1000 for s in measured]
    stages = stage_times(pipe, measured, times)
    photos = n * P
    wall = finished - started
    if n:
        print(
            f"webhook accept ms: p50 {pct(accept, 50):.0f}  p95 {pct(accept, 95):.0f}  max {max(accept):.0f}"
        )
        print(
            f"end-to-end ms (POST -> last channel): p50 {pct(e2e, 50):.0f}  p95 {pct(e2e, 95):.0f}  "
            f"max {max(e2e):.0f}  (n={len(e2e)})"
        )
        print(
            "stages, p50 / p95 ms: "
            + ", ".join(f"{k} {pct(v, 50):.0f} / {pct(v, 95):.0f}" for k, v in stages.items() if v)
        )
        print(
            f"throughput: {photos / wall:.2f} images/s over {wall:.1f} s "
            f"(sending took {sent_done - started:.1f} s)"
        )
        print(
            "CPU ms per image: "
            + ", ".join(f"{k} {(cpu1[k] - cpu0[k]) * 1000 / photos:.1f}" for k in pids)
            + f"; pipeline (host+azurite+postgres) "
            f"{sum(cpu1[k] - cpu0[k] for k in ('host', 'azurite', 'postgres')) * 1000 / photos:.1f}"
        )
    print("peak RSS MB: " + ", ".join(f"{k} {v:.0f}" for k, v in sampler.peak.items()))

    idle = []
    for j in range(args.idle_samples if args.idle_s else 0):
        time.sleep(args.idle_s)
        s = pipe.send_camera_email([photo_for(args, pipe, n + 10 + j, 0)], f"CAM{j % args.cameras + 1:02d}")
        pipe.wait_for_deliveries(timeout_s=60)
        times = alert_times(pipe)
        aid = pipe.q(
            "SELECT max(i.alert_id) AS a FROM images i JOIN inbound_emails e ON e.id = i.email_id "
            "WHERE e.message_id = %s",
            (s.payload.message_id.strip("<>"),),
        )[0]["a"]
        idle.append((times[aid] - s.posted_at) * 1000)
    if idle:
        print(f"first alert after {args.idle_s:.0f} s idle, ms: " + ", ".join(f"{v:.0f}" for v in idle))

    lost = (
        photos + 1 + len(idle) - pipe.count("SELECT count(*) AS n FROM images WHERE decided_at IS NOT NULL")
    )
    try:
        summary = pipe.assert_exactly_once()
        print(f"lost 0, duplicated 0 ({summary})")
    except AssertionError as exc:
        print(f"lost {lost}; exactly-once check FAILED: {str(exc)[:2000]}")


if __name__ == "__main__":
    main()
