"""The queues function_app.py really binds to (its own metadata) exist in the Bicep, and the reverse.

function_app.py is imported in a child process: importing it registers the functions, and
`app.get_functions()` may be called once per app object, so a child keeps other tests' imports clean.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from functions import names
from tests.infra.conftest import INFRA, ROOT, parse_bicep

PROBE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import function_app
out = []
for f in function_app.app.get_functions():
    out.append({"name": f.get_function_name(),
                "bindings": [b.get_dict_repr() for b in f.get_bindings()]})
print(json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def functions_metadata() -> list[dict]:
    assert (ROOT / "function_app.py").is_file(), "function_app.py is missing"
    env = dict(os.environ)
    # Enough settings for an import that reads them; the child never talks to them.
    env.setdefault("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    env.setdefault("SCORING_URL", "http://127.0.0.1:9")
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, f"importing function_app.py failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def queue_bindings(metadata: list[dict], kinds: tuple[str, ...]) -> set[str]:
    return {
        b["queueName"]
        for f in metadata
        for b in f["bindings"]
        if b.get("type") in kinds and b.get("queueName")
    }


def bicep_queues() -> set[str]:
    return set(parse_bicep(INFRA / "main.bicep")["variables"]["queueNames"]["value"])


def test_triggered_queues_exist_in_bicep(functions_metadata):
    triggers = queue_bindings(functions_metadata, ("queueTrigger",))
    assert triggers, "function_app.py declares no queue trigger"
    assert triggers <= bicep_queues(), f"queues without a Bicep resource: {triggers - bicep_queues()}"


def test_every_work_queue_has_a_consumer(functions_metadata):
    triggers = queue_bindings(functions_metadata, ("queueTrigger",))
    assert set(names.WORK_QUEUES) <= triggers, f"queues nobody reads: {set(names.WORK_QUEUES) - triggers}"


def test_output_queues_exist_in_bicep(functions_metadata):
    outputs = queue_bindings(functions_metadata, ("queue",))
    assert outputs <= bicep_queues(), f"output queues without a Bicep resource: {outputs - bicep_queues()}"


def test_inbound_route_is_served(functions_metadata):
    routes = {
        b.get("route")
        for f in functions_metadata
        for b in f["bindings"]
        if b.get("type") == "httpTrigger"
    }
    assert names.INBOUND_ROUTE in routes


def test_the_master_key_guards_only_the_json_admin_api(functions_metadata):
    """No page for people behind the master key: they use the console's ops page (admin role, issue 14);
    the key is for the JSON admin API that automation calls."""
    admin_routes = {
        b.get("route")
        for f in functions_metadata
        for b in f["bindings"]
        if b.get("type") == "httpTrigger" and str(b.get("authLevel")).upper().endswith("ADMIN")
    }
    assert admin_routes == {"ops/{*path}"}
    functions = {f["name"] for f in functions_metadata}
    assert "ops-page" not in functions and {"ops-api", "console"} <= functions


def test_always_ready_names_are_real_functions(functions_metadata, parameters):
    functions = {f["name"] for f in functions_metadata}
    for env in ("dev", "prod"):
        for entry in parameters[env]["functionAlwaysReady"]:
            if entry["name"].startswith("function:"):
                name = entry["name"].split(":", 1)[1]
                assert name in functions, f"{env}: always-ready {entry['name']} is not in {functions}"
