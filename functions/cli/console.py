"""`trapalert console login-url`: a one-time sign-in link to the park console (local sign-in, and the audited
break-glass path in Azure when Entra ID sign-in is unavailable). See docs/console.md."""

from __future__ import annotations

import getpass
import re

import click

from .base import cli, services

_TTL = re.compile(r"^(\d+)([smhd]?)$")


def parse_ttl(text: str) -> int:
    m = _TTL.match(text.strip())
    if not m:
        raise click.BadParameter("a duration like 90s, 10m, 2h or 1d")
    seconds = int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if not 30 <= seconds <= 7 * 86400:
        raise click.BadParameter("between 30s and 7d")
    return seconds


@cli.group("console", help="The park console (web app): sign-in links.")
def console() -> None:
    pass


@console.command("login-url")
@click.option("--user", "user", required=True, help="who signs in (recorded in the audit log)")
@click.option("--role", type=click.Choice(["viewer", "ranger", "operator", "admin"]), required=True)
@click.option("--ttl", default="10m", show_default=True, help="how long the link may be used (once)")
@click.option("--base-url", help="the Function app's address (default: PUBLIC_BASE_URL)")
def login_url(user: str, role: str, ttl: str, base_url: str | None) -> None:
    """Print a one-time sign-in link. The token is in the link's #fragment (browsers never send it to a
    server or a log); the database keeps only its hash; it opens one session, once, before it expires."""
    from ..adapters.console_repo import ConsoleRepository
    from ..console import audit
    from ..console.auth import new_token
    from ..console.urls import console_url

    svc = services()
    seconds = parse_ttl(ttl)
    user = user.strip()
    if not user or len(user) > 200:
        raise click.BadParameter("--user: 1 to 200 characters")
    repo = ConsoleRepository(svc.db)
    token = new_token()
    link = repo.add_link(token, user, role, seconds, created_by=_who())
    audit.record(
        repo,
        actor=_who() or "cli",
        actor_role=None,
        via="cli",
        action="console.link_created",
        target=f"console_link:{link['id']}",
        details={"for_user": user, "role": role, "expires_at": link["expires_at"].isoformat()},
    )
    click.echo(f"{console_url(base_url or svc.settings.public_base_url, 'login')}#t={token}")
    click.echo(f"(one use, for {user} as {role}, until {link['expires_at']:%Y-%m-%d %H:%M:%S %Z})", err=True)


def _who() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return None
