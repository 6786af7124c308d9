"""`trapalert audit list`: the audit log (every change and every feedback, by whom, through which door)."""

from __future__ import annotations

import click

from ..adapters.audit_repo import AuditRepository
from ..adapters.parks import ParkRepository, RegistryError
from .base import cli, db, echo_json, echo_table


@cli.group("audit", help="The audit log of changes and feedback.")
def audit() -> None:
    pass


@audit.command("list")
@click.option("--park", help="park slug")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--before", "before_id", type=int, help="page: entries older than this id")
@click.option("--json", "as_json", is_flag=True)
def audit_list(park, limit, before_id, as_json) -> None:
    park_id = None
    if park:
        try:
            park_id = ParkRepository(db()).park(park)["id"]
        except RegistryError as exc:
            raise click.ClickException(str(exc)) from None
    rows = AuditRepository(db()).list(park_id, limit, before_id)
    if as_json:
        echo_json(rows)
    else:
        echo_table(rows, ["id", "at", "actor", "actor_role", "via", "action", "park", "target"])
