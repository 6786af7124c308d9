"""Safe channel configs: what a channel may name and reach, checked in one place for every kind.

Called by :func:`functions.notify.registry.validate_channel` (``trapalert channels add``) and
:func:`functions.notify.registry.build_notifier` (send-alert, ops notices, ``trapalert channels test``), so
a config that is refused here is refused everywhere. Each refusal is a :class:`ChannelConfigError` whose
message says what to change.

* **Secret settings**: every config key ending in ``_setting`` (at any depth) must name an app setting
  that starts with :data:`SECRET_PREFIX` (``CHANNEL_SECRET_``), is listed for the channel's park
  (``parks.settings.channel_secrets``: a list of setting names) or is the adapter's own default for that key
  (chosen by the code, not by a config: ``email``'s ``SENDGRID_API_KEY``). Otherwise a config could name any
  app setting (``DATABASE_URL``) and send its value to a server of its choosing. The resolver an adapter
  gets at build time enforces the same rule (:class:`GuardedSecrets`), so a name the config does not show
  is refused too.
* **URLs**: every key ending in ``url`` or ``_root`` (and each kind's known base URL keys, see
  :data:`URL_KEYS`) must be ``https`` unless the config says ``"allow_http": true`` (logged at WARNING).
  The host is resolved (``socket.getaddrinfo``) and every address must be public: loopback, link-local
  (169.254.0.0/16 with the cloud metadata service, fe80::/10), private (RFC 1918, fc00::/7, the VNet),
  shared/CGNAT (100.64.0.0/10), unspecified, multicast and reserved addresses are refused unless the
  config says ``"allow_private_network": true`` (logged at WARNING). A URL held in a secret setting
  (``url_setting``) is checked when it is resolved. A host that does not resolve *now* is not a config
  error (DNS may be down): the request then fails like any unreachable service and is retried.
* **Common keys** (:data:`COMMON_KEYS`: the two flags and ``people_photos``) belong to every kind; they are
  checked here and removed from the config before the adapter's own model sees it.

Known gap: the address is checked when the adapter is built, not when it connects; a hostile DNS server
that answers a public address first and a private one a moment later (DNS rebinding) is not stopped here.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .base import Channel, ChannelConfigError, SecretResolver

log = logging.getLogger(__name__)

SECRET_PREFIX = "CHANNEL_SECRET_"
PARK_SECRETS_KEY = "channel_secrets"  # parks.settings key: setting names this park's channels may use
COMMON_KEYS = ("allow_http", "allow_private_network", "people_photos")
PEOPLE_PHOTOS = ("as_is", "blurred", "none")

# base-URL / host keys of the built-in kinds (besides the generic *url / *_root rule)
URL_KEYS: dict[str, tuple[str, ...]] = {
    "earthranger": ("service_root",),
    "cmore": ("base_url",),
    "email": ("host",),
    "webhook": ("url",),
    "telegram": ("api_root",),
    "twilio": ("api_root",),
}
HOST_KEYS: dict[str, tuple[str, ...]] = {"email": ("smtp_host",)}  # bare host names (no scheme)

_SENDGRID_KEYS = frozenset({"host", "api_key_setting"})
_SMTP_KEYS = frozenset({"smtp_host", "smtp_username_setting", "smtp_password_setting"})
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
_URL_KEY = re.compile(r"(url|_root)$", re.I)
_DNS_TTL_S = 60.0

# ranges that ipaddress does not flag as private on every Python version, named for the refusal message
_EXTRA_RANGES = {
    ipaddress.ip_network("100.64.0.0/10"): "shared address space (CGNAT)",
    ipaddress.ip_network("0.0.0.0/8"): "'this network'",
    ipaddress.ip_network("fc00::/7"): "unique local (private)",
    ipaddress.ip_network("fe80::/10"): "link-local",
}


# ------------------------------------------------------------------------------------------------ helpers
def flag(config: Mapping[str, Any], name: str) -> bool:
    """A boolean flag of the config (only a JSON ``true`` counts)."""
    return config.get(name) is True


def adapter_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config without the keys every kind shares (what the adapter's own model validates)."""
    return {k: v for k, v in config.items() if k not in COMMON_KEYS}


