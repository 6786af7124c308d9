"""The `trapalert` command group and what its commands share (settings, services, JSON output)."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import click

from ..settings import SettingsError


@click.group(help="TrapAlert: real-time anti-poaching alerts from camera-trap emails.")
def cli() -> None:
    pass


def services():
    """The process's Services, with a clear message when a setting is missing."""
    from ..bootstrap import services as _services

    try:
        svc = _services()
        svc.settings  # noqa: B018 - validated on construction
        return svc
    except SettingsError as exc:
        raise click.ClickException(f"{exc} (run `trapalert stack up`, or set it in local.settings.json)") \
            from None


def db():
    try:
        return services().db
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _default(o: Any) -> Any:
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, Decimal):
        return float(o)
    if isinstance(o, bytes | memoryview):
        return f"<{len(bytes(o))} bytes>"
    return str(o)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_default))


def echo_table(rows: list[dict], columns: list[str]) -> None:
    if not rows:
        click.echo("(none)")
        return
    widths = {c: max(len(c), *(len(_cell(r.get(c))) for r in rows)) for c in columns}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for r in rows:
        click.echo("  ".join(_cell(r.get(c)).ljust(widths[c]) for c in columns))


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        return ",".join(map(str, v))
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S%z")
    return str(v)
