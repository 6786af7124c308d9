"""Photos given as links (RidgeTec): fetched by process-image, never by the webhook (which must answer fast).

Rules of a fetch (``fetch``):
- the URL is ``https`` with no user or password and the default port, on a host of the brand's allow-list
  (``Brand.link_hosts``, exact host names); a redirect is followed (at most ``MAX_REDIRECTS``) only to such
  a URL too;
- at most ``LINK_PHOTO_MAX_BYTES`` (checked on Content-Length and while reading), within
  ``LINK_PHOTO_TIMEOUT_S`` for the whole fetch;
- no cookies, no credentials, no proxy from the environment.
Outcomes: the bytes; or ``LinkPhotoUnavailable`` (transient: connection failed, timeout, 408, 425, 429, 5xx;
it carries the remote's ``Retry-After``): process-image raises it and the retry middleware tries the message
again later, like any transient failure, then poisons it for ops after the horizon; or ``LinkPhotoRefused``
(permanent: host not allowed, not https, 404/410 and other 4xx, too big, a redirect loop): the image is
recorded ``failed`` with the reason (``link_photo_*`` below) and ops see it in ``trapalert inbound show``.
A fetched body that is not a usable photo (a login page, a corrupt JPEG) is ``failed`` too, with
images.py's reason. Nothing is dropped silently.

``LINK_PHOTO_ALLOW_HTTP_HOSTS`` (TEST ONLY) names host[:port]s that may answer over plain http and are allowed
for every brand: the local stand-ins of the tests cannot have a public certificate. Leave it empty in Azure.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpx

from ..adapters.link_photos_repo import LinkPhotosRepository
from .images import inspect_image, store_photo

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
USER_AGENT = "TrapAlert link-photo fetcher"

# reasons recorded on images.reason (a code, ': ', details)
NOT_ALLOWED = "link_photo_not_allowed"  # not https, or a host outside the brand's allow-list
NOT_FOUND = "link_photo_not_found"  # 404 / 410: the vendor no longer has it
REFUSED = "link_photo_refused"  # another 4xx (401, 403: an expired signed link, ...)
TOO_LARGE = "link_photo_too_large"  # over LINK_PHOTO_MAX_BYTES
TOO_MANY_REDIRECTS = "link_photo_redirects"
NOT_A_PHOTO = "link_photo_not_a_photo"  # the body is not a usable JPEG/PNG (images.py's reason follows)
NO_ALLOW_LIST = "link_photo_no_allow_list"  # the brand that gave the link is not installed any more


class LinkPhotoRefused(Exception):
    """Permanent: the link will never give a photo. ``reason`` is what the image row records."""

    def __init__(self, code: str, detail: str):
        super().__init__(f"{code}: {detail}"[:500])
        self.reason = f"{code}: {detail}"[:500]


class LinkPhotoUnavailable(Exception):
    """Transient: try again later (``retry_after``: seconds the vendor asked for, read by the retry
    middleware)."""

    def __init__(self, detail: str, retry_after: float | None = None):
        super().__init__(f"link photo unavailable: {detail}"[:500])
        self.retry_after = retry_after


@dataclass(frozen=True)
class LinkPolicy:
    max_bytes: int = 20 * 1024 * 1024
    timeout_s: float = 20.0
    allow_http_hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, settings) -> LinkPolicy:
        hosts = frozenset(
            h.strip().lower() for h in (settings.link_photo_allow_http_hosts or "").split(",") if h.strip()
        )
        return cls(settings.link_photo_max_bytes, settings.link_photo_timeout_s, hosts)


@dataclass
class Fetched:
    data: bytes
    content_type: str | None
    url: str  # after redirects


def check_url(url: str, allowed_hosts: tuple[str, ...] | frozenset[str], policy: LinkPolicy) -> None:
    """LinkPhotoRefused unless ``url`` may be fetched (see the module docstring)."""
    try:
        parts = urlsplit(url)
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError as exc:
        raise LinkPhotoRefused(NOT_ALLOWED, f"unreadable URL ({exc})") from None
    if parts.username is not None or parts.password is not None:
        raise LinkPhotoRefused(NOT_ALLOWED, "a URL with credentials")
    netloc = f"{host}:{port}" if port is not None else host
    if parts.scheme == "http" and (netloc in policy.allow_http_hosts or host in policy.allow_http_hosts):
        return  # a test stand-in (LINK_PHOTO_ALLOW_HTTP_HOSTS)
    if parts.scheme != "https":
        raise LinkPhotoRefused(NOT_ALLOWED, f"{parts.scheme or 'no'} scheme: only https links are fetched")
    if port not in (None, 443):
        raise LinkPhotoRefused(NOT_ALLOWED, f"port {port}: only https on port 443")
    if host not in {h.lower() for h in allowed_hosts}:
        raise LinkPhotoRefused(
            NOT_ALLOWED, f"host {host or '-'} is not one of {', '.join(sorted(allowed_hosts)) or 'no hosts'}"
        )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def fetch(
    url: str,
    allowed_hosts: tuple[str, ...] | frozenset[str],
    policy: LinkPolicy,
    client: httpx.Client | None = None,
) -> Fetched:
    """The photo behind ``url``; LinkPhotoRefused (permanent) or LinkPhotoUnavailable (transient)."""
    own = client is None
    client = client or httpx.Client(
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(policy.timeout_s),
        headers={"User-Agent": USER_AGENT, "Accept": "image/jpeg, image/png, image/*;q=0.8"},
    )
    deadline = time.monotonic() + policy.timeout_s
    try:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, allowed_hosts, policy)
            try:
                with client.stream("GET", url) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise LinkPhotoRefused(REFUSED, f"{response.status_code} without a Location")
                        url = urljoin(url, location)
                        continue
                    _check_status(response)
                    return Fetched(
                        _read(response, policy, deadline), response.headers.get("content-type"), url
                    )
            except httpx.TimeoutException as exc:
                raise LinkPhotoUnavailable(
                    f"timeout after {policy.timeout_s} s ({type(exc).__name__})"
                ) from None
            except httpx.TransportError as exc:
                raise LinkPhotoUnavailable(f"{type(exc).__name__}: {exc}"[:300]) from None
        raise LinkPhotoRefused(TOO_MANY_REDIRECTS, f"more than {MAX_REDIRECTS} redirects")
    finally:
        if own:
            client.close()


def _check_status(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if status in (408, 425, 429) or status >= 500:
        raise LinkPhotoUnavailable(f"HTTP {status}", _retry_after(response))
    if status in (404, 410):
        raise LinkPhotoRefused(NOT_FOUND, f"HTTP {status}")
    raise LinkPhotoRefused(REFUSED, f"HTTP {status}")


def _read(response: httpx.Response, policy: LinkPolicy, deadline: float) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > policy.max_bytes:
        raise LinkPhotoRefused(TOO_LARGE, f"{declared} bytes, limit {policy.max_bytes}")
    chunks, size = [], 0
    for chunk in response.iter_bytes(64 * 1024):
        size += len(chunk)
        if size > policy.max_bytes:
            raise LinkPhotoRefused(TOO_LARGE, f"over {policy.max_bytes} bytes")
        if time.monotonic() > deadline:
            raise LinkPhotoUnavailable(f"slower than {policy.timeout_s} s")
        chunks.append(chunk)
    return b"".join(chunks)


def allowed_hosts_for(brand_name: str | None) -> tuple[str, ...] | None:
    """The allow-list of the brand that gave the link (None when that brand is not installed)."""
    from .brands import brands

    brand = brands().get(brand_name or "")
    return tuple(getattr(brand, "link_hosts", ()) or ()) if brand is not None else None


def resolve_link_photo(svc, image_id: int, client: httpx.Client | None = None) -> str | None:
    """Fetch and store the photo of a ``linked`` image (process-image's first step for it): the image's
    status afterwards ('stored' to go on; 'failed'/'rejected' with the reason), None when it is not a link
    photo waiting. Raises LinkPhotoUnavailable on a transient failure (the message is retried)."""
    repo = LinkPhotosRepository(svc.db)
    row = repo.link_photo(image_id)
    if row is None or row["status"] != "linked" or not row["source_url"]:
        return None
    policy = LinkPolicy.from_settings(svc.settings)
    hosts = allowed_hosts_for(row["source_brand"])
    try:
        if hosts is None:
            raise LinkPhotoRefused(NO_ALLOW_LIST, f"brand {row['source_brand']!r} is not installed")
        fetched = fetch(row["source_url"], hosts, policy, client)
    except LinkPhotoRefused as exc:
        return _failed(repo, image_id, exc.reason, row)
    check = inspect_image(
        fetched.data,
        declared_type=fetched.content_type,
        max_pixels=svc.settings.max_image_pixels,
        tz=row["tz"],
        email_date=row["taken_at"],
        received_at=row["taken_at"],
    )
    if check.status != "stored":
        return _failed(repo, image_id, f"{NOT_A_PHOTO}: {check.reason}", row)
    exif_time = check.taken_at_source == "exif"
    taken_at = check.taken_at if exif_time else row["taken_at"]
    check.taken_at = taken_at
    name = store_photo(
        svc.storage,
        fetched.data,
        check,
        park_slug=row["park_slug"],
        park_id=row["park_id"],
        camera_name=row["camera_name"],
        camera_id=row["camera_id"],
        tz=row["tz"],
        correlation_id=str(row["correlation_id"]),
        filename=row["filename"] or "",
        source="link",
    )
    status, reason = repo.store_fetched(
        image_id,
        {
            "status": "stored",
            "reason": None,
            "blob_name": name,
            "content_type": check.content_type,
            **check.facts(),
            "taken_at_source": "exif" if exif_time else row["taken_at_source"],
        },
    )
    log.info("link photo %s fetched: %s", image_id, status, extra={"image_id": image_id, "reason": reason})
    return status


def _failed(repo: LinkPhotosRepository, image_id: int, reason: str, row) -> str:
    if repo.mark_failed(image_id, reason):
        log.warning(
            "link photo %s of camera %s cannot be fetched: %s",
            image_id,
            row["camera_name"],
            reason,
            extra={"image_id": image_id, "camera_id": row["camera_id"], "reason": reason},
        )
    return "failed"
