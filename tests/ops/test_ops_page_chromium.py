"""The ops page lives in the park console, under the admin role: headless Chromium (Debian's `chromium` +
`chromium-driver`, Python `selenium`; the console tests' browser fixture) against the real Functions host
running function_app.py plus the drill queue (tests/ops/drill_app), PostgreSQL and Azurite.

A message is really poisoned by the host (its receiver answers 500 until the cause is "fixed"); an admin
signs in through a one-time link printed by `trapalert console login-url`; the console's ops page lists the
message; its Replay button (the admin's session + the CSRF token, audited) puts it back on its queue, where it
is delivered once. A viewer, a ranger and an operator can neither see the page nor replay (the server answers
403, whatever the browser does). No master key is used anywhere.

Needs: apt-get install -y chromium chromium-driver; pip install selenium. Missing pieces fail the test."""

from __future__ import annotations

import json
import time
import uuid

from tests.console.test_console_browser import browser  # noqa: F401 - the console tests' Chromium
from tests.ops.conftest import DRILL_QUEUE, console_post, console_session, poison_rows
from tests.support.host import FUNCTION_KEY, MASTER_KEY, wait_until

REPLAY_FROM_THE_PAGE = (  # a hand-made request from the signed-in page: the console's own origin and cookies
    "var done = arguments[arguments.length - 1];"
    "var h = {'Content-Type': 'application/json'};"
    "if (arguments[1]) { h['X-CSRF-Token'] = document.querySelector('meta[name=csrf-token]').content; }"
    "fetch('/api/console/data/ops/poison/' + arguments[0] + '/replay', {method: 'POST', headers: h,"
    " body: '{}'}).then(function (r) { done(r.status); });"
)


def login_url(host, user: str, role: str) -> str:
    """The one-time link `trapalert console login-url` prints (token in the #fragment)."""
    from click.testing import CliRunner

    from functions.cli import cli

    args = ["console", "login-url", "--user", user, "--role", role, "--ttl", "5m", "--base-url", host.url]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    url = result.output.strip().splitlines()[0]
    assert url.startswith(f"{host.url}/api/console/login#t=")
    return url


def sign_in(browser, host, user: str, role: str) -> None:  # noqa: F811 - the fixture's value
    browser.get(login_url(host, user, role))
    wait_until(lambda: browser.current_url.endswith("/api/console/map"), timeout_s=15, message="signed in")
    assert "#t=" not in browser.current_url
    assert browser.find_element("id", "role").text == role


def test_the_console_ops_page_shows_a_poisoned_message_and_an_admin_replays_it(
    app_settings,
    drill_host,
    drill_hook,
    db,
    storage,
    browser,  # noqa: F811 - the fixture imported above
):
    from selenium.webdriver.common.by import By

    cid = str(uuid.uuid4())
    storage.enqueue(DRILL_QUEUE, json.dumps({"schema_version": 1, "correlation_id": cid, "n": 7}))
    record = wait_until(lambda: poison_rows(db), timeout_s=20, message="the poison record")[0]
    rid = record["id"]
    assert record["status"] == "poisoned"

    # 1. No role below admin sees the page or replays, whatever it sends (valid session, CSRF and Origin).
    for role in ("viewer", "ranger", "operator"):
        client = console_session(drill_host, db, role)
        page = client.get("ops")
        assert page.status_code == 403 and "needs the <b>admin</b> role" in page.text, role
        assert f'id="poison-{rid}"' not in page.text and cid not in page.text
        refused = console_post(client, drill_host, f"data/ops/poison/{rid}/replay")
        assert refused.status_code == 403 and "needs admin" in refused.json()["error"], role
    sign_in(browser, drill_host, "Olu", "operator")
    assert "Ops" not in browser.find_element(By.TAG_NAME, "nav").text
    browser.get(f"{drill_host.url}/api/console/ops")
    assert "needs the admin role" in browser.find_element(By.ID, "forbidden").text
    assert browser.execute_async_script(REPLAY_FROM_THE_PAGE, rid, True) == 403
    assert poison_rows(db)[0]["status"] == "poisoned" and not drill_hook.deliveries

    # 2. The cause is fixed; the admin signs in with a one-time link and opens Ops from the menu.
    drill_hook.recover()
    sign_in(browser, drill_host, "Ada", "admin")
    browser.find_element(By.LINK_TEXT, "Ops").click()
    wait_until(lambda: browser.find_elements(By.ID, f"poison-{rid}"), timeout_s=10, message="the ops page")
    assert browser.current_url == f"{drill_host.url}/api/console/ops"
    row = browser.find_element(By.ID, f"poison-{rid}")
    assert row.find_element(By.CSS_SELECTOR, ".status").text == "poisoned"
    assert DRILL_QUEUE in row.text and cid in row.text and "HTTPStatusError" in row.text
    source = browser.page_source
    assert MASTER_KEY not in source and FUNCTION_KEY not in source

    # Without the CSRF token even the admin's own session cannot replay.
    assert browser.execute_async_script(REPLAY_FROM_THE_PAGE, rid, False) == 403
    assert poison_rows(db)[0]["status"] == "poisoned"

    # 3. Replay: the message goes back on its queue and is delivered, once, with its correlation id.
    row.find_element(By.CSS_SELECTOR, "button.replay").click()
    wait_until(
        lambda: row.find_element(By.CSS_SELECTOR, ".status").text == "replayed",
        timeout_s=10,
        message="the row to say replayed",
    )
    assert f"Replayed {rid} onto {DRILL_QUEUE}" in browser.find_element(By.ID, "message").text
    wait_until(lambda: drill_hook.deliveries, timeout_s=10, message="the replayed message delivered")
    time.sleep(0.5)  # a second delivery would come within this
    assert [d["correlation_id"] for d in drill_hook.deliveries] == [cid]
    after = poison_rows(db)
    assert len(after) == 1 and after[0]["status"] == "replayed" and after[0]["replay_message_id"]
    audited = db.fetchall(
        "SELECT actor, actor_role, via, target FROM audit_log WHERE action = 'poison.replayed'"
    )
    assert audited == [{"actor": "Ada", "actor_role": "admin", "via": "console", "target": f"poison:{rid}"}]

    # Reloaded, the page no longer offers Replay for it.
    browser.get(f"{drill_host.url}/api/console/ops")
    row = browser.find_element(By.ID, f"poison-{rid}")
    assert row.find_element(By.CSS_SELECTOR, ".status").text == "replayed"
    assert not row.find_elements(By.CSS_SELECTOR, "button.replay")
