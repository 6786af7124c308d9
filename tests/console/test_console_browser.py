"""The park console in headless Chromium (Debian's `chromium` + `chromium-driver`, Python `selenium`; no
browser download), against the real local Functions host running function_app.py, the real PostgreSQL and
Azurite, and the scoring service (null backend answering "person"). One host and one browser for the module.

Covers: sign-in by role through one-time links (a viewer cannot change anything, a ranger gives feedback, an
operator confirms a suppression proposal), the map with cameras, an alert arriving while the feed is open,
an upload of 20 photos from the page ending in an alert, and a phone-sized viewport.

Screenshots are taken only with $TRAPALERT_CONSOLE_SCREENSHOTS set (docs/img/console refreshes the ones in
docs/console.md)."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest

from functions.adapters.console_repo import ConsoleRepository
from functions.console.auth import new_token
from functions.localhost.services import PROJECT_ROOT, free_port
from tests.console.conftest import add_alert, jpeg, seed_park
from tests.support.host import HostProcess, host_env, wait_until, write_host_json
from tests.support.scoring_process import run_scoring_service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]
FAST = {"visibilityTimeout": "00:00:00", "maxPollingInterval": "00:00:00.200"}
DESKTOP = (1280, 900)
PHONE = (390, 844)


def _truncate(db) -> None:
    tables = [
        r["tablename"]
        for r in db.fetchall(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
    ]
    db.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")


@pytest.fixture(scope="module")
def world(db, storage, azurite, database_url, tmp_path_factory):
    """A seeded park, the scoring service and the local host (module-wide)."""
    _truncate(db)
    data = seed_park(db, storage, alerts=3)
    tmp = tmp_path_factory.mktemp("console-host")
    with run_scoring_service({"SCORING_BACKEND": "null", "SCORING_NULL_RESULT": "person"}) as scoring:
        host = HostProcess(
            script_root=PROJECT_ROOT,
            env=host_env(
                azurite.connection_string,
                database_url,
                SCORING_URL=str(scoring),
                PUBLIC_BASE_URL="http://127.0.0.1",
            ),
            port=free_port(),
            log_path=tmp / "host.log",
            host_json=write_host_json(tmp / "host.json", **FAST),
        ).start()
        try:
            yield {"db": db, "storage": storage, "host": host, **data}
        finally:
            host.stop(timeout_s=10)
            _truncate(db)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    assert not missing, f"{missing} not installed: apt-get install -y chromium chromium-driver"
    from selenium import webdriver  # pip install selenium (requirements-dev.txt)
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_window_size(*DESKTOP)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots() -> Path | None:
    """Where screenshots go: $TRAPALERT_CONSOLE_SCREENSHOTS (e.g. docs/img/console), else none are taken."""
    folder = os.environ.get("TRAPALERT_CONSOLE_SCREENSHOTS")
    if not folder:
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _shot(browser, shots: Path | None, name: str) -> None:
    """A PNG of the whole page (small: the window is resized to the page's height, at most 2000 px)."""
    if shots is None:
        return
    width = browser.get_window_size()["width"]
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(width, min(2000, max(500, height + 20)))
    browser.execute_script("window.scrollTo(0, 0)")
    png = browser.get_screenshot_as_png()
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:  # a palette PNG: a fraction of the size, same look
        img.convert("RGB").quantize(colors=96).save(shots / f"{name}.png", optimize=True)
    browser.set_window_size(width, DESKTOP[1] if width > 600 else PHONE[1])


def sign_in(browser, world, role: str, user: str) -> None:
    token = new_token()
    ConsoleRepository(world["db"]).add_link(token, user, role, 300, created_by="test")
    browser.get(f"{world['host'].url}/api/console/login#t={token}")
    wait_until(lambda: browser.current_url.endswith("/api/console/map"), timeout_s=15, message="the map")
    assert "#t=" not in browser.current_url
    assert browser.find_element("id", "role").text == role


def page(browser, world, path: str) -> None:
    browser.get(f"{world['host'].url}/api/console/{path}")


def _message(browser) -> str:
    return browser.find_element("id", "message").text


def test_a_viewer_sees_the_map_and_cannot_change_anything(browser, world, shots):
    from selenium.webdriver.common.by import By

    sign_in(browser, world, "viewer", "Vera")
    wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#map-svg circle.marker"),
        timeout_s=10,
        message="camera markers",
    )
    markers = {
        m.get_attribute("class") for m in browser.find_elements(By.CSS_SELECTOR, "#map-svg circle.marker")
    }
    assert markers == {"marker h-ok", "marker h-silent"}
    assert browser.find_elements(By.CSS_SELECTOR, "#map-svg .outline")  # drawn with no tile server at all
    assert browser.find_elements(By.CSS_SELECTOR, "#map-svg circle.alert-ring")  # gate-1 has alerts today
    gate_id = world["camera"]["id"]
    gate = browser.find_element(By.CSS_SELECTOR, f'#map-svg g.cam[data-camera="{gate_id}"] .marker')
    gate.click()
    assert "gate-1" in browser.find_element(By.ID, "camera-card").text
    _shot(browser, shots, "map")
    nav = browser.find_element(By.TAG_NAME, "nav").text
    assert "Alerts" in nav and "Cameras" not in nav and "Audit" not in nav
    page(browser, world, f"alerts/{world['alerts'][0]['id']}")
    assert browser.find_elements(By.ID, "feedback-readonly") and not browser.find_elements(By.ID, "feedback")
    page(browser, world, "cameras")
    assert "needs the operator role" in browser.find_element(By.ID, "forbidden").text
    # even a hand-made request from the page is refused by the server
    status = browser.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "fetch('/api/console/data/alerts/' + arguments[0] + '/feedback', {method: 'POST', headers: "
        "{'Content-Type': 'application/json', 'X-CSRF-Token': "
        "document.querySelector('meta[name=csrf-token]').content},"
        " body: JSON.stringify({verdict: 'confirmed'})}).then(function (r) { done(r.status); });",
        world["alerts"][0]["id"],
    )
    assert status == 403
    assert world["db"].fetchone("SELECT count(*) AS n FROM feedback")["n"] == 0