def park_secret_names(park_settings: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The extra secret setting names a park allows (``parks.settings.channel_secrets``)."""
    names = (park_settings or {}).get(PARK_SECRETS_KEY) or []
    if not isinstance(names, list):
        return ()
    return tuple(n for n in names if isinstance(n, str) and _SETTING_NAME.match(n))


def secret_name_allowed(name: str, allowed: Iterable[str] = ()) -> bool:
    return isinstance(name, str) and (name.startswith(SECRET_PREFIX) or name in set(allowed))


def _walk(value: Any, path: str = ""):
    """(path, key, value) of every mapping entry in ``value``, depth first."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            yield where, str(key), item
            yield from _walk(item, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")


def _label(channel: Channel) -> str:
    return f"channel {channel.id} ({channel.kind} {channel.name!r})"


# ------------------------------------------------------------------------------------------- addresses
_dns_cache: dict[str, tuple[float, list[str]]] = {}
_dns_lock = threading.Lock()


def resolve(host: str) -> list[str]:
    """The addresses ``host`` resolves to (cached for a minute); [] when it does not resolve now."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    now = time.monotonic()
    with _dns_lock:
        hit = _dns_cache.get(host)
        if hit and now - hit[0] < _DNS_TTL_S:
            return hit[1]
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    addresses = sorted({str(info[4][0]).split("%", 1)[0] for info in infos})
    with _dns_lock:
        _dns_cache[host] = (now, addresses)
    return addresses


def non_public_reason(address: str) -> str | None:
    """Why ``address`` is not a public unicast address (None when it is one)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata service)" if str(ip).startswith("169.254.") else "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    for net, name in _EXTRA_RANGES.items():
        if ip.version == net.version and ip in net:
            return name
    if ip.is_private:
        return "private (RFC 1918 / VNet)"
    if ip.is_reserved or not ip.is_global:
        return "reserved / not globally routable"
    return None


def check_host(host: str, where: str, *, allow_private: bool) -> list[str]:
    """Problems with ``host`` (empty when it is public or private networks are allowed)."""
    if allow_private or not host:
        return []
    problems = []
    for address in resolve(host):
        reason = non_public_reason(address)
        if reason:
            problems.append(
                f"{where}: host {host} resolves to {address}, a {reason} address; "
                'set "allow_private_network": true only for a server on your own network'
            )
            break
    return problems


def check_url(url: str, where: str, *, allow_http: bool, allow_private: bool) -> list[str]:
    """Problems with one URL of a config (scheme, then the addresses of its host)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return [f"{where}: must be an https URL"]
    if scheme == "http" and not allow_http:
        return [
            f"{where}: plain http sends credentials and alerts in clear; use https "
            '(or set "allow_http": true for a server on premises)'
        ]
    return check_host(parts.hostname, where, allow_private=allow_private)


# ------------------------------------------------------------------------------------------ the checks
def config_problems(
    channel: Channel, effective: Mapping[str, Any] | None = None, *, allowed_secrets: Iterable[str] = ()
) -> list[str]:
    """Every safety problem of ``channel.config``. ``effective``: the config as the adapter's model parsed it
    (defaults filled in), so that a default secret name or URL is checked too."""
    config = channel.config
    allowed = set(allowed_secrets)
    problems: list[str] = []
    for key in ("allow_http", "allow_private_network"):
        if key in config and not isinstance(config[key], bool):
            problems.append(f"{key}: must be true or false")
    photos = config.get("people_photos")
    if photos is not None and photos not in PEOPLE_PHOTOS:
        problems.append(f"people_photos: must be one of {', '.join(PEOPLE_PHOTOS)}")
    allow_http, allow_private = flag(config, "allow_http"), flag(config, "allow_private_network")

    merged: dict[str, Any] = {**dict(effective or {}), **adapter_config(config)}
    if channel.kind == "email":  # only the keys of the email mode in use are connected to / resolved
        mode = merged.get("mode", "sendgrid")
        unused = {"sendgrid": _SMTP_KEYS, "smtp": _SENDGRID_KEYS}.get(mode, _SMTP_KEYS | _SENDGRID_KEYS)
        for key in unused:
            merged.pop(key, None)
    url_keys = set(URL_KEYS.get(channel.kind, ()))
    host_keys = set(HOST_KEYS.get(channel.kind, ()))
    seen: set[str] = set()
    for where, key, value in _walk(merged):
        if where in seen:
            continue
        seen.add(where)
        if key.endswith("_setting"):
            if value is None:
                continue
            if not isinstance(value, str) or not _SETTING_NAME.match(value):
                problems.append(f"{where}: must be the NAME of an app setting")
            elif not secret_name_allowed(value, allowed):
                problems.append(
                    f"{where}: secret setting {value} is not allowed; channel secrets must be app settings "
                    f"named {SECRET_PREFIX}* (or listed in the park's settings.{PARK_SECRETS_KEY})"
                )
        elif isinstance(value, str) and value and (key in url_keys or _URL_KEY.search(key)):
            if "." in where and key not in url_keys:
                continue  # nested values (headers, templates) are not addresses the adapter connects to
            problems += check_url(value, where, allow_http=allow_http, allow_private=allow_private)
        elif isinstance(value, str) and value and key in host_keys and "." not in where:
            problems += check_host(value, where, allow_private=allow_private)
    return problems


_warned: set[tuple[int, str]] = set()


def check_channel_config(
    channel: Channel, effective: Mapping[str, Any] | None = None, *, allowed_secrets: Iterable[str] = ()
) -> None:
    """Raise ChannelConfigError listing every safety problem; log the relaxing flags (once per channel)."""
    problems = config_problems(channel, effective, allowed_secrets=allowed_secrets)
    if problems:
        raise ChannelConfigError(f"{_label(channel)}: unsafe config: " + "; ".join(problems))
    for key in ("allow_http", "allow_private_network"):
        if flag(channel.config, key) and (channel.id, key) not in _warned:
            _warned.add((channel.id, key))
            log.warning("%s: %s is set: %s", _label(channel), key, _FLAG_MEANING[key])


_FLAG_MEANING = {
    "allow_http": "plain http URLs are accepted (credentials and alerts travel in clear)",
    "allow_private_network": "loopback, link-local and private addresses are reachable",
}


class GuardedSecrets:
    """The resolver an adapter is built with: refuses setting names outside the prefix / the park's list,
    and checks a URL that comes out of a ``*url_setting`` before the adapter can use it."""

    def __init__(
        self,
        inner: SecretResolver,
        channel: Channel,
        *,
        allowed_secrets: Iterable[str] = (),
    ):
        self._inner = inner
        self._channel = channel
        self._allowed = set(allowed_secrets)
        self._url_settings = {
            value
            for _, key, value in _walk(adapter_config(channel.config))
            if key.endswith("_setting") and "url" in key.lower() and isinstance(value, str)
        }

    def __call__(self, name: str) -> str:
        if not secret_name_allowed(name, self._allowed):
            raise ChannelConfigError(
                f"{_label(self._channel)}: secret setting {name!r} is not allowed; channel secrets must be "
                f"app settings named {SECRET_PREFIX}* (or listed in the park's settings.{PARK_SECRETS_KEY})"
            )
        value = self._inner(name)
        if name in self._url_settings:
            cfg = self._channel.config
            problems = check_url(
                value,
                f"the URL in {name}",
                allow_http=flag(cfg, "allow_http"),
                allow_private=flag(cfg, "allow_private_network"),
            )
            if problems:  # the URL itself may be secret: the problems name the setting, not the URL
                raise ChannelConfigError(
                    f"{_label(self._channel)}: unsafe config: "
                    + "; ".join(p.replace(value, "<url>") for p in problems)
                )
        return value

    def scrub(self, text: str) -> str:  # the send-alert handler's wrapper may look for it
        scrub = getattr(self._inner, "scrub", None)
        return scrub(text) if callable(scrub) else text

    def __repr__(self) -> str:
        return f"GuardedSecrets({self._inner!r})"
