"""Park console load times with a large park: 500 cameras and 10,000 alerts (target: every page < 1 s).

Runs everything locally and for real: Azurite, embedded PostgreSQL (all migrations), the project's local
Functions host running function_app.py. Seeds 5 parks x 100 cameras (positions, some silent / low battery /
tampered), 10,000 detection alerts over 14 days with one photo and one box each, feedback on 2,000 of them
and 10,000 audit rows; signs in with a one-time link (as the CLI makes them) and times each page and API call
over HTTP (server + transfer, as a browser on this machine sees it; --repeat samples each, median and max).
With --browser, also the full load in headless Chromium (navigation start to the load event, scripts run,
map drawn), and --shots DIR saves a screenshot of the 500-camera map.

    .venv/bin/python bench/console_load.py [--cameras 500] [--alerts 10000] [--repeat 7] [--browser]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["TRAPALERT_LOCAL_SETTINGS"] = "/nonexistent/local.settings.json"

import httpx  # noqa: E402

from functions import names  # noqa: E402
from functions.adapters.console_repo import ConsoleRepository  # noqa: E402
from functions.adapters.storage import Storage  # noqa: E402
from functions.console.auth import new_token  # noqa: E402
from functions.db import Database  # noqa: E402
from functions.db.migrate import migrate  # noqa: E402
from functions.localhost.services import PROJECT_ROOT, Azurite, EmbeddedPostgres, free_port  # noqa: E402
from tests.support.host import HostProcess, host_env  # noqa: E402

SEED = """
SELECT setseed(0.42);
INSERT INTO parks (slug, name, settings)
SELECT 'park-' || p, 'Park ' || p, '{}'::jsonb FROM generate_series(1, %(parks)s) p;

INSERT INTO cameras (park_id, name, latitude, longitude, last_seen_at)
SELECT 1 + (c - 1) %% %(parks)s, 'cam-' || lpad(c::text, 4, '0'),
       -24.0 - random() * 0.7, 31.0 + random() * 0.8,
       now() - ((c %% 30) || ' minutes')::interval
FROM generate_series(1, %(cameras)s) c;

INSERT INTO camera_health (camera_id, condition, status, raised_at)
SELECT id, (ARRAY['silent', 'low_battery', 'view_changed'])[1 + id %% 3], 'raised', now()
FROM cameras WHERE id %% 17 = 0;

INSERT INTO channels (park_id, name, kind, config) SELECT id, 'hook', 'webhook', '{}' FROM parks;

INSERT INTO inbound_emails (dedupe_key, mode, status, correlation_id, park_id, camera_id)
SELECT 'bench-' || a, 'parsed', 'accepted', gen_random_uuid(), c.park_id, c.id
FROM generate_series(1, %(alerts)s) a JOIN cameras c ON c.id = 1 + (a * 31) %% %(cameras)s;

INSERT INTO alerts (park_id, camera_id, categories, max_conf, image_count, started_at, last_image_at, title,
                    details, correlation_id, created_at)
SELECT e.park_id, e.camera_id, ARRAY[(ARRAY['2', '3', '1'])[1 + e.id %% 3]], 0.5 + (e.id %% 50) / 100.0, 1,
       now() - (e.id * 121 || ' seconds')::interval, now() - (e.id * 121 || ' seconds')::interval,
       'Bench alert ' || e.id, '{"rule": {"threshold": 0.6}}', e.correlation_id,
       now() - (e.id * 121 || ' seconds')::interval
FROM inbound_emails e ORDER BY e.id DESC;

INSERT INTO images (email_id, attachment_index, park_id, camera_id, filename, content_type, blob_name, width,
                    height, taken_at, taken_at_source, status, correlation_id, alert_id, scored_at)
SELECT e.id, 1, a.park_id, a.camera_id, 'IMG.JPG', 'image/jpeg', 'bench/photo.jpg', 320, 240, a.started_at,
       'exif', 'scored', a.correlation_id, a.id, a.started_at
FROM alerts a JOIN inbound_emails e ON e.correlation_id = a.correlation_id;

UPDATE alerts a SET best_image_id = i.id FROM images i WHERE i.alert_id = a.id;

INSERT INTO detections (image_id, category, conf, bbox_x, bbox_y, bbox_w, bbox_h)
SELECT i.id, a.categories[1], a.max_conf, 0.2, 0.3, 0.2, 0.4 FROM images i JOIN alerts a ON a.id = i.alert_id;

INSERT INTO deliveries (alert_id, channel_id, status, attempts, delivered_version, delivered_at)
SELECT a.id, ch.id, 'delivered', 1, 1, a.created_at + interval '3 seconds'
FROM alerts a JOIN channels ch ON ch.park_id = a.park_id;

INSERT INTO feedback (park_id, camera_id, alert_id, verdict, what, user_name, user_role)
SELECT park_id, camera_id, id, (ARRAY['confirmed', 'false_positive', 'unsure'])[1 + id %% 3],
       CASE WHEN id %% 3 = 1 THEN 'stump' END, 'ranger-' || (id %% 7), 'ranger'
FROM alerts WHERE id %% 5 = 0;

INSERT INTO audit_log (actor, actor_role, via, action, park_id, target, details)
SELECT 'ranger-' || (g %% 7), 'ranger', 'console', 'feedback.recorded', 1 + g %% %(parks)s, 'alert:' || g,
       '{"verdict": "confirmed"}' FROM generate_series(1, %(alerts)s) g;
