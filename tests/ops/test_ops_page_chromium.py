"""The ops page in headless Chromium (Debian's `chromium` + `chromium-driver`, Python `selenium`): it loads,
shows a message the test poisoned through the real host, and its Replay button puts it back on its queue.

Needs: apt-get install -y chromium chromium-driver; pip install selenium. Missing pieces fail the test."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid

import pytest

from tests.ops.conftest import DRILL_QUEUE, poison_rows
from tests.support.host import MASTER_KEY, wait_until

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
    "--window-size=390,844",
]


def _require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    assert not missing, f"{missing} not installed: apt-get install -y chromium chromium-driver"


@pytest.fixture
def browser(tmp_path):
    _require_browser()
    from selenium import webdriver  # pip install selenium (requirements-dev.txt)
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_ops_page_shows_a_poisoned_message_and_replays_it(
    drill_host, drill_hook, db, storage, browser, tmp_path
):
    from selenium.webdriver.common.by import By

    cid = str(uuid.uuid4())
    storage.enqueue(DRILL_QUEUE, json.dumps({"schema_version": 1, "correlation_id": cid, "n": 7}))
    record = wait_until(lambda: poison_rows(db), timeout_s=20, message="the poison record")[0]
    url = drill_host.api("ops") + f"?code={MASTER_KEY}"

    # 1. The page loads in plain headless Chromium (no driver) and lists the record.
    started = time.monotonic()
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'dump-profile'}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert f'id="poison-{record["id"]}"' in dom and cid in dom and DRILL_QUEUE in dom
    assert time.monotonic() - started < 30

    # 2. The cause is fixed; the operator presses Replay on a phone-sized window.
    drill_hook.recover()
    browser.get(url)
    assert browser.title == "TrapAlert ops"
    row = browser.find_element(By.ID, f"poison-{record['id']}")
    assert row.find_element(By.CSS_SELECTOR, ".status").text == "poisoned"
    assert "HTTPStatusError" in row.text
    row.find_element(By.CSS_SELECTOR, "button.replay").click()
    wait_until(
        lambda: row.find_element(By.CSS_SELECTOR, ".status").text == "replayed",
        timeout_s=10,
        message="the row to say replayed",
    )
    assert "onto ops-drill" in browser.find_element(By.ID, "message").text

    wait_until(lambda: drill_hook.deliveries, timeout_s=10, message="the replayed message delivered")
    time.sleep(0.5)
    assert [d["correlation_id"] for d in drill_hook.deliveries] == [cid]
    after = poison_rows(db)
    assert len(after) == 1 and after[0]["status"] == "replayed" and after[0]["replay_message_id"]

    # Reloaded, the page no longer offers Replay for it.
    browser.get(url)
    row = browser.find_element(By.ID, f"poison-{record['id']}")
    assert row.find_element(By.CSS_SELECTOR, ".status").text == "replayed"
    assert not row.find_elements(By.CSS_SELECTOR, "button.replay")
