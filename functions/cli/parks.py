"""`trapalert parks add|list` and `trapalert cameras add|import|list`."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

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
@click.option("--require-spf/--no-require-spf", default=False)
@click.option("--require-dkim/--no-require-dkim", default=False)
def parks_add(slug, name, timezone, inbound_address, require_spf, require_dkim) -> None:
    try:
        park = ParkIn(slug=slug, name=name, timezone=timezone, inbound_address=inbound_address,
                      require_spf_pass=require_spf, require_dkim_pass=require_dkim)
    except ValidationError as exc:
        raise _validation(exc) from None
    row = _repo().add_park(park)
    click.echo(f"park {row['slug']} (id {row['id']})")


@parks.command("list")
@click.option("--json", "as_json", is_flag=True)
def parks_list(as_json) -> None:
    rows = _repo().parks()
    echo_json(rows) if as_json else echo_table(rows, ["id", "slug", "name", "timezone", "inbound_address"])


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
@click.option("--expected-interval-h", type=float, default=24.0, show_default=True,
              help="hours of silence after which the camera is reported")
def cameras_add(name, park, senders, aliases, latitude, longitude, timezone, zone, brand,
                expected_interval_h) -> None:
    try:
        cam = CameraIn(name=name, sender_addresses=list(senders), aliases=list(aliases), latitude=latitude,
                       longitude=longitude, timezone=timezone, zone=zone, brand=brand,
                       expected_interval_s=int(expected_interval_h * 3600))
        row = _repo().add_camera(park, cam)
    except ValidationError as exc:
        raise _validation(exc) from None
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"camera {row['name']} (id {row['id']}) in park {park}")


@cameras.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def cameras_import(csv_file: Path) -> None:
    try:
        rows = _repo().import_cameras_csv(csv_file.read_text(encoding="utf-8-sig"))
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"imported {len(rows)} cameras")


@cameras.command("list")
@click.option("--park")
@click.option("--json", "as_json", is_flag=True)
def cameras_list(park, as_json) -> None:
    rows = _repo().cameras(park)
    if as_json:
        echo_json(rows)
    else:
        echo_table(rows, ["id", "park_slug", "name", "sender_addresses", "aliases", "latitude", "longitude",
                          "last_seen_at"])
