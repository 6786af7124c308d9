"""Where a channel kind becomes an adapter: the built-ins plus the ``trapalert.notifiers`` entry points.

A third-party package registers an adapter without forking TrapAlert::

    [project.entry-points."trapalert.notifiers"]
    sms = "my_park_sms:SmsNotifier"

The object an entry point names is a *factory*: either a class/object with a ``from_channel(channel,
secrets, http)`` classmethod, or any callable ``factory(channel, secrets, http) -> Notifier``. It may expose
``config_model`` (a pydantic model) so that ``validate_channel`` can check a config before it is saved.
Built-in kinds cannot be shadowed by an entry point (a warning is logged instead).
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from .base import Channel, ChannelConfigError, HttpSettings, Notifier, SecretResolver, parse_config

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "trapalert.notifiers"

BUILTIN_ADAPTERS: dict[str, str] = {
    "earthranger": "functions.notify.earthranger:EarthRangerNotifier",
    "cmore": "functions.notify.cmore:CmoreNotifier",
    "email": "functions.notify.email:EmailNotifier",
    "webhook": "functions.notify.webhook:WebhookNotifier",
}


def _load(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _third_party() -> dict[str, Any]:
    """kind -> EntryPoint, read fresh each time (cheap; lets a newly installed adapter appear)."""
    found: dict[str, Any] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTIN_ADAPTERS:
            log.warning(
                "entry point %s=%s ignored: %r is a built-in channel kind", ep.name, ep.value, ep.name
            )
            continue
        found.setdefault(ep.name, ep)
    return found


def available_kinds() -> dict[str, str]:
    """Every channel kind this process can deliver to, with where its adapter comes from."""
    kinds = {k: f"builtin {v}" for k, v in BUILTIN_ADAPTERS.items()}
    for name, ep in _third_party().items():
        dist = getattr(ep, "dist", None)
        kinds[name] = f"entry point {ep.value}" + (f" ({dist.name} {dist.version})" if dist else "")
    return kinds


def load_factory(kind: str) -> Any:
    """The adapter factory for ``kind``; ChannelConfigError for an unknown kind or a broken plugin."""
    if kind in BUILTIN_ADAPTERS:
        return _load(BUILTIN_ADAPTERS[kind])
    ep = _third_party().get(kind)
    if ep is None:
        known = ", ".join(sorted(available_kinds()))
        raise ChannelConfigError(f"unknown channel kind {kind!r} (known: {known})")
    try:
        return ep.load()
    except Exception as exc:  # a plugin that does not import is a configuration problem of this install
        raise ChannelConfigError(
            f"channel kind {kind!r}: entry point {ep.value} failed to load: {type(exc).__name__}: {exc}"
        ) from exc


def validate_channel(channel: Channel) -> BaseModel | None:
    """Check a channel's config without resolving secrets (for ``trapalert channels add``)."""
    factory = load_factory(channel.kind)
    model = getattr(factory, "config_model", None)
    if model is None:
        return None
    return parse_config(model, channel)


def build_notifier(channel: Channel, secrets: SecretResolver, http: HttpSettings | None = None) -> Notifier:
    """Build the adapter for ``channel``; raises ChannelConfigError with a clear message on any problem."""
    http = http or HttpSettings()
    factory = load_factory(channel.kind)
    build = getattr(factory, "from_channel", factory)
    try:
        notifier = build(channel, secrets, http)
    except ChannelConfigError:
        raise
    except Exception as exc:
        raise ChannelConfigError(
            f"channel {channel.id} ({channel.kind} {channel.name!r}): adapter failed to start: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    for method in ("send_new", "send_update"):
        if not callable(getattr(notifier, method, None)):
            raise ChannelConfigError(f"channel kind {channel.kind!r}: adapter has no {method}() method")
    return notifier
