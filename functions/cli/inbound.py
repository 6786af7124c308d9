"""`trapalert inbound quarantined|show|release`: inbound emails that need a person.

A quarantined email (unknown sender, ambiguous camera, a park's SPF/DKIM requirement not met) is kept with
its raw POST in Blob Storage; `release ID --camera C` processes it as camera C: stores its photos and queues
them for scoring, once (running it again changes nothing).
"""

from __future__ import annotations

import click

from ..adapters.inbound_repo import InboundRepository
from ..inbound.ingest import ReleaseError, release
from .base import cli, db, echo_json, echo_table, services


@cli.group("inbound", help="Inbound camera-trap emails: quarantine, inspection, release.")
def inbound() -> None:
    pass


@inbound.command("quarantined")
@click.option("--limit", type=int, default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def inbound_quarantined(limit, as_json) -> None:
    """List quarantined emails, newest first."""
    rows = InboundRepository(db()).quarantined(limit)
    if as_json:
        echo_json(rows)
    else:
        echo_table(rows, ["id", "received_at", "sender", "to_address", "subject", "reason"])


@inbound.command("show")
@click.argument("email_id", type=int)
def inbound_show(email_id) -> None:
    """One inbound email with its images, as JSON."""
    repo = InboundRepository(db())
    row = repo.email(email_id)
    if row is None:
        raise click.ClickException(f"no inbound email {email_id}")
    row["images"] = repo.images_of(email_id)
    echo_json(row)


@inbound.command("release")
@click.argument("email_id", type=int)
@click.option("--camera", required=True, help="camera name, alias or id to process the email as")
@click.option("--park", help="park slug or id (when the camera name exists in several parks)")
@click.option("--json", "as_json", is_flag=True)
def inbound_release(email_id, camera, park, as_json) -> None:
    """Process a quarantined email as CAMERA: store its photos and queue them for scoring (idempotent)."""
    try:
        outcome = release(email_id, camera, park, services())
    except ReleaseError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json(outcome.as_dict())
    else:
        click.echo(
            f"email {email_id} released as {camera}: {outcome.images_stored} photos stored, "
            f"{outcome.queued} newly queued" + (f" ({outcome.reason})" if outcome.reason else "")
        )
