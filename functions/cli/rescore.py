"""`trapalert rescore`: run a park's stored photos through the current model, in the bulk lane.

    trapalert rescore --park P --since 2026-01-01 [--until 2026-07-01] [--camera C] [--alert] [--json]

The new detections are stored beside the original ones, each with its model version (``batch_items`` of a
``rescore`` batch; the photo's original detections and model stay in ``detections``/``images``), and the
report says, by camera, what the new model would have changed: alerts that would have fired and did not,
alerts that would not have fired (functions/domain/rescore.py, judged by the one rules engine,
functions/domain/rules.py). Nothing is sent to rangers, unless ``--alert`` is given: then, once the run is
done, each event that would have fired and did not gets one alert of kind ``rescore`` (titled "Re-scoring
(past): ...", its best photo drawn with the new detections), delivered to the park's channels like any alert;
an event gets at most one, whatever the run (functions/handlers/batch.py ``open_past_alerts``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from ..adapters.batch_repo import BatchRepository
from ..handlers import batch as batch_handler
from .base import cli, echo_json, services
from .batch import wait_for


def _when(value: str, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD or ISO 8601)", param_hint=what
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@cli.command("rescore")
@click.option("--park", required=True, help="park slug or id")
@click.option("--since", required=True, help="first day (YYYY-MM-DD, UTC unless an offset is given)")
@click.option("--until", help="end (exclusive); default: now")
@click.option("--camera", help="only this camera (name or id)")
@click.option(
    "--alert",
    is_flag=True,
    help="once done, alert the park's channels for each past event that would have fired and did not",
)
@click.option("--wait/--no-wait", default=True, help="wait for the run and print what changed")
@click.option("--json", "as_json", is_flag=True)
def rescore(park, since, until, camera, alert, wait, as_json):
    """Re-score stored photos with the current model and report what would have changed."""
    svc = services()
    repo = BatchRepository(svc.db)
    found = repo.park(park)
    if found is None:
        raise click.ClickException(f"unknown park {park!r}")
    camera_id = None
    if camera:
        cam = repo.camera(found["id"], camera)
        if cam is None:
            raise click.ClickException(f"unknown camera {camera!r} in park {found['slug']}")
        camera_id = cam["id"]
    start = _when(since, "--since")
    end = _when(until, "--until") if until else None
    run = batch_handler.submit_rescore(svc, found, start, end, camera_id, created_by="cli", alert=alert)
    click.echo(f"re-scoring {run['total']} photo(s): run {run['request_id']}", err=True)
    if not wait:
        return
    wait_for(svc, str(run["request_id"]), quiet=as_json)
    report = batch_handler.rescore_report(svc, repo.get(run["id"]))
    if as_json:
        echo_json(report)
        return
    click.echo(
        f"{report['photos']} photo(s) re-scored ({', '.join(report['old_models']) or '-'} -> "
        f"{', '.join(report['new_models']) or '-'}): {report['would_have_fired']} alert(s) would have fired "
        f"and did not, {report['would_not_have_fired']} would not have fired"
    )
    for cam in report["cameras"]:
        click.echo(
            f"  {cam['camera']}: {cam['photos']} photos, {cam['changed_photos']} changed verdict, "
            f"+{cam['would_have_fired']} / -{cam['would_not_have_fired']} alerts"
        )
    if alert:
        click.echo(f"{len(report['alerts_opened'])} re-scoring alert(s) sent to the park's channels")
        for a in report["alerts_opened"]:
            click.echo(f"  alert {a['alert_id']}: {a['title']}")
