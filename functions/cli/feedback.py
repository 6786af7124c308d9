"""`trapalert feedback give|list|suggest`: rangers' verdicts on alerts, and what they suggest.

``give`` records a verdict as the park console does (audited, via "cli"), and feeds it to the camera's
suppression candidates (docs/rules.md, "Static false positives"). ``suggest`` prints per camera the precision
from feedback and a threshold change when one would have removed most false positives while keeping every
confirmed sighting (functions/domain/feedback.py); it never applies anything: apply one with
``trapalert rules set``.
"""

from __future__ import annotations

import click

from ..adapters.audit_repo import cli_actor
from ..adapters.feedback_repo import FeedbackRepository
from ..adapters.parks import ParkRepository, RegistryError
from .base import cli, db, echo_json, echo_table


@cli.group("feedback", help="Rangers' verdicts on alerts: record, list, and the threshold they suggest.")
def feedback() -> None:
    pass


@feedback.command("give")
@click.argument("alert_id", type=int)
@click.option(
    "--verdict",
    required=True,
    type=click.Choice(["confirmed", "false_positive", "unsure"]),
    help="the verdict",
)
@click.option("--image", "image_id", type=int, help="a photo of the alert (default: the whole alert)")
@click.option("--what", help="false positive: animal, shadow, stump, staff_vehicle, vegetation, other")
@click.option("--note", help="free text")
@click.option("--actor", help="who gives it (default: $TRAPALERT_ACTOR or the OS user)")
@click.option("--role", default="ranger", show_default=True, help="the giver's role")
@click.option("--json", "as_json", is_flag=True)
def feedback_give(alert_id, verdict, image_id, what, note, actor, role, as_json) -> None:
    from ..handlers.feedback import FeedbackError, FeedbackNotFound, give_feedback

    try:
        out = give_feedback(
            db(),
            alert_id=alert_id,
            image_id=image_id,
            verdict=verdict,
            what=what,
            note=note,
            user=cli_actor(actor),
            role=role,
            via="cli",
        )
    except (FeedbackError, FeedbackNotFound) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json(out)
        return
    click.echo(f"feedback {out['feedback']['id']} recorded: alert {alert_id} {verdict}")
    for box_id in out["proposed"]:
        click.echo(f"suppression {box_id} proposed: confirm with `trapalert suppressions confirm {box_id}`")
    for box_id in out["suppressed"]:
        click.echo(
            f"suppression {box_id} applied (animal box): lift with `trapalert suppressions lift {box_id}`"
        )


def _scope(park: str, camera: str | None) -> tuple[int, int | None]:
    repo = ParkRepository(db())
    try:
        park_row = repo.park(park)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    if camera is None:
        return park_row["id"], None
    rows = repo.cameras_named(camera, park_row["slug"], or_id=True)
    if len(rows) != 1:
        raise click.ClickException(f"no single camera {camera!r} in park {park_row['slug']}")
    return park_row["id"], rows[0]["id"]


@feedback.command("list")
@click.option("--park", required=True, help="park slug")
@click.option("--camera", help="camera name")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def feedback_list(park, camera, limit, as_json) -> None:
    park_id, camera_id = _scope(park, camera)
    rows = FeedbackRepository(db()).list(park_id, camera_id, limit)
    if as_json:
        echo_json(rows)
    else:
        echo_table(
            rows, ["id", "created_at", "camera", "alert_id", "image_id", "verdict", "what", "user_name"]
        )


@feedback.command("suggest")
@click.option("--park", required=True, help="park slug")
@click.option("--camera", help="camera name")
@click.option("--json", "as_json", is_flag=True)
def feedback_suggest(park, camera, as_json) -> None:
    """Per camera: precision from feedback and suggested threshold changes (never applied here)."""
    from ..handlers.feedback import camera_report

    park_id, camera_id = _scope(park, camera)
    report = camera_report(db(), park_id, camera_id)
    if as_json:
        echo_json(report)
        return
    if not report:
        click.echo("(no feedback yet)")
        return
    for cam in report:
        p = cam["precision"]
        share = "-" if p["precision"] is None else f"{p['precision']:.0%}"
        click.echo(
            f"camera {cam['camera']}: precision {share} ({p['confirmed']} confirmed, "
            f"{p['false_positive']} false positive, {p['unsure']} unsure)"
        )
        for s in cam["suggestions"]:
            if s["suggested"] is None:
                click.echo(f"  {s['key']} stays {s['current']:g}: {s['reason']}")
            else:
                click.echo(f"  suggest {s['reason']}")
                cam_opt = f" --camera {cam['camera']}"
                click.echo(
                    f"    apply: trapalert rules set --park {park}{cam_opt} {s['key']}={s['suggested']:.2f}"
                )
