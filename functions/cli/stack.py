"""`trapalert stack up|down|status`."""

from __future__ import annotations

import click

from ..localhost.services import ServiceError
from ..localhost.stack import Stack
from .base import cli, echo_json


@cli.group("stack", help="The local stack: Azurite, PostgreSQL, scoring service, Functions host.")
def stack() -> None:
    pass


@stack.command("up", help="Start everything (in the background) and print the webhook URL.")
@click.option("--demo", is_flag=True, help="also create a demo park, camera and email outbox channel")
def up(demo: bool) -> None:
    s = Stack()
    try:
        state = s.up(demo=demo)
    except ServiceError as exc:
        raise click.ClickException(f"{exc}\n(`trapalert stack down` stops what did start)") from None
    click.echo(f"TrapAlert local stack is up in {state['startup_s']} s ({state['timings_s']})")
    for name, info in state["components"].items():
        click.echo(f"  {name:<9} {info.get('url') or info.get('port') or info.get('blob_port') or ''}")
    click.echo(f"\nWebhook for SendGrid Inbound Parse (POST):\n  {state['webhook_url']}")
    if state.get("demo"):
        d = state["demo"]
        click.echo(f"\nDemo park '{d['park']}', camera '{d['camera']}' (sender {d['sender']}); "
                   f"alert emails land in {d['outbox']}")
        click.echo(f"Try: trapalert simulate camera --camera {d['camera']} --image PHOTO.jpg")
    click.echo(f"\nLogs: {s.logs}/   Stop: trapalert stack down   Status: trapalert stack status")


@stack.command("down", help="Stop everything the stack started.")
def down() -> None:
    stopped = Stack().down()
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@stack.command("status", help="Each component's state, addresses and queue depths.")
@click.option("--json", "as_json", is_flag=True)
def status(as_json: bool) -> None:
    st = Stack().status()
    if as_json:
        echo_json(st)
        return
    if not st["components"]:
        click.echo("the stack is not running")
        return
    for name, info in st["components"].items():
        click.echo(f"{name:<9} {info['state']:<9} {info.get('url') or info.get('port') or ''}")
    for q, depth in (st.get("queues") or {}).items():
        click.echo(f"queue {q:<22} {depth}")
