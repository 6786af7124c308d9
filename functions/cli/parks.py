"""`trapalert parks add|list` and `trapalert cameras add|import|list`."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from ..adapters.audit_repo import audit_cli
from ..adapters.parks import CameraIn, ParkIn, ParkRepository, RegistryError
from .base import cli, db, echo_json, echo_table


def _repo() -> ParkRepository:
    return ParkRepository(db())


def _validation(exc: ValidationError) -> click.ClickException:
    first = exc.errors()[0]
    return click.ClickException(f"{'.'.join(map(str, first['loc']))}: {first['msg']}")


@cli.group("parks", help="Parks (organizations).")
def parks() -> None:
    pass


@parks.command("add")
@click.argument("slug")
@click.option("--name", required=True)
@click.option("--timezone", default="UTC", show_default=True)
@click.option(
    "--inbound-address", help="the address this park's cameras email, e.g. park-x@alerts.example.org"
)
@click.option(
    "--require-spf/--no-require-spf",
    default=False,
    help="accept only mail with an SPF pass aligned with its From domain",
)
@click.option(
    "--require-dkim/--no-require-dkim",
    default=False,
    help="accept only mail with a DKIM pass aligned with its From domain",
)
@click.option(
    "--require-token/--no-require-token",
    default=False,
    help="accept only mail sent to a camera's token address (park address +<token>)",
)
@click.option(
    "--shared-sender",
    "shared_senders",
    multiple=True,
    help="an address or @domain several owners' cameras send from (names no camera; repeatable)",
)
def parks_add(
    slug, name, timezone, inbound_address, require_spf, require_dkim, require_token, shared_senders
) -> None:
    try:
        park = ParkIn(
            slug=slug,
            name=name,
            timezone=timezone,
            inbound_address=inbound_address,
            require_spf_pass=require_spf,
            require_dkim_pass=require_dkim,
            require_token=require_token,
            shared_senders=list(shared_senders),
        )
    except ValidationError as exc:
        raise _validation(exc) from None
    row = _repo().add_park(park)
    audit_cli(db(), "park.added", park=row["id"], target=f"park:{row['slug']}")
    click.echo(f"park {row['slug']} (id {row['id']})")


@parks.command("list")
@click.option("--json", "as_json", is_flag=True)
def parks_list(as_json) -> None:
    rows = _repo().parks()
    echo_json(rows) if as_json else echo_table(
        rows, ["id", "slug", "name", "timezone", "inbound_address", "require_token", "shared_senders"]
    )


@cli.group("cameras", help="Camera traps and how to recognise their emails.")
def cameras() -> None:
    pass


@cameras.command("add")
@click.argument("name")
@click.option("--park", required=True, help="park slug")
@click.option("--sender", "senders", multiple=True, help="an address the camera sends from (repeatable)")
@click.option("--alias", "aliases", multiple=True, help="a name/id the camera writes in subject or body")
@click.option("--lat", "latitude", type=float)
@click.option("--lon", "longitude", type=float)
@click.option("--timezone", help="IANA time zone of the camera's clock (default: the park's)")
@click.option("--zone")
@click.option("--brand")
@click.option(
    "--expected-interval-h",
    type=float,
    default=24.0,
    show_default=True,
    help="hours of silence after which the camera is reported",
)
@click.option(
    "--serial",
    "serials",
    multiple=True,
    help="the camera's serial number or IMEI, as its email or photos' EXIF write it (repeatable)",
)
def cameras_add(
    name, park, senders, aliases, latitude, longitude, timezone, zone, brand, expected_interval_h, serials
) -> None:
    """Add (or update) a camera. A new camera gets a secret token, shown once: the camera then emails
    the park's address with +<token> (docs/inbound.md, "Authenticating cameras")."""
    try:
        cam = CameraIn(
            name=name,
            sender_addresses=list(senders),
            aliases=list(aliases),
            latitude=latitude,
            longitude=longitude,
            timezone=timezone,
            zone=zone,
            brand=brand,
            expected_interval_s=int(expected_interval_h * 3600),
            serials=list(serials),
        )
        row = _repo().add_camera(park, cam)
    except ValidationError as exc:
        raise _validation(exc) from None
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    audit_cli(
        db(),
        "camera.added" if row.get("token") else "camera.updated",
        park=park,
        target=f"camera:{row['id']}",
        details={"name": row["name"], "latitude": latitude, "longitude": longitude, "serials": list(serials)},
    )
    click.echo(f"camera {row['name']} (id {row['id']}) in park {park}")
    _show_token(row.get("token"), row.get("token_address"))


def _show_token(token: str | None, address: str | None) -> None:
    if token:
        click.echo(f"token: {token}  (shown once; the database keeps only its hash)")
        click.echo(f"the camera emails: {address}")
    else:
        click.echo("token unchanged (`trapalert cameras rotate-token` makes a new one)")


@cameras.command("rotate-token")
@click.argument("name")
@click.option("--park", help="park slug (when the name is used in several parks)")
def cameras_rotate_token(name, park) -> None:
    """A new secret token for camera NAME; the old one stops working at once. Shown once."""
    repo = _repo()
    rows = repo.cameras_named(name, park, or_id=True)
    if not rows:
        raise click.ClickException(f"no camera {name!r}" + (f" in park {park}" if park else ""))
    if len(rows) > 1:
        raise click.ClickException(
            f"camera {name!r} exists in parks {', '.join(r['park_slug'] for r in rows)}: give --park"
        )
    row, token = repo.rotate_token(rows[0]["id"])
    audit_cli(db(), "camera.token_rotated", park=row["park_slug"], target=f"camera:{row['id']}")
    click.echo(f"camera {row['name']} (id {row['id']}) in park {row['park_slug']}: new token")
    _show_token(token, row["token_address"])


@cameras.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def cameras_import(csv_file: Path) -> None:
    try:
        rows = _repo().import_cameras_csv(csv_file.read_text(encoding="utf-8-sig"))
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    audit_cli(
        db(),
        "cameras.imported",
        park=None,
        target=f"file:{csv_file.name}",
        details={"cameras": [r.get("name") for r in rows][:50], "count": len(rows)},
    )
    click.echo(f"imported {len(rows)} cameras")
    for row in rows:
        if row.get("token"):  # new cameras: their token, shown once
            click.echo(f"{row['name']}: token {row['token']} -> {row['token_address']}")


@cameras.command("list")
@click.option("--park")
@click.option("--json", "as_json", is_flag=True)
def cameras_list(park, as_json) -> None:
    rows = [{k: v for k, v in r.items() if k != "token_hash"} for r in _repo().cameras(park)]
    if as_json:
        echo_json(rows)
    else:
        echo_table(
            rows,
            [
                "id",
                "park_slug",
                "name",
                "sender_addresses",
                "aliases",
                "serials",
                "latitude",
                "longitude",
                "last_seen_at",
            ],
        )