def test_an_alert_appears_while_the_feed_is_open(browser, world, shots):
    from selenium.webdriver.common.by import By

    page(browser, world, "alerts")
    before = [
        li.get_attribute("data-alert") for li in browser.find_elements(By.CSS_SELECTOR, "li.alert-item")
    ]
    assert len(before) == 3
    new = add_alert(world["db"], world["storage"], world["park"]["id"], world["camera"]["id"], photos=1)
    first = wait_until(
        lambda: (
            (items := browser.find_elements(By.CSS_SELECTOR, "li.alert-item"))
            and items[0].get_attribute("data-alert") == str(new["id"])
            and items[0]
        ),
        timeout_s=15,
        message="the new alert at the top of the feed",
    )
    assert "new" in first.get_attribute("class") and "gate-1" in first.text
    wait_until(
        lambda: browser.execute_script(
            "return Array.from(document.images).every(function (i) { return i.complete; })"
        ),
        timeout_s=10,
    )
    _shot(browser, shots, "alerts")


def test_a_ranger_gives_feedback(browser, world, shots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, world, "ranger", "Rita")
    alert = world["alerts"][0]["id"]
    page(browser, world, f"alerts/{alert}")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".photo rect.box")) == 2
    wait_until(
        lambda: browser.execute_script(
            "return Array.from(document.images).every(function (i) { return i.complete && i.naturalWidth > "
            "0; })"
        ),
        timeout_s=10,
        message="the photos",
    )
    browser.find_element(By.CSS_SELECTOR, "input[name=verdict][value=false_positive]").click()
    Select(browser.find_element(By.NAME, "what")).select_by_value("stump")
    browser.find_element(By.NAME, "note").send_keys("the stump by the gate <again>")
    browser.find_element(By.ID, "feedback-send").click()
    wait_until(lambda: "Feedback recorded" in _message(browser), timeout_s=10, message="the confirmation")
    row = world["db"].fetchone("SELECT * FROM feedback")
    assert (row["verdict"], row["what"], row["user_name"], row["user_role"], row["alert_id"]) == (
        "false_positive",
        "stump",
        "Rita",
        "ranger",
        alert,
    )
    assert row["note"] == "the stump by the gate <again>"
    _shot(browser, shots, "alert")


