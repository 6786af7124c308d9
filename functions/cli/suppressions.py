"""`trapalert suppressions list|lift`: static false positives (a stump, a rock) that no longer alert."""

from __future__ import annotations

import getpass

import click

from ..adapters.suppressions_repo import SuppressionsRepository
from .base import cli, db, echo_json, echo_table


@cli.group("suppressions", help="Boxes suppressed as static false positives (see docs/rules.md).")
def suppressions() -> None:
    pass


@suppressions.command("list")
@click.option("--park", help="park slug")
@click.option(
    "--all", "include_all", is_flag=True, help="also boxes still being watched (not yet suppressed)"
)
@click.option("--json", "as_json", is_flag=True)
def suppressions_list(park, include_all, as_json) -> None:
    rows = SuppressionsRepository(db()).suppressions(park, include_all)
    for r in rows:
        r["bbox"] = [round(float(r.pop(k)), 3) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")]
    if as_json:
        echo_json(rows)
    else:
        echo_table(rows, ["id", "park", "camera", "status", "event_count", "bbox", "suppressed_at", "reason"])


@suppressions.command("lift")
@click.argument("suppression_id", type=int)
@click.option("--note", help="why (e.g. 'real gate, people pass here')")
def suppressions_lift(suppression_id, note) -> None:
    """Lift a suppression: detections at that place alert again, and it is never suppressed again."""
    try:
        who = getpass.getuser()
    except Exception:  # noqa: BLE001
        who = None
    row = SuppressionsRepository(db()).lift(suppression_id, who, note)
    if row is None:
        raise click.ClickException(
            f"no suppressed box with id {suppression_id} (see `trapalert suppressions list`)"
        )
    click.echo(f"suppression {suppression_id} lifted")
