"""`trapalert db migrate|status`."""

from __future__ import annotations

import click

from ..db.migrate import MigrationError, migrate, status
from .base import cli, db, echo_table


@cli.group("db", help="The PostgreSQL schema.")
def db_group() -> None:
    pass


@db_group.command("migrate", help="Apply pending migrations (idempotent, each in one transaction).")
def migrate_cmd() -> None:
    try:
        applied = migrate(db())
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@db_group.command("status", help="List migrations and when they were applied.")
def status_cmd() -> None:
    echo_table(status(db()), ["version", "name", "applied_at"])
