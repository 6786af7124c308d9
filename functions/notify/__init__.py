"""Notification adapters: one alert, many channels (EarthRanger, CMORE, email, webhook, third-party).

Usage from the send-alert handler::

    from functions.notify import AlertNotice, Channel, DeliveryResult, EnvSecrets, build_notifier, deliver

    notifier = build_notifier(channel, EnvSecrets())          # ChannelConfigError on a bad channel
    result = deliver(notifier, notice, previous=stored_or_None, partial=stored_partial_or_None)

Every channel's config passes :mod:`.safety` (secret names, https, public addresses) and every notice
its channel's privacy policy (:mod:`.privacy`, ``people_photos``) inside ``build_notifier``.

See ``docs/integrations.md`` for the channel configurations and the contract of third-party adapters.
"""

from __future__ import annotations

from .base import (
    AlertNotice,
    CameraRef,
    Channel,
    ChannelConfigError,
    DeliveryError,
    DeliveryResult,
    DetectionRef,
    EnvSecrets,
    HttpSettings,
    Notifier,
    NotifyError,
    ParkRef,
    PermanentDeliveryError,
    SecretResolver,
    TransientDeliveryError,
    close_notifier,
)
from .privacy import apply_privacy
from .registry import ENTRY_POINT_GROUP, available_kinds, build_notifier, validate_channel
from .safety import SECRET_PREFIX, park_secret_names


def deliver(
    notifier: Notifier,
    notice: AlertNotice,
    previous: DeliveryResult | None = None,
    partial: DeliveryResult | None = None,
) -> DeliveryResult:
    """Send ``notice`` through ``notifier``: a new alert, or an update of what ``previous`` describes.

    ``previous``: the stored result of the channel's last successful delivery of this alert (None if it
    was never delivered). ``partial``: the ``partial`` of the last failed attempt of *this* notice, if the
    error carried one. Errors propagate (TransientDeliveryError / PermanentDeliveryError /
    ChannelConfigError), their ``partial`` set when something was already created remotely.
    """
    if previous is None:
        if partial is not None:
            return notifier.send_new(notice, resume=partial)
        return notifier.send_new(notice)
    return notifier.send_update(notice, partial if partial is not None else previous)


__all__ = [
    "ENTRY_POINT_GROUP",
    "AlertNotice",
    "CameraRef",
    "Channel",
    "ChannelConfigError",
    "DeliveryError",
    "DeliveryResult",
    "DetectionRef",
    "EnvSecrets",
    "HttpSettings",
    "Notifier",
    "NotifyError",
    "SECRET_PREFIX",
    "ParkRef",
    "PermanentDeliveryError",
    "SecretResolver",
    "TransientDeliveryError",
    "apply_privacy",
    "available_kinds",
    "build_notifier",
    "close_notifier",
    "deliver",
    "park_secret_names",
    "validate_channel",
]
