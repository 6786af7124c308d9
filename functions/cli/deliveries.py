"""`trapalert deliveries list|redeliver`: alerts a channel refused for good, waiting for an operator."""

from __future__ import annotations

import click

from ..adapters.audit_repo import audit_cli
from ..ops import deliveries as ops_deliveries
from .base import cli, db, echo_json, echo_table, services


@cli.group(
    "deliveries", help="Deliveries a channel refused for good (credentials, event type): list, redeliver."
)
def deliveries() -> None:
    pass


@deliveries.command("list")
@click.option("--park", help="park slug")
@click.option("--channel", help="channel name")
@click.option("--limit", type=int, default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def deliveries_list(park, channel, limit, as_json) -> None:
    rows = ops_deliveries.list_failures(db(), park, channel, limit)
    if as_json:
        echo_json(rows)
        return
    echo_table(rows, ["id", "park", "channel", "kind", "alert_id", "version", "failed_at", "error"])
    for fix in sorted({r["fix"] for r in rows if r.get("fix")}):
        click.echo(f"to fix: {fix}")


@deliveries.command("redeliver")
@click.option("--park", help="park slug")
@click.option("--channel", help="channel name")
@click.option("--alert", "alert_id", type=int, help="one alert")
def deliveries_redeliver(park, channel, alert_id) -> None:
    """Send again what a channel refused, once its cause is fixed (each channel gets each alert once)."""
    if not (park or channel or alert_id):
        raise click.UsageError("name what to redeliver: --channel, --park and/or --alert")
    out = ops_deliveries.redeliver(services(), park, channel, alert_id)
    audit_cli(
        services().db,
        "deliveries.redelivered",
        park=park,
        target=f"channel:{channel}" if channel else (f"alert:{alert_id}" if alert_id else None),
        details={"alert_id": alert_id, "redelivered": out["redelivered"]},
    )
    click.echo(f"{out['redelivered']} deliveries redelivered ({out['sent']} messages on the queue)")
