"""`trapalert export md-json|camtrap-dp`: a park's photos for science (docs/exports.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click

from ..adapters.exports_repo import ExportsRepository
from ..exports import run
from ..exports.camtrap_dp import SAMPLING_DESIGNS
from ..exports.observations import DEFAULT_THRESHOLD
from .base import cli, db, echo_json, services


class When(click.ParamType):
    """A day (``2026-03-01``) or an ISO 8601 time; without an offset it is UTC. As ``--until``, a day
    includes the whole day."""

    name = "DATE"

    def __init__(self, end: bool = False):
        self.end = end

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            if len(text) == 10:
                d = date.fromisoformat(text)
                when = datetime(d.year, d.month, d.day, tzinfo=UTC)
                return when + timedelta(days=1) if self.end else when
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time", param, ctx)
        return when if when.tzinfo else when.replace(tzinfo=UTC)


def _report(result: run.ExportResult, as_json: bool) -> None:
    if as_json:
        echo_json({"path": str(result.path), "counts": result.counts, "warnings": result.warnings})
        return
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"{result.path}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in result.counts.items()))


@cli.group("export", help="A park's photos and detections for science: MegaDetector JSON, Camtrap DP.")
def export() -> None:
    pass


_park = click.option("--park", required=True, help="park slug")
_since = click.option("--since", type=When(), help="from this day or time (photo time; UTC unless stated)")
_until = click.option("--until", type=When(end=True), help="up to this day (included) or time (excluded)")
_camera = click.option("--camera", help="one camera (by name)")
_json = click.option("--json", "as_json", is_flag=True, help="print the counts as JSON")


@export.command("md-json")
@_park
@_since
@_until
@_camera
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="the JSON file")
@_json
def export_md_json(park, since, until, camera, out, as_json) -> None:
    """Detections in the MegaDetector output format (opens in Timelapse): every stored photo once, with paths
    relative to the images container (<park>/<camera>/<day>/<sha256>.<ext>), failures as `failure`."""
    try:
        result = run.export_md_json(
            ExportsRepository(db()), park, out, since=since, until=until, camera=camera
        )
    except run.ExportError as exc:
        raise click.ClickException(str(exc)) from None
    _report(result, as_json)


@export.command("camtrap-dp")
@_park
@_since
@_until
@_camera
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="a new (or empty) folder for the package",
)
@click.option(
    "--media",
    type=click.Choice(["links", "files"]),
    default="links",
    show_default=True,
    help="links: read-only links to the photos that expire; files: copy the photos under media/",
)
@click.option(
    "--link-hours",
    type=click.IntRange(1, 24 * 7),
    default=72,
    show_default=True,
    help="how long the links of --media links work",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=DEFAULT_THRESHOLD,
    show_default=True,
    help="detector confidence from which a box counts as an observation",
)
@click.option("--sampling-design", type=click.Choice(SAMPLING_DESIGNS), default="targeted", show_default=True)
@click.option(
    "--round-coordinates",
    "decimals",
    type=click.IntRange(0, 6),
    help="round camera coordinates to this many decimals (and state coordinatePrecision)",
)
@_json
def export_camtrap_dp(
    park, since, until, camera, out, media, link_hours, threshold, sampling_design, decimals, as_json
) -> None:
    """A Camtrap DP 1.0.2 package: datapackage.json, deployments.csv, media.csv, observations.csv."""
    svc = services()
    try:
        result = run.export_camtrap_dp(
            ExportsRepository(svc.db),
            svc.storage,
            park,
            out,
            since=since,
            until=until,
            camera=camera,
            media=media,
            link_hours=link_hours,
            threshold=threshold,
            sampling_design=sampling_design,
            coordinate_decimals=decimals,
        )
    except run.ExportError as exc:
        raise click.ClickException(str(exc)) from None
    except BaseException:
        run.remove_partial(out)
        raise
    _report(result, as_json)
