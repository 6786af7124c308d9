"""`trapalert plan`: time and cost before anyone uploads (docs/cost.md).

Three modes, chosen by the options given:

    trapalert plan --target-rps 20 --seconds-per-request 10 --utilization 0.7 --per-container 1 \\
        --cores-per-node 16                                   # sizing: 286 containers, 18 nodes
    trapalert plan --cameras 150 --photos-per-day 40 --burst 5 --night-share 0.6 \\
        --model mdv1000-redwood --compute gpu --min-replicas 1     # a park's month, by component
    trapalert plan --images 100000 --model mdv1000-cedar --compute cpu   # a batch: time to finish and cost

`--json` prints the same as JSON. Prices and throughput come from functions/cost/prices.json and
throughput.json; the output says their date, and which prices could not be confirmed.
"""

from __future__ import annotations

import click

from ..domain.capacity import ParkProfile, PlanError, size_containers
from .base import cli, echo_json


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@cli.command("plan", help="Time and cost before upload: replicas (sizing), a park's month, or a batch.")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
# Sizing (the rhino pipeline's formula).
@click.option("--target-rps", type=float, help="sizing: target requests per second")
@click.option("--seconds-per-request", type=float, help="sizing: seconds one request takes")
@click.option(
    "--utilization",
    type=float,
    default=0.7,
    show_default=True,
    help="target busy share of a replica, in (0, 1]",
)
@click.option(
    "--per-container", type=int, default=1, show_default=True, help="sizing: requests per container"
)
@click.option("--cores-per-node", type=int, default=16, show_default=True, help="sizing: cores of one node")
@click.option(
    "--cores-per-container", type=float, default=1, show_default=True, help="sizing: cores a container uses"
)
# Park profile.
@click.option("--cameras", type=int, help="park: number of cameras")
@click.option("--photos-per-day", type=float, help="park: photos per camera per day")
@click.option("--burst", type=int, default=5, show_default=True, help="park: photos per trigger")
@click.option(
    "--night-share", type=float, default=0.5, show_default=True, help="park: share of photos at night"
)
@click.option(
    "--alert-share",
    type=float,
    default=0.05,
    show_default=True,
    help="park: share of bursts that open or update an alert",
)
@click.option("--photo-mb", type=float, default=2.0, show_default=True, help="park: MB per photo")
@click.option("--retention-days", type=int, default=90, show_default=True, help="park: days photos are kept")
@click.option(
    "--min-replicas", type=int, default=1, show_default=True, help="park: detector replicas kept warm"
)
@click.option(
    "--always-ready",
    type=int,
    default=3,
    show_default=True,
    help="park: Function always-ready instances (prod: 3)",
)
@click.option(
    "--max-polling-interval",
    type=float,
    default=2.0,
    show_default=True,
    help="park: host.json maxPollingInterval, seconds",
)
@click.option("--postgres-sku", default="Standard_D2ds_v5", show_default=True, help="park: PostgreSQL size")
@click.option(
    "--postgres-ha/--no-postgres-ha", default=True, show_default=True, help="park: zone-redundant HA"
)
@click.option("--postgres-gb", type=float, default=64, show_default=True, help="park: PostgreSQL storage GB")
# Batch.
@click.option("--images", type=int, help="batch: number of images to score")
@click.option("--replicas", type=int, default=1, show_default=True, help="batch: detector replicas")
# Both.
@click.option(
    "--model", default="mdv1000-redwood", show_default=True, help="detector model (trapalert model list)"
)
@click.option("--compute", type=click.Choice(["gpu", "cpu"]), default="gpu", show_default=True)
@click.option("--gpu", type=click.Choice(["T4", "A100"]), default="T4", show_default=True)
def plan(
    as_json: bool,
    target_rps,
    seconds_per_request,
    utilization,
    per_container,
    cores_per_node,
    cores_per_container,
    cameras,
    photos_per_day,
    burst,
    night_share,
    alert_share,
    photo_mb,
    retention_days,
    min_replicas,
    always_ready,
    max_polling_interval,
    postgres_sku,
    postgres_ha,
    postgres_gb,
    images,
    replicas,
    model,
    compute,
    gpu,
) -> None:
    modes = [
        m
        for m, given in (
            ("sizing", target_rps is not None),
            ("park", cameras is not None),
            ("batch", images is not None),
        )
        if given
    ]
    if len(modes) != 1:
        raise click.UsageError("give one of --target-rps (sizing), --cameras (park) or --images (batch)")
    try:
        if modes[0] == "sizing":
            if seconds_per_request is None:
                raise click.UsageError("--target-rps needs --seconds-per-request")
            s = size_containers(
                target_rps,
                seconds_per_request,
                utilization,
                per_container,
                cores_per_node,
                cores_per_container,
            )
            return _sizing(s, as_json)
        if modes[0] == "batch":
            from ..cost.estimate import estimate_batch

            return _batch(estimate_batch(images, model, compute, gpu, replicas), as_json)
        if photos_per_day is None:
            raise click.UsageError("--cameras needs --photos-per-day")
        from ..cost.estimate import deployment_with, estimate_park

        profile = ParkProfile(
            cameras=cameras,
            photos_per_day=photos_per_day,
            burst=burst,
            night_share=night_share,
            alert_share=alert_share,
            photo_mb=photo_mb,
            retention_days=retention_days,
        )
        deployment = deployment_with(
            min_replicas=min_replicas,
            always_ready_instances=always_ready,
            max_polling_interval_s=max_polling_interval,
            postgres_ha=postgres_ha,
            postgres_storage_gb=postgres_gb,
            utilization=utilization,
        )
        return _park(estimate_park(profile, model, compute, gpu, deployment, postgres_sku), as_json)
    except PlanError as exc:
        raise _fail(exc) from None


