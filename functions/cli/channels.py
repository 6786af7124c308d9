"""`trapalert channels add|list|remove|test`: where a park's alerts go.

Secrets are never given here: a config names the app setting that holds each secret
(``"token_setting": "CHANNEL_SECRET_ER_TOKEN_KRUGER"``); `add` refuses configs that carry secret values.
"""

from __future__ import annotations

import json

import click

from ..adapters.audit_repo import audit_cli
from ..adapters.channels import ChannelError, ChannelRepository
from ..adapters.parks import ParkRepository
from ..notify import (
    AlertNotice,
    CameraRef,
    Channel,
    DeliveryError,
    ParkRef,
    available_kinds,
    build_notifier,
    close_notifier,
)
from ..notify.privacy import default_policy, policy_of
from .base import cli, db, echo_json, echo_table, services


def _repo() -> ChannelRepository:
    return ChannelRepository(db())


@cli.group("channels", help="Where a park's alerts are delivered (EarthRanger, CMORE, email, webhook, ...).")
def channels() -> None:
    pass


@channels.command("add", help="Add a channel; its config is checked by the adapter before it is saved.")
@click.option("--park", required=True, help="park slug")
@click.option("--name", required=True)
@click.option(
    "--kind",
    required=True,
    help="earthranger, cmore, email, webhook, telegram, twilio (SMS / WhatsApp), or a third-party kind "
    "(`trapalert channels kinds`)",
)
@click.option("--purpose", type=click.Choice(["alerts", "ops"]), default="alerts", show_default=True)
@click.option("--zone", help="only cameras of this zone (default: the whole park)")
@click.option(
    "--config",
    "config_json",
    required=True,
    help='JSON, secrets by setting name, e.g. \'{"service_root": "https://x.pamdas.org", '
    '"token_setting": "CHANNEL_SECRET_ER_TOKEN_X"}\'; secret settings are named CHANNEL_SECRET_* or listed '
    'in the park\'s settings.channel_secrets; add "allow_http": true / "allow_private_network": true '
    'only for servers on your own network; "people_photos": "as_is" | "blurred" | "none"',
)
@click.option("--disabled", is_flag=True, help="add it switched off")
def channels_add(park, name, kind, purpose, zone, config_json, disabled) -> None:
    try:
        config = json.loads(config_json)
    except ValueError as exc:
        raise click.ClickException(f"--config is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise click.ClickException("--config must be a JSON object")
    try:
        row = _repo().add(park, name, kind, config, purpose=purpose, zone=zone, enabled=not disabled)
    except ChannelError as exc:
        raise click.ClickException(str(exc)) from None
    audit_cli(
        db(),
        "channel.added",
        park=park,
        target=f"channel:{row['name']}",
        details={"kind": row["kind"], "purpose": row["purpose"], "zone": row["zone"]},
    )
    click.echo(
        f"channel {row['name']} ({row['kind']}, {row['purpose']}, zone {row['zone'] or 'all'}) "
        f"added to park {park} (id {row['id']})"
    )


@channels.command("list", help="Channels with their last delivery status.")
@click.option("--park", help="park slug (default: all parks)")
@click.option("--json", "as_json", is_flag=True)
def channels_list(park, as_json) -> None:
    rows = _repo().list(park)
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        config = r.get("config") or {}
        r["photos"] = policy_of(Channel(id=r["id"], park_id=0, kind=r["kind"], config=config))
        r["allow_http"] = "yes" if config.get("allow_http") is True else "no"
        r["allow_private"] = "yes" if config.get("allow_private_network") is True else "no"
        r["zone"] = r["zone"] or "all"
        r["last"] = f"{r['last_status']} (alert {r['last_alert_id']})" if r["last_status"] else "never"
        r["error"] = (r["last_error"] or "")[:80] if r["last_status"] == "failed" else ""
    echo_table(
        rows,
        [
            "park",
            "name",
            "kind",
            "purpose",
            "zone",
            "enabled",
            "photos",
            "allow_http",
            "allow_private",
            "last",
            "last_at",
            "delivered",
            "failed",
            "error",
        ],
    )


@channels.command("remove", help="Remove a channel (its delivery records go with it).")
@click.argument("name")
@click.option("--park", required=True, help="park slug")
def channels_remove(name, park) -> None:
    try:
        row = _repo().remove(park, name)
    except ChannelError as exc:
        raise click.ClickException(str(exc)) from None
    audit_cli(db(), "channel.removed", park=park, target=f"channel:{row['name']}")
    click.echo(f"channel {row['name']} removed from park {park}")


@channels.command("kinds", help="The channel kinds this installation can deliver to.")
def channels_kinds() -> None:
    for kind, origin in sorted(available_kinds().items()):
        click.echo(f"{kind:<14} {origin} (people_photos default: {default_policy(kind)})")


@channels.command("test", help="Send a test notice through the channel's real adapter and print the result.")
@click.argument("name")
@click.option("--park", required=True, help="park slug")
def channels_test(name, park) -> None:
    repo = _repo()
    try:
        row = repo.get(park, name)
    except ChannelError as exc:
        raise click.ClickException(str(exc)) from None
    svc = services()
    notice = channel_test_notice(repo.db, row)
    channel = Channel.from_row(row)
    notifier = None
    try:
        notifier = build_notifier(channel, svc.secrets, allowed_secrets=repo.allowed_secrets(row["park_id"]))
        check = getattr(notifier, "check", None)
        problems = list(check() or []) if callable(check) else []
        if problems:  # the adapter's own check (event type, permissions, tags): what to fix, no test notice
            for problem in problems:
                click.echo(f"channel {name} ({row['kind']}): {problem}", err=True)
            raise SystemExit(1)
        result = notifier.send_new(notice)
    except DeliveryError as exc:
        raise click.ClickException(f"channel {name} ({row['kind']}): {type(exc).__name__}: {exc}") from None
    finally:
        close_notifier(notifier)
    click.echo(f"channel {name} ({row['kind']}): test notice delivered")
    echo_json({"external_id": result.external_id, "state": result.state})


def channel_test_notice(database, channel_row: dict) -> AlertNotice:
    """A clearly labelled test notice at one of the park's cameras (or a placeholder), with a photo."""
    parks = ParkRepository(database)
    park = parks.park(channel_row["park_id"])
    cam = parks.first_camera(park["id"], channel_row["zone"])
    camera = (
        CameraRef(
            id=cam["id"],
            name=cam["name"],
            latitude=cam["latitude"],
            longitude=cam["longitude"],
            timezone=cam["effective_timezone"],
            zone=cam["zone"],
        )
        if cam
        else CameraRef(id=0, name="TEST-CAMERA", timezone=park["timezone"], zone=channel_row["zone"])
    )
    from ..notify.compose import TEST_DETECTION
    from ..notify.compose import channel_test_notice as compose_test_notice

    return compose_test_notice(
        ParkRef(id=park["id"], slug=park["slug"], name=park["name"]),
        camera,
        channel_id=channel_row["id"],
        channel_name=channel_row["name"],
        photo=_test_photo([TEST_DETECTION]),
    )


def _test_photo(detections) -> bytes:
    import cv2
    import numpy as np

    from ..notify.annotate import annotate

    img = np.full((480, 640, 3), 90, np.uint8)
    cv2.putText(img, "TRAPALERT TEST", (150, 250), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
    ok, buf = cv2.imencode(".jpg", img)
    return annotate(buf.tobytes(), detections)
