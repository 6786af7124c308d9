"""`trapalert inbound quarantined|show|release`: inbound emails that need a person.

A quarantined email (not authenticated, no proof naming its camera, an ambiguous camera, a park's
requirement not met: docs/inbound.md, "Authenticating cameras") is kept with
its raw POST in Blob Storage; `release ID --camera C` processes it as camera C: stores its photos and queues
them for scoring, once (running it again changes nothing).
"""

from __future__ import annotations

import click

from ..adapters.audit_repo import audit_cli
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
@click.option("--json", "as_json", is_flag=True)
def inbound_show(email_id, as_json) -> None:
    """One inbound email: how it was authenticated, and each photo with its camera and the proofs that
    named it."""
    repo = InboundRepository(db())
    row = repo.email(email_id)
    if row is None:
        raise click.ClickException(f"no inbound email {email_id}")
    row["images"] = repo.images_with_cameras(email_id)
    if as_json:
        echo_json(row)
        return
    click.echo(f"email {row['id']}: {row['status']}" + (f" ({row['reason']})" if row["reason"] else ""))
    click.echo(f"  received {row['received_at']}  from {row['sender']}  to {row['to_address']}")
    click.echo(f"  subject  {row['subject']}")
    click.echo(f"  Message-ID {row['message_id'] or '-'}")
    auth = ", ".join(row.get("authenticated_by") or []) or "not authenticated"
    click.echo(f"  authenticated by: {auth}  ({(row['meta'] or {}).get('authentication', '')})")
    click.echo(f"  proofs: {', '.join(row.get('proofs') or []) or 'none'}")
    if not row["images"]:
        click.echo(
            "  no photos recorded"
            + (" (quarantined: `inbound release`)" if row["status"] == "quarantined" else "")
        )
    for img in row["images"]:
        camera = f"{img['camera_name']} ({img['park_slug']})" if img["camera_name"] else "-"
        name = img["filename"] or img.get("source_url") or "-"
        click.echo(
            f"  #{img['attachment_index']} {name}: {img['status']}, camera {camera}, "
            f"proofs {', '.join(img['proofs'] or []) or '-'}"
            + (f" ({img['reason']})" if img["reason"] else "")
        )


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
    audit_cli(
        services().db,
        "inbound.released",
        park=park if park and not str(park).isdigit() else None,
        target=f"email:{email_id}",
        details={"camera": camera, "images_stored": outcome.images_stored},
    )
    if as_json:
        echo_json(outcome.as_dict())
    else:
        click.echo(
            f"email {email_id} released as {camera}: {outcome.images_stored} photos stored, "
            f"{outcome.queued} newly queued" + (f" ({outcome.reason})" if outcome.reason else "")
        )