def test_an_operator_confirms_a_suppression_proposal(browser, world, shots):
    from selenium.webdriver.common.by import By

    images = world["alerts"][1]["image_ids"] + world["alerts"][2]["image_ids"]
    evidence = [{"event_id": None, "image_id": i, "at": None, "source": "seen"} for i in images]
    sid = world["db"].fetchone(
        "INSERT INTO suppressions (park_id, camera_id, category, bbox_x, bbox_y, bbox_w, bbox_h, "
        "event_count, "
        "max_conf, first_seen_at, last_seen_at, status, evidence, proposed_at, reason) VALUES (%s, %s, '2', "
        "0.2, "
        "0.3, 0.25, 0.5, 5, 0.91, now(), now(), 'proposed', %s::jsonb, now(), 'same box in 5 events') "
        "RETURNING id",
        (world["park"]["id"], world["camera"]["id"], json.dumps(evidence)),
    )["id"]
    sign_in(browser, world, "operator", "Olu")
    page(browser, world, "proposals")
    section = browser.find_element(By.ID, f"proposal-{sid}")
    assert len(section.find_elements(By.CSS_SELECTOR, ".thumbs img")) == 4
    _shot(browser, shots, "proposals")
    section.find_element(By.CSS_SELECTOR, "button.proposal-confirm").click()
    wait_until(
        lambda: section.find_element(By.CSS_SELECTOR, ".status").text == "suppressed",
        timeout_s=10,
        message="the proposal confirmed",
    )
    row = world["db"].fetchone("SELECT status, reviewed_by FROM suppressions WHERE id = %s", (sid,))
    assert row == {"status": "suppressed", "reviewed_by": "Olu"}


def test_an_upload_of_20_photos_ends_in_an_alert(browser, world, shots, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    db = world["db"]
    cam = world["quiet"]  # river-2: no alert yet
    files = []
    for i in range(20):
        f = tmp_path / f"IMG_{i:04d}.JPG"
        f.write_bytes(jpeg(640, 480, shade=40 + i, mark=i + 1))
        files.append(str(f))
    page(browser, world, "upload")
    Select(browser.find_element(By.NAME, "camera")).select_by_value(str(cam["id"]))
    browser.find_element(By.ID, "upload-files").send_keys("\n".join(files))
    browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()
    wait_until(
        lambda: len(browser.find_elements(By.CSS_SELECTOR, "#upload-progress li.done")) == 20,
        timeout_s=60,
        message="20 files uploaded",
    )
    assert not browser.find_elements(By.CSS_SELECTOR, "#upload-progress li.failed")
    assert "Uploaded 20 of 20" in _message(browser)
    _shot(browser, shots, "upload")
    alert = wait_until(
        lambda: db.fetchone(
            "SELECT a.id, a.image_count FROM alerts a WHERE a.camera_id = %s AND a.kind = 'detection'",
            (cam["id"],),
        ),
        timeout_s=60,
        message="the alert from the uploaded photos",
    )
    uploaded = db.fetchone(
        "SELECT count(*) AS n, min(sender) AS who FROM inbound_emails WHERE mode = 'upload'"
    )
    assert uploaded == {"n": 20, "who": "Olu"}
    page(browser, world, "alerts")
    wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, f'li.alert-item[data-alert="{alert["id"]}"]'),
        timeout_s=10,
        message="the upload's alert in the feed",
    )


def test_admin_pages_and_a_phone_sized_viewport(browser, world, shots):
    from selenium.webdriver.common.by import By

    sign_in(browser, world, "admin", "Ada")
    for name in ("cameras", "rules", "channels", "precision", "audit", "ops"):
        page(browser, world, name)
        assert browser.find_element(By.TAG_NAME, "h1").text, name
        _shot(browser, shots, name)
    page(browser, world, "audit")
    actions = browser.find_element(By.ID, "audit").text
    assert (
        "feedback.recorded" in actions and "suppression.confirmed" in actions and "console.signin" in actions
    )
    browser.set_window_size(*PHONE)
    try:
        for name in ("map", "alerts", f"alerts/{world['alerts'][0]['id']}"):
            page(browser, world, name)
            wait_until(
                lambda: browser.execute_script("return document.readyState") == "complete", timeout_s=10
            )
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, (name, overflow)
        page(browser, world, "map")
        wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#map-svg circle.marker"), timeout_s=10)
        svg_width = browser.find_element(By.ID, "map-svg").size["width"]
        assert 300 <= svg_width <= PHONE[0]
        _shot(browser, shots, "phone-map")
        page(browser, world, "alerts")
        _shot(browser, shots, "phone-alerts")
    finally:
        browser.set_window_size(*DESKTOP)
