"""`trapalert plan` and what it is built on: the sizing formula (domain/capacity.py), the dated tables
(functions/cost/*.json), the park and batch estimates (functions/cost/estimate.py) and the CLI.

No services: pure arithmetic over the repo's tables."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from functions.cli.base import cli
from functions.cost import tables
from functions.cost.estimate import DEFAULT_DEPLOYMENT, deployment_with, estimate_batch, estimate_park
from functions.domain.capacity import (
    SECONDS_PER_MONTH,
    Deployment,
    ParkProfile,
    PlanError,
    monthly_cost,
    queue_polls,
    size_containers,
    time_to_finish_s,
)

RHINO = [
    "plan",
    "--json",
    "--target-rps",
    "20",
    "--seconds-per-request",
    "10",
    "--utilization",
    "0.7",
    "--per-container",
    "1",
    "--cores-per-node",
    "16",
]


def run(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


# --- the rhino pipeline's formula -------------------------------------------------------------------------


def test_the_rhino_example_reproduces_exactly_from_the_cli():
    result = run(*RHINO)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["mode"], data["containers"], data["nodes"]) == ("sizing", 286, 18)
    text = run(*[a for a in RHINO if a != "--json"]).output
    assert "286 containers" in text and "18 nodes" in text


def test_the_formula_is_exact_at_a_boundary_where_binary_floats_are_not():
    assert 2.1 / 0.7 > 3  # the float trap: 3.0000000000000004
    assert size_containers(2.1, 1, 0.7).containers == 3
    assert size_containers(0.1, 3, 0.3).containers == 1  # 0.1 x 3 / 0.3 is 1.0000000000000002 in floats
    assert size_containers(16, 1, 1, cores_per_node=16).nodes == 1
    assert size_containers(17, 1, 1, cores_per_node=16).nodes == 2


def test_more_load_never_needs_fewer_containers_and_higher_utilization_never_more():
    previous = 0
    for rps in [0, 0.1, 1, 2.5, 7, 20, 33.3, 100]:
        n = size_containers(rps, 10, 0.7).containers
        assert n >= previous
        previous = n
    by_util = [size_containers(20, 10, u).containers for u in (0.3, 0.5, 0.7, 0.9, 1.0)]
    assert by_util == sorted(by_util, reverse=True) and by_util[-1] == 200
    assert size_containers(20, 10, 0.7, per_container=4).containers == math.ceil(286 / 4 - 1e-9) == 72


@pytest.mark.parametrize(
    "kwargs",
    [
        {"utilization": 0},
        {"utilization": -0.5},
        {"utilization": 1.01},
        {"target_rps": -1},
        {"seconds_per_request": 0},
        {"per_container": 0},
        {"per_container": 1.5},
        {"cores_per_node": 0},
        {"cores_per_container": 32},
    ],
)
def test_inputs_outside_their_domain_are_refused(kwargs):
    args = dict(target_rps=20, seconds_per_request=10, utilization=0.7) | kwargs
    with pytest.raises(PlanError):
        size_containers(**args)


def test_the_cli_refuses_a_utilization_out_of_bounds_and_a_mode_mix():
    bad = run("plan", "--target-rps", "20", "--seconds-per-request", "10", "--utilization", "1.5")
    assert bad.exit_code != 0 and "utilization" in bad.output
    mixed = run("plan", "--target-rps", "20", "--seconds-per-request", "10", "--images", "5")
    assert mixed.exit_code != 0 and "one of" in mixed.output
    none = run("plan")
    assert none.exit_code != 0


# --- time to finish ----------------------------------------------------------------------------------------


def test_time_to_finish_zero_images_takes_no_time_and_grows_with_images():
    assert time_to_finish_s(0, 4.2, 1, startup_s=120) == 0
    times = [time_to_finish_s(n, 4.2, 2, startup_s=120) for n in (1, 10, 1000, 10_000)]
    assert times == sorted(times) and times[-1] == pytest.approx(120 + 10_000 / 8.4)
    assert time_to_finish_s(1000, 4.2, 4) < time_to_finish_s(1000, 4.2, 1)
    for bad in ({"images": -1}, {"replicas": 0}, {"images_per_s": 0}):
        with pytest.raises(PlanError):
            time_to_finish_s(**({"images": 10, "images_per_s": 1.0, "replicas": 1} | bad))


def test_estimate_batch_keys_and_numbers_for_an_empty_and_a_real_batch():
    empty = estimate_batch(0, "mdv1000-cedar", "cpu")
    assert empty["seconds_to_finish"] == 0 and empty["cost_usd"]["total"] == 0
    assert empty["usd_per_1000_images"] is None
    b = estimate_batch(10_000, "mdv1000-redwood", "gpu")
    assert set(b) >= {
        "images",
        "model",
        "compute",
        "hardware",
        "replicas",
        "images_per_s_per_replica",
        "throughput_basis",
        "startup_s",
        "seconds_to_finish",
        "finish",
        "detector_replica_hours",
        "cost_usd",
        "usd_per_1000_images",
        "storage_gb",
        "storage_usd_per_month",
        "prices_as_of",
        "region",
        "currency",
        "throughput_as_of",
        "unconfirmed_prices",
    }
    assert b["hardware"] == "gpu-t4" and b["seconds_to_finish"] == pytest.approx(120 + 10_000 / 4.2, abs=0.1)
    c = b["cost_usd"]
    assert c["total"] == pytest.approx(c["detector"] + c["functions"] + c["storage_transactions"], abs=1e-3)
    assert b["usd_per_1000_images"] == pytest.approx(c["total"] / 10, rel=1e-3)
    assert "containerapps.gpu.T4.replica_hour" in b["unconfirmed_prices"]
    # More replicas finish sooner; a faster model costs less for the same photos.
    assert (
        estimate_batch(10_000, "mdv1000-redwood", "gpu", replicas=4)["seconds_to_finish"]
        < b["seconds_to_finish"]
    )
    assert estimate_batch(10_000, "mdv1000-spruce", "gpu")["cost_usd"]["detector"] < c["detector"]


def test_unknown_models_and_computes_are_named_in_the_refusal():
    with pytest.raises(PlanError, match="known models"):
        estimate_batch(10, "mdv9", "gpu")
    with pytest.raises(PlanError, match="compute"):
        estimate_batch(10, "mdv5a", "tpu")
    out = run("plan", "--images", "10", "--model", "nope")
    assert out.exit_code != 0 and "known models" in out.output
    assert estimate_batch(10, "megadetector-v5a", "gpu")["model"] == "mdv5a"  # the catalogue's earlier name


def test_batch_cli_json_is_the_estimate():
    out = run("plan", "--json", "--images", "2500", "--model", "mdv1000-spruce", "--compute", "cpu")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data.pop("mode") == "batch"
    assert data == json.loads(json.dumps(estimate_batch(2500, "mdv1000-spruce", "cpu")))


# --- the park's month --------------------------------------------------------------------------------------


def _park(**kw):
    profile = ParkProfile(**({"cameras": 150, "photos_per_day": 40, "burst": 5, "night_share": 0.6} | kw))
    return estimate_park(profile, "mdv1000-redwood", "gpu")


def test_a_profiles_breakdown_adds_up():
    d = _park()
    lines_total = sum(line["usd"] for line in d["lines"])
    assert d["monthly_usd"]["total"] == pytest.approx(lines_total, abs=0.01)
    assert d["monthly_usd"]["total"] == pytest.approx(sum(d["monthly_usd"]["components"].values()), abs=0.05)
    assert set(d["monthly_usd"]["components"]) == {
        "functions",
        "storage transactions",
        "blob storage",
        "postgresql",
        "detector",
    }
    images = d["facts"]["images_per_month"]
    assert images == pytest.approx(150 * 40 * 730 / 24)
    assert d["usd_per_1000_images"] == pytest.approx(d["monthly_usd"]["total"] / images * 1000, rel=1e-3)


def test_queue_polling_is_counted_and_follows_max_polling_interval():
    d = _park()
    polls = next(line for line in d["lines"] if line["unit"] == "empty queue polls")
    assert polls["quantity"] == pytest.approx(DEFAULT_DEPLOYMENT.queues * SECONDS_PER_MONTH / 2)
    assert polls["usd"] > 0
    slow = queue_polls(Deployment(queues=6, max_polling_interval_s=60))
    fast = queue_polls(Deployment(queues=6, max_polling_interval_s=2))
    assert fast == 30 * slow == 6 * SECONDS_PER_MONTH / 2
    with pytest.raises(PlanError):
        queue_polls(Deployment(max_polling_interval_s=0))


def test_more_photos_cost_more_and_scale_to_zero_costs_less_when_quiet():
    small, big = (
        _park(photos_per_day=10)["monthly_usd"]["total"],
        _park(photos_per_day=400)["monthly_usd"]["total"],
    )
    assert big > small
    hw = tables.hardware("mdv1000-redwood", "gpu")
    rates = tables.rates()
    quiet = ParkProfile(cameras=5, photos_per_day=5)
    warm = monthly_cost(quiet, deployment_with(min_replicas=1), hw, rates)
    cold = monthly_cost(quiet, deployment_with(min_replicas=0), hw, rates)
    assert cold.by_component()["detector"] < warm.by_component()["detector"]
    assert cold.facts["cold_start_s"] == hw.startup_s and warm.facts["cold_start_s"] == 0
    # Scaling to zero saves nothing where triggers come every few seconds: a replica is up all month.
    busy = monthly_cost(
        ParkProfile(cameras=500, photos_per_day=100), deployment_with(min_replicas=0), hw, rates
    )
    assert busy.facts["hours_with_a_replica_up"] == pytest.approx(730, rel=1e-3)
    # A park with no photos still pays its fixed costs and has no cost per image.
    none = _park(cameras=0)
    assert none["usd_per_1000_images"] is None and none["monthly_usd"]["total"] > 0


def test_profile_inputs_outside_their_domain_are_refused():
    for bad in ({"night_share": 1.5}, {"burst": 0}, {"cameras": -1}):
        with pytest.raises(PlanError):
            _park(**bad)
    out = run("plan", "--cameras", "20", "--photos-per-day", "30", "--utilization", "0")
    assert out.exit_code != 0 and "utilization" in out.output


def test_park_cli_json_shape():
    out = run(
        "plan",
        "--json",
        "--cameras",
        "20",
        "--photos-per-day",
        "30",
        "--burst",
        "3",
        "--night-share",
        "0.7",
        "--model",
        "mdv1000-cedar",
        "--compute",
        "cpu",
        "--min-replicas",
        "1",
    )
    assert out.exit_code == 0, out.output
    d = json.loads(out.output)
    assert d["mode"] == "park" and d["hardware"] == "cpu-4vcpu"
    assert {
        "profile",
        "deployment",
        "detector",
        "monthly_usd",
        "usd_per_1000_images",
        "lines",
        "facts",
        "prices_as_of",
        "region",
        "currency",
        "unconfirmed_prices",
        "not_included",
    } <= set(d)
    for line in d["lines"]:
        assert set(line) == {"component", "quantity", "unit", "usd", "note"} and line["usd"] >= 0
    # Only the prices this estimate used are listed as unconfirmed.
    cpu = run(
        "plan",
        "--json",
        "--cameras",
        "20",
        "--photos-per-day",
        "30",
        "--compute",
        "cpu",
        "--model",
        "mdv1000-cedar",
        "--always-ready",
        "0",
    )
    unconfirmed = json.loads(cpu.output)["unconfirmed_prices"]
    assert "functions.flex.free_gb_s" in unconfirmed
    assert not [k for k in unconfirmed if k.startswith("containerapps.gpu.") or "always_ready" in k]
    gpu = _park()["unconfirmed_prices"]
    assert "containerapps.gpu.T4.replica_hour" in gpu and "functions.flex.free_gb_s" not in gpu
    text = run("plan", "--cameras", "20", "--photos-per-day", "30").output
    assert "per 1,000 images" in text and "as of" in text


# --- the tables --------------------------------------------------------------------------------------------


def test_every_price_is_dated_sourced_and_says_whether_it_was_confirmed():
    raw = json.loads(tables.PRICES_FILE.read_text(encoding="utf-8"))
    assert date.fromisoformat(raw["as_of"]) and raw["region"] and raw["currency"] == "USD"
    assert raw["prices"]
    for key, entry in raw["prices"].items():
        assert isinstance(entry["value"], int | float) and entry["value"] >= 0, key
        assert re.match(r"https://(azure\.microsoft\.com|learn\.microsoft\.com)/", entry["source"]), key
        assert isinstance(entry["confirmed"], bool), key
        assert entry["evidence"].strip() and entry["unit"].strip(), key
        if not entry["confirmed"]:
            assert re.search(r"not confirmed|derived|taken as", entry["evidence"], re.I), key
    tables.rates()  # every price the model needs is there
    for sku in ("Standard_B1ms", "Standard_D2ds_v5"):  # dev and prod (infra/parameters)
        tables.rates(postgres_sku=sku)


def test_every_throughput_row_has_a_basis_and_a_known_source():
    t = tables.throughput()
    assert date.fromisoformat(t.as_of)
    for row in t.rows:
        assert row["basis"] in {"measured", "published", "derived"}, row
        assert row["source"] in t.sources and row["hardware"] in t.hardware, row
        assert row["images_per_s"] > 0 and row.get("note"), row
    # Each serving model has a figure on each kind of replica.
    for model in ("mdv5a", "mdv1000-redwood", "mdv1000-cedar", "mdv1000-spruce"):
        for kind in t.hardware:
            t.row(model, kind)


# --- docs/cost.md shows what the commands print ------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "cost.md"
BLOCK = re.compile(r"```\n\$ (trapalert plan (?:[^\n]*\\\n)*[^\n]*)\n(.*?)```", re.S)


def test_the_outputs_in_docs_cost_md_are_what_the_commands_print_now():
    """Each ``$ trapalert plan ...`` block of docs/cost.md is compared with the command's output today.
    After a change of the tables, ``TRAPALERT_REGEN_DOCS=1`` rewrites the blocks (then reread the prose)."""
    text = DOC.read_text(encoding="utf-8")
    blocks = list(BLOCK.finditer(text))
    assert len(blocks) >= 10  # sizing x2, three parks and their variants, batches

    def fresh(match: re.Match) -> str:
        command = match.group(1)
        args = shlex.split(command.replace("\\\n", " "))[1:]
        result = run(*args)
        assert result.exit_code == 0, (command, result.output)
        return f"```\n$ {command}\n{result.output}```"

    regenerated = BLOCK.sub(fresh, text)
    if os.environ.get("TRAPALERT_REGEN_DOCS") == "1":
        DOC.write_text(regenerated, encoding="utf-8")
    assert regenerated == text, (
        "docs/cost.md is stale: rerun with TRAPALERT_REGEN_DOCS=1 and reread its prose"
    )
