"""`trapalert stack up|down|status`.

Failures are one line naming the step and the cause, exit code 1; `--verbose` adds the details (traceback,
end of the component's log). TRAPALERT_STATE_DIR moves the state folder (default: .trapalert of the
checkout), TRAPALERT_LOCAL_SETTINGS the settings file (default: local.settings.json of the checkout).
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import click

from ..localhost.stack import Stack, StackError, describe_error
from .base import cli, echo_json


def _stack() -> Stack:
    state_dir = os.environ.get("TRAPALERT_STATE_DIR")
    settings = os.environ.get("TRAPALERT_LOCAL_SETTINGS")
    return Stack(state_dir=Path(state_dir) if state_dir else None,
                 settings_file=Path(settings) if settings else None)


def _err(message: str) -> None:
    click.echo(message, err=True)


def _fail(action: str, exc: Exception, verbose: bool) -> click.ClickException:
    if isinstance(exc, StackError):
        details, message = exc.details, str(exc)
    else:  # not foreseen: still one line
        details = "".join(traceback.format_exception(exc))
        message = f"stack {action} failed: {describe_error(exc)}"
    if verbose and details:
        _err(details.rstrip())
    elif details:
        message += " (--verbose for details)"
    return click.ClickException(message)


@cli.group("stack", help="The local stack: Azurite, PostgreSQL, scoring service, Functions host.")
def stack() -> None:
    pass


@stack.command("up", help="Start everything (in the background) and print the webhook URL. All or nothing: "
                          "a failed step stops what this call started.")
@click.option("--demo", is_flag=True, help="also create a demo park, camera and email outbox channel")
@click.option("--verbose", "-v", is_flag=True, help="on failure, show the traceback and the end of the log")
def up(demo: bool, verbose: bool) -> None:
    s = _stack()
    try:
        state = s.up(demo=demo, echo=_err)
    except Exception as exc:  # noqa: BLE001 - every failure is one line
        raise _fail("up", exc, verbose) from None
    click.echo(f"TrapAlert local stack is up in {state['startup_s']} s ({state['timings_s']})")
    for name, info in state["components"].items():
        click.echo(f"  {name:<9} {info.get('url') or info.get('port') or info.get('blob_port') or ''}")
    click.echo(f"\nWebhook for SendGrid Inbound Parse (POST):\n  {state['webhook_url']}")
    click.echo(f"\nPark console:\n  {state['console_url']}\n  sign in with a one-time link: "
               "trapalert console login-url --user NAME --role admin")
    if state.get("demo"):
        d = state["demo"]
        click.echo(f"\nDemo park '{d['park']}', camera '{d['camera']}' (sender {d['sender']}); "
                   f"alert emails land in {d['outbox']}")
        click.echo(f"Try: trapalert simulate camera --camera {d['camera']} --image PHOTO.jpg")
    click.echo(f"\nLogs: {s.logs}/   Stop: trapalert stack down   Status: trapalert stack status")


@stack.command("down", help="Stop everything the stack started, and what an interrupted `stack up` left.")
@click.option("--verbose", "-v", is_flag=True, help="on failure, show the traceback")
def down(verbose: bool) -> None:
    try:
        stopped = _stack().down(echo=_err)
    except Exception as exc:  # noqa: BLE001 - every failure is one line
        raise _fail("down", exc, verbose) from None
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@stack.command("status", help="Each component's state (verified: its process answers on its port and is "
                              "healthy), addresses and queue depths.")
@click.option("--json", "as_json", is_flag=True)
def status(as_json: bool) -> None:
    st = _stack().status()
    if as_json:
        echo_json(st)
        return
    if st.get("in_progress"):
        ip = st["in_progress"]
        click.echo(f"a `trapalert stack {ip.get('action', 'up')}` is in progress (pid {ip.get('pid', '?')})")
    elif st.get("unfinished"):
        click.echo(st["unfinished"])
    if not st["components"]:
        click.echo("the stack is not running")
    for name, info in st["components"].items():
        problem = f"  ({info['problem']})" if info.get("problem") else ""
        where = info.get("url") or info.get("port") or info.get("blob_port") or ""
        click.echo(f"{name:<9} {info['state']:<9} {where}{problem}")
    if st.get("console_url"):
        click.echo(f"console   {st['console_url']}  (sign in: trapalert console login-url)")
    for q, depth in (st.get("queues") or {}).items():
        click.echo(f"queue {q:<22} {depth}")
    if st.get("leftovers"):
        click.echo(f"left running by an earlier run: {', '.join(st['leftovers'])} (`trapalert stack down` "
                   "stops them)")
