"""What an operator must do about a channel that failed permanently. Pure: no I/O.

A permanent failure (credentials refused, an event type the remote does not know, a bad channel config) is
not retried: retrying the same request cannot help. It is recorded with the text this module writes, ops are
told once per failing channel, and the alert waits until an operator fixes the cause and redelivers.
"""

from __future__ import annotations

from typing import Any


def secret_settings(config: dict[str, Any]) -> list[str]:
    """The app settings a channel config names for its secrets (``token_setting: ER_TOKEN_X``...)."""
    return sorted(str(v) for k, v in (config or {}).items() if str(k).endswith("_setting") and v)


def fix_for(
    channel: str, kind: str, config: dict[str, Any], *, status: int | None, config_error: bool
) -> str:
    """One sentence saying what to fix, then the command that delivers what waited."""
    redeliver = f"then `trapalert deliveries redeliver --channel {channel}`"
    settings = secret_settings(config)
    if status in (401, 403):
        names = ", ".join(settings) or "the channel's credentials"
        return f"{kind} refused the credentials (HTTP {status}): update {names} (Key Vault), {redeliver}"
    if config_error:
        return f"fix the configuration of channel {channel} (`trapalert channels list`), {redeliver}"
    if status in (400, 404, 409, 422):
        return (
            f"{kind} refused the alert (HTTP {status}): check the channel's event type, ids and permissions "
            f"with `trapalert channels test {channel}`, {redeliver}"
        )
    return f"{kind} refused the alert for good: read the error, fix the channel, {redeliver}"
