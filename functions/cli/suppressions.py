"""`trapalert suppressions list|show|confirm|reject|lift`: static false positives (a stump, a rock) that no
longer alert, and the proposals (people, vehicles) that wait for an operator (docs/rules.md)."""

from __future__ import annotations

import click

from ..adapters.audit_repo import cli_actor
from ..adapters.suppressions_repo import SuppressionsRepository
from .base import cli, db, echo_json, echo_table


@cli.group("suppressions", help="Static false positives: proposed, suppressed, lifted (see docs/rules.md).")
def suppressions() -> None:
    pass


def _shape(r: dict) -> dict:
    r["bbox"] = [round(float(r.pop(k)), 3) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")]
    r.pop("evidence", None)
    return r


@suppressions.command("list")
@click.option("--park", help="park slug")
@click.option("--proposed", is_flag=True, help="only proposals waiting for an operator")
@click.option(
    "--all", "include_all", is_flag=True, help="also boxes still being watched and rejected proposals"
)
@click.option("--json", "as_json", is_flag=True)
def suppressions_list(park, proposed, include_all, as_json) -> None:
    repo = SuppressionsRepository(db())
    rows = repo.proposals(park) if proposed else repo.suppressions(park, include_all)
    rows = [_shape(r) for r in rows]
    if as_json:
        echo_json(rows)
    else:
        echo_table(
            rows, ["id", "park", "camera", "status", "event_count", "fp_count", "bbox", "image_ids", "reason"]
        )


@suppressions.command("show")
@click.argument("suppression_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def suppressions_show(suppression_id, as_json) -> None:
    """One box with the photos it is based on."""
    repo = SuppressionsRepository(db())
    row = repo.get(suppression_id)
    if row is None:
        raise click.ClickException(f"no suppression {suppression_id}")
    row = _shape(row) | {"photos": repo.photos(suppression_id)}
    if as_json:
        echo_json(row)
        return
    for k in ("id", "park", "camera", "status", "category", "bbox", "event_count", "fp_count", "reason"):
        click.echo(f"{k}: {row.get(k)}")
    echo_table(row["photos"], ["image_id", "event_id", "source", "at", "alert_id", "blob_name"])


def _review(action: str, suppression_id: int, note: str | None, actor: str | None) -> None:
    repo = SuppressionsRepository(db())
    fn = repo.confirm if action == "confirm" else repo.reject
    row = fn(suppression_id, actor=cli_actor(actor), actor_role="operator", via="cli", note=note)
    if row is None:
        raise click.ClickException(
            f"no proposed suppression with id {suppression_id} (see `trapalert suppressions list --proposed`)"
        )
    click.echo(f"suppression {suppression_id} {row['status']}")


@suppressions.command("confirm")
@click.argument("suppression_id", type=int)
@click.option("--note", help="why")
@click.option("--actor", help="who (default: $TRAPALERT_ACTOR or the OS user)")
def suppressions_confirm(suppression_id, note, actor) -> None:
    """Confirm a proposal: detections inside the box stop alerting."""
    _review("confirm", suppression_id, note, actor)


@suppressions.command("reject")
@click.argument("suppression_id", type=int)
@click.option("--note", help="why (e.g. 'footpath: people really pass here')")
@click.option("--actor", help="who (default: $TRAPALERT_ACTOR or the OS user)")
def suppressions_reject(suppression_id, note, actor) -> None:
    """Reject a proposal: the place keeps alerting and is never proposed again."""
    _review("reject", suppression_id, note, actor)


@suppressions.command("lift")
@click.argument("suppression_id", type=int)
@click.option("--note", help="why (e.g. 'real gate, people pass here')")
@click.option("--actor", help="who (default: $TRAPALERT_ACTOR or the OS user)")
def suppressions_lift(suppression_id, note, actor) -> None:
    """Lift a suppression: detections at that place alert again, and it is never suppressed again."""
    row = SuppressionsRepository(db()).lift(suppression_id, cli_actor(actor), note, actor_role="operator")
    if row is None:
        raise click.ClickException(
            f"no suppressed box with id {suppression_id} (see `trapalert suppressions list`)"
        )
    click.echo(f"suppression {suppression_id} lifted")
