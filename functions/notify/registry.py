"""Where a channel kind becomes an adapter: the built-ins plus the ``trapalert.notifiers`` entry points.

A third-party package registers an adapter without forking TrapAlert::

    [project.entry-points."trapalert.notifiers"]
    sms = "my_park_sms:SmsNotifier"

The object an entry point names is a *factory*: either a class/object with a ``from_channel(channel,
secrets, http)`` classmethod, or any callable ``factory(channel, secrets, http) -> Notifier``. It may expose
``config_model`` (a pydantic model) so that ``validate_channel`` can check a config before it is saved.
Built-in kinds cannot be shadowed by an entry point (a warning is logged instead).

Every channel, whatever its kind, passes through :mod:`functions.notify.safety` here (secret setting names,
https, public addresses; ``channels add``, send-alert and ``channels test`` all refuse the same configs) and
every notice it sends through :func:`functions.notify.privacy.apply_privacy` (its ``people_photos``).
The keys all kinds share (``allow_http``, ``allow_private_network``, ``people_photos``) are removed from
the config before the adapter's model sees it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from ..plugins import discover, load_ref, origins
from .base import (
    AlertNotice,
    Channel,
    ChannelConfigError,
    DeliveryResult,
    HttpSettings,
    Notifier,
    SecretResolver,
    parse_config,
)
from .privacy import apply_privacy, policy_of
from .safety import GuardedSecrets, adapter_config, check_channel_config

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "trapalert.notifiers"

BUILTIN_ADAPTERS: dict[str, str] = {
    "earthranger": "functions.notify.earthranger:EarthRangerNotifier",
    "cmore": "functions.notify.cmore:CmoreNotifier",
    "email": "functions.notify.email:EmailNotifier",
    "webhook": "functions.notify.webhook:WebhookNotifier",
    "telegram": "functions.notify.telegram:TelegramNotifier",
    "twilio": "functions.notify.twilio:TwilioNotifier",  # SMS and WhatsApp ("channel" in the config)
}


def _third_party() -> dict[str, Any]:
    """kind -> EntryPoint, read fresh each time (cheap; lets a newly installed adapter appear)."""
    return discover(
        ENTRY_POINT_GROUP, BUILTIN_ADAPTERS, log, "entry point %s=%s ignored: %r is a built-in channel kind"
    )


def available_kinds() -> dict[str, str]:
    """Every channel kind this process can deliver to, with where its adapter comes from."""
    return origins(BUILTIN_ADAPTERS, _third_party())


def load_factory(kind: str) -> Any:
    """The adapter factory for ``kind``; ChannelConfigError for an unknown kind or a broken plugin."""
    if kind in BUILTIN_ADAPTERS:
        return load_ref(BUILTIN_ADAPTERS[kind])
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


def _adapter_channel(channel: Channel) -> Channel:
    """The channel as its adapter sees it: without the keys every kind shares."""
    return channel.model_copy(update={"config": adapter_config(channel.config)})


def _effective(factory: object, channel: Channel) -> dict | None:
    """The config with the adapter model's defaults filled in (None when the adapter has no model)."""
    model = getattr(factory, "config_model", None)
    if model is None:
        return None
    return parse_config(model, _adapter_channel(channel)).model_dump(mode="json")


def _default_settings(factory: object) -> tuple[str, ...]:
    """The secret setting names an adapter's model defaults to (``email``: ``SENDGRID_API_KEY``). They are
    chosen by the code, not by a channel's config, so they are allowed like the park's list."""
    model = getattr(factory, "config_model", None)
    fields = getattr(model, "model_fields", None) or {}
    return tuple(
        f.default for name, f in fields.items() if name.endswith("_setting") and isinstance(f.default, str)
    )


def validate_channel(channel: Channel, *, allowed_secrets: Iterable[str] = ()) -> BaseModel | None:
    """Check a channel's config without resolving secrets (for ``trapalert channels add``).

    ``allowed_secrets``: setting names the channel's park allows besides ``CHANNEL_SECRET_*``
    (:func:`functions.notify.safety.park_secret_names` of the park's settings)."""
    factory = load_factory(channel.kind)
    model = getattr(factory, "config_model", None)
    parsed = parse_config(model, _adapter_channel(channel)) if model is not None else None
    effective = parsed.model_dump(mode="json") if parsed is not None else None
    allowed = (*allowed_secrets, *_default_settings(factory))
    check_channel_config(channel, effective, allowed_secrets=allowed)
    return parsed


def build_notifier(
    channel: Channel,
    secrets: SecretResolver,
    http: HttpSettings | None = None,
    *,
    allowed_secrets: Iterable[str] = (),
) -> Notifier:
    """Build the adapter for ``channel``; raises ChannelConfigError with a clear message on any problem.

    The adapter is checked by :mod:`.safety` first, gets a resolver that only hands out the secrets the
    channel may name, and each notice it sends passes :func:`.privacy.apply_privacy` on the way."""
    http = http or HttpSettings()
    factory = load_factory(channel.kind)
    allowed = (*allowed_secrets, *_default_settings(factory))
    check_channel_config(channel, _effective(factory, channel), allowed_secrets=allowed)
    guarded = GuardedSecrets(secrets, channel, allowed_secrets=allowed)
    build = getattr(factory, "from_channel", factory)
    try:
        notifier = build(_adapter_channel(channel), guarded, http)
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
    return _with_privacy(notifier, channel)


def _with_privacy(notifier: Notifier, channel: Channel) -> Notifier:
    """Make every notice ``notifier`` sends pass through the channel's privacy policy.

    The adapter object itself is returned (its type, attributes and extra methods such as ``check()``
    unchanged), with ``send_new``/``send_update`` replaced on the instance."""
    policy = policy_of(channel)
    if policy == "as_is":
        return notifier
    send_new, send_update = notifier.send_new, notifier.send_update

    @functools.wraps(send_new)
    def private_send_new(notice: AlertNotice, *args, **kwargs) -> DeliveryResult:
        return send_new(apply_privacy(notice, policy), *args, **kwargs)

    @functools.wraps(send_update)
    def private_send_update(notice: AlertNotice, *args, **kwargs) -> DeliveryResult:
        return send_update(apply_privacy(notice, policy), *args, **kwargs)

    try:
        notifier.send_new = private_send_new  # type: ignore[method-assign]
        notifier.send_update = private_send_update  # type: ignore[method-assign]
    except (AttributeError, TypeError, ValueError) as exc:  # __slots__, or a frozen pydantic model
        raise ChannelConfigError(
            f"channel kind {channel.kind!r}: adapter does not allow its privacy policy to be applied "
            f"({exc}); set people_photos to as_is only if the audience may see people"
        ) from None
    return notifier