ANALYZE;
"""


def _photo() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (320, 240), (70, 90, 70)).save(out, "JPEG")
    return out.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=500)
    ap.add_argument("--alerts", type=int, default=10_000)
    ap.add_argument("--parks", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--browser", action="store_true", help="also time full page loads in headless Chromium")
    ap.add_argument("--shots", type=Path, help="save a screenshot of the big map here (with --browser)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="console-bench-"))
    pg = EmbeddedPostgres(work / "pg", free_port()).start()
    az = Azurite(work / "azurite", free_port(), free_port(), free_port()).start()
    host = None
    try:
        db = Database(pg.url)
        migrate(db)
        storage = Storage(connection_string=az.connection_string)
        storage.ensure_resources()
        storage.put_blob(names.IMAGES_CONTAINER, "bench/photo.jpg", _photo(), content_type="image/jpeg")
        t0 = time.perf_counter()
        db.execute(SEED, {"parks": args.parks, "cameras": args.cameras, "alerts": args.alerts})
        seed_s = time.perf_counter() - t0
        host = HostProcess(
            script_root=PROJECT_ROOT,
            env=host_env(az.connection_string, pg.url),
            port=free_port(),
            log_path=work / "host.log",
        ).start()
        token = new_token()
        ConsoleRepository(db).add_link(token, "bench", "admin", 600, created_by="bench")
        base = f"{host.url}/api/console"
        client = httpx.Client(timeout=30)
        client.get(f"{base}/login")
        r = client.post(
            f"{base}/login",
            json={"token": token},
            headers={"Origin": host.url, "X-CSRF-Token": client.cookies.get("ta_csrf") or ""},
        )
        r.raise_for_status()
        alert_id = db.fetchone("SELECT max(id) AS id FROM alerts")["id"]
        cam_id = db.fetchone("SELECT min(id) AS id FROM cameras")["id"]
        targets = [
            ("page map (500 cameras)", "map"),
            ("api map", "data/map"),
            ("page alerts (newest 50)", "alerts"),
            ("api alerts (newest 50)", "data/alerts"),
            ("api alerts, one camera", f"data/alerts?camera={cam_id}"),
            ("api alerts, vehicles, false positives", "data/alerts?category=vehicle&state=false_positive"),
            ("api alerts, page 100 (keyset)", f"data/alerts?before={alert_id - 5000}"),
            ("page alert", f"alerts/{alert_id}"),
            ("api poll (no change: 304)", None),
            ("page precision", "precision"),
            ("page cameras", "cameras"),
            ("page audit log", "audit"),
            ("page ops", "ops"),
        ]
        etag = client.get(f"{base}/data/alerts").headers["ETag"]
        print(
            f"# console load: {args.cameras} cameras, {args.alerts} alerts, {args.parks} parks "
            f"(seeded in {seed_s:.1f} s); {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
        )
        print(f"{'what':<42} {'median ms':>10} {'max ms':>8} {'bytes':>9}")
        results = {}
        for label, path in targets:
            samples, size = [], 0
            for _ in range(args.repeat):
                started = time.perf_counter()
                if path is None:
                    resp = client.get(f"{base}/data/alerts", headers={"If-None-Match": etag})
                    assert resp.status_code == 304, resp.status_code
                else:
                    resp = client.get(f"{base}/{path}")
                    assert resp.status_code == 200, (path, resp.status_code, resp.text[:200])
                samples.append((time.perf_counter() - started) * 1000)
                size = len(resp.content)
            results[label] = (statistics.median(samples), max(samples))
            print(f"{label:<42} {statistics.median(samples):>10.0f} {max(samples):>8.0f} {size:>9}")
        if args.browser:
            _browser(host.url, token_for(db), work, args, alert_id)
        worst = max(m for m, _ in results.values())
        print(f"\nslowest median: {worst:.0f} ms (target < 1000 ms)")
        print(json.dumps({k: [round(a), round(b)] for k, (a, b) in results.items()}))
    finally:
        if host is not None:
            host.stop(timeout_s=10)
        az.stop()
        pg.stop("immediate")


def token_for(db) -> str:
    token = new_token()
    ConsoleRepository(db).add_link(token, "bench-browser", "admin", 600, created_by="bench")
    return token


def _browser(url: str, token: str, work: Path, args, alert_id: int) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={work / 'chromium'}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"{url}/api/console/login#t={token}")
        deadline = time.time() + 20
        while not driver.current_url.endswith("/map") and time.time() < deadline:
            time.sleep(0.05)
        print(f"\n{'browser: full load':<42} {'median ms':>10} {'max ms':>8}")
        for label, path, ready in (
            ("map, 500 markers drawn", "map", "return document.querySelectorAll('circle.marker').length"),
            ("alerts feed", "alerts", "return document.querySelectorAll('li.alert-item').length"),
            ("alert page", f"alerts/{alert_id}", "return document.querySelectorAll('rect.box').length"),
        ):
            samples = []
            for _ in range(max(3, args.repeat // 2)):
                started = time.perf_counter()
                driver.get(f"{url}/api/console/{path}")
                while not driver.execute_script(ready):
                    time.sleep(0.01)
                samples.append((time.perf_counter() - started) * 1000)
            print(f"{label:<42} {statistics.median(samples):>10.0f} {max(samples):>8.0f}")
        if args.shots:
            driver.get(f"{url}/api/console/map")
            time.sleep(0.5)
            args.shots.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.shots / "map-500.png"))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