def _sizing(s, as_json: bool) -> None:
    data = dict(
        mode="sizing",
        **s.as_dict(),
        formula="containers = ceil(rps x seconds/request / utilization / per container); "
        "nodes = ceil(containers x cores/container / cores/node)",
    )
    if as_json:
        return echo_json(data)
    click.echo(f"{s.target_rps:g} req/s x {s.seconds_per_request:g} s = {s.busy:g} requests in flight")
    click.echo(
        f"/ utilization {s.utilization:g} / {s.per_container} per container -> {s.containers} containers"
    )
    click.echo(
        f"{s.containers} x {s.cores_per_container:g} cores / {s.cores_per_node} cores per node -> "
        f"{s.nodes} nodes"
    )


def _money(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0:
        return "$0"
    return f"${x:,.2f}" if abs(x) >= 0.1 else f"${x:,.4f}"


def _tables_footer(d: dict) -> None:
    click.echo(
        f"prices: {d['region']}, {d['currency']}, as of {d['prices_as_of']}; throughput as of "
        f"{d['throughput_as_of']} (functions/cost/*.json)"
    )
    if d["unconfirmed_prices"]:
        click.echo("not confirmed (check the source page): " + ", ".join(d["unconfirmed_prices"]))


def _batch(d: dict, as_json: bool) -> None:
    if as_json:
        return echo_json(dict(mode="batch", **d))
    click.echo(
        f"{d['images']:,} images, {d['model']} on {d['replicas']} x {d['hardware']} "
        f"({d['images_per_s_per_replica']:g} images/s each; {d['throughput_basis'].split(':')[0]})"
    )
    click.echo(
        f"time to finish: {d['finish']} ({d['seconds_to_finish']:,.0f} s, including a "
        f"{d['startup_s']:.0f} s cold start)"
    )
    c = d["cost_usd"]
    click.echo(
        f"cost: {_money(c['total'])} = detector {_money(c['detector'])} ({d['detector_replica_hours']:g} "
        f"replica-h) + functions {_money(c['functions'])} + storage transactions "
        f"{_money(c['storage_transactions'])}; {_money(d['usd_per_1000_images'])} per 1,000 images"
    )
    click.echo(
        f"then {d['storage_gb']:,.1f} GB of photos: {_money(d['storage_usd_per_month'])} per month kept"
    )
    _tables_footer(d)


def _park(d: dict, as_json: bool) -> None:
    if as_json:
        return echo_json(dict(mode="park", **d))
    p, f, det = d["profile"], d["facts"], d["detector"]
    click.echo(
        f"{p['cameras']:,} cameras x {p['photos_per_day']:g} photos/day = {f['images_per_month']:,.0f} "
        f"photos a month; bursts of {p['burst']}, {p['night_share']:.0%} at night"
    )
    click.echo(
        f"detector: {d['model']} on {d['hardware']} ({d['images_per_s_per_replica']:g} images/s per "
        f"replica); peak {det['peak_photos_per_s']:.3f} photos/s -> {det['replicas_at_peak']} replica(s); "
        f"a burst is scored in {det['burst_scored_s']:.1f} s"
        + (f"; cold start {det['cold_start_s']:.0f} s after a lull" if det["cold_start_s"] else "")
    )
    click.echo(f"{'component':<22} {'quantity':>16}  {'unit':<28} {'USD/month':>11}  note")
    for line in d["lines"]:
        click.echo(
            f"{line['component']:<22} {line['quantity']:>16,.0f}  {line['unit']:<28} "
            f"{line['usd']:>11,.2f}  {line['note']}"
        )
    click.echo(
        "by component: " + ", ".join(f"{k} {_money(v)}" for k, v in d["monthly_usd"]["components"].items())
    )
    click.echo(
        f"total: {_money(d['monthly_usd']['total'])} a month; {_money(d['usd_per_1000_images'])} per 1,000 "
        "images"
    )
    _tables_footer(d)
