"""`trapalert poison list|show|replay|purge`, `trapalert ops status` and `trapalert health check|list`:
thin over functions/ops (the admin HTTP API uses the same functions)."""

from __future__ import annotations

import click

from ..adapters.audit_repo import audit_cli
from ..ops import poison as ops_poison
from .base import cli, db, echo_json, echo_table, services


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@cli.group("poison", help="Messages that failed too often (poison queues): list, show, replay, purge.")
def poison() -> None:
    pass


@poison.command("list")
@click.option("--queue", help="source queue, e.g. process-image or send-alert")
@click.option("--status", type=click.Choice(ops_poison.STATUSES), help="poisoned, invalid, replayed, purged")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def poison_list(queue, status, limit, as_json) -> None:
    rows = ops_poison.list_records(db(), queue=queue, status=status, limit=limit)
    if as_json:
        echo_json(rows)
    else:
        for r in rows:
            if r.get("last_error") and len(r["last_error"]) > 60:
                r["last_error"] = r["last_error"][:57] + "..."
        echo_table(
            rows, ["id", "queue", "status", "recorded_at", "dequeue_count", "last_error", "correlation_id"]
        )


@poison.command("show")
@click.argument("record_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def poison_show(record_id, as_json) -> None:
    try:
        row = ops_poison.get_record(db(), record_id)
    except ops_poison.PoisonError as exc:
        raise _fail(exc) from None
    if as_json:
        echo_json(row)
        return
    failures = row.pop("failures")
    for key, value in row.items():
        click.echo(f"{key:>18}: {value}")
    click.echo(
        f"\nfailures ({len(failures)}, newest first; the logs carry correlation_id={row['correlation_id']}):"
    )
    echo_table(failures, ["failed_at", "queue", "message_id", "dequeue_count", "error"])


@poison.command("replay")
@click.argument("record_id", type=int, required=False)
@click.option("--all", "replay_all", is_flag=True, help="every poisoned record (of --queue)")
@click.option("--queue", help="with --all: only this source queue")
@click.option("--json", "as_json", is_flag=True)
def poison_replay(record_id, replay_all, queue, as_json) -> None:
    """Put the original message back on its source queue; a replayed record is never replayed again."""
    if (record_id is None) == (not replay_all):
        raise click.UsageError("give a record ID or --all")
    if queue and not replay_all:
        raise click.UsageError("--queue goes with --all")
    svc = services()
    try:
        if replay_all:
            result = ops_poison.replay_all(svc.db, svc.storage, queue=queue)
        else:
            result = ops_poison.replay(svc.db, svc.storage, record_id)
    except ops_poison.PoisonError as exc:
        raise _fail(exc) from None
    audit_cli(
        svc.db,
        "poison.replayed",
        park=None,
        target=f"poison:{record_id}" if record_id is not None else f"queue:{queue or 'all'}",
        details={"replayed": [r["id"] for r in result.replayed][:50], "failed": len(result.failed)},
    )
    if as_json:
        echo_json(result.as_dict())
    else:
        for r in result.replayed:
            click.echo(f"replayed {r['id']} onto {r['queue']} as message {r['replay_message_id']}")
        for s in result.skipped:
            click.echo(f"skipped {s['id']}: {s['reason']}")
        for f in result.failed:
            click.echo(f"FAILED {f['id']}: {f['error']}", err=True)
        click.echo(
            f"{len(result.replayed)} replayed, {len(result.skipped)} skipped, {len(result.failed)} failed"
        )
    if result.failed:
        raise SystemExit(1)


@poison.command("purge")
@click.option("--older-than", required=True, help="age like 30d, 12h, 2w")
@click.option("--queue", help="only this source queue")
@click.option("--json", "as_json", is_flag=True)
def poison_purge(older_than, queue, as_json) -> None:
    """Give up on old poisoned/invalid records (and remove their messages from the poison queue)."""
    svc = services()
    try:
        result = ops_poison.purge(svc.db, svc.storage, older_than, queue=queue)
    except ops_poison.PoisonError as exc:
        raise _fail(exc) from None
    audit_cli(
        svc.db,
        "poison.purged",
        park=None,
        target=f"queue:{queue or 'all'}",
        details={"older_than": older_than, "purged": result["purged"]},
    )
    if as_json:
        echo_json(result)
    else:
        click.echo(
            f"purged {result['purged']} records ({result['removed_from_queue']} messages removed "
            "from poison queues)"
        )


@cli.group("ops", help="The pipeline at a glance.")
def ops() -> None:
    pass


@ops.command("status")
def ops_status() -> None:
    from ..ops.status import status

    echo_json(status(services()))


@cli.group("health", help="Camera health: silent cameras, low battery, temperature, clock.")
def health() -> None:
    pass


@health.command("check")
def health_check() -> None:
    """Run the camera-health check now (what the timer does every 5 minutes)."""
    from ..handlers import camera_health

    echo_json(camera_health.handle(None, services()))


@health.command("list")
@click.option("--park")
@click.option("--json", "as_json", is_flag=True)
def health_list(park, as_json) -> None:
    from ..handlers import camera_health

    rows = camera_health.current(db(), park)
    echo_json(rows) if as_json else echo_table(rows, ["park", "camera", "condition", "raised_at", "alert_id"])
