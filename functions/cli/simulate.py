"""`trapalert simulate camera`: send a camera-trap email, in SendGrid Inbound Parse's real format, to the
running stack's webhook and print what became of it (detections, alert, deliveries per channel).

The POST body comes from functions/inbound/sendgrid_payload.py (the same builder the inbound tests and
benchmark use), so the webhook sees exactly what SendGrid would send, parsed or raw ("send raw") mode.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from ..adapters.deliveries import DeliveryRepository
from ..adapters.email_trace import EmailTrace
from ..adapters.inbound_repo import InboundRepository
from ..adapters.parks import ParkRepository
from ..domain.rules import CATEGORY_NAMES
from ..settings import STACK_STATE_FILE
from .base import cli, db


@cli.group("simulate", help="Developer tools that imitate the outside world against the local stack.")
def simulate() -> None:
    pass


def _webhook_url(url: str | None) -> str:
    if url:
        return url
    if STACK_STATE_FILE.is_file():
        state = json.loads(STACK_STATE_FILE.read_text(encoding="utf-8"))
        if state.get("webhook_url"):
            return state["webhook_url"]
    raise click.ClickException(
        f"no webhook URL: start the stack (`trapalert stack up`) or give --url ({STACK_STATE_FILE} has none)"
    )


def find_camera(database, name: str, park: str | None, *, need_sender: bool = True) -> dict[str, Any]:
    rows = ParkRepository(database).cameras_named(name, park)
    if not rows:
        raise click.ClickException(
            f"no camera {name!r}" + (f" in park {park}" if park else "") + " (see `trapalert cameras list`)"
        )
    if len(rows) > 1:
        raise click.ClickException(
            f"camera {name!r} exists in parks {', '.join(r['park_slug'] for r in rows)}: give --park"
        )
    cam = rows[0]
    if need_sender and not cam["sender_addresses"]:
        raise click.ClickException(
            f"camera {name} has no sender address: the webhook could not recognise it "
            f"(add one with `trapalert cameras add ... --sender`, or give the camera's --token)"
        )
    return cam


@simulate.command("camera", help="Email PHOTO as camera NAME through the webhook and follow it to delivery.")
@click.option("--camera", "camera_name", required=True, help="camera name (or alias)")
@click.option("--park", help="park slug (needed when the name is used in several parks)")
@click.option(
    "--image",
    "images",
    required=True,
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="photo or video clip (MP4, MOV, AVI; repeatable: a burst)",
)
@click.option("--raw", is_flag=True, help='SendGrid "send raw" mode: the whole MIME message in field email')
@click.option("--url", help="webhook URL (default: .trapalert/stack.json's webhook_url)")
@click.option("--token", help="the camera's secret token: mail its token address (park address +token)")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="seconds to wait for delivery")
@click.option("--json", "as_json", is_flag=True, help="print the outcome as JSON")
def simulate_camera(camera_name, park, images, raw, url, token, timeout, as_json) -> None:
    import httpx

    from ..inbound.sendgrid_payload import ImageFile, build_payload

    database = db()
    cam = find_camera(database, camera_name, park, need_sender=not token)
    target = _webhook_url(url)
    to = cam["park_inbound_address"] or f"{cam['park_slug']}@alerts.trapalert.local"
    if token:  # the camera authenticates with its token (docs/inbound.md, "Authenticating cameras")
        local, _, domain = to.partition("@")
        to = f"{local}+{token}@{domain}"
    label = (cam["aliases"] or [cam["name"]])[0]
    payload = build_payload(
        sender=cam["sender_addresses"][0] if cam["sender_addresses"] else "camera@simulated.invalid",
        to=to,
        subject=f"{label} motion detected",
        text=f"Camera: {label}\nTriggered: motion\n",
        mode="raw" if raw else "parsed",
        images=[_attachment(ImageFile, p) for p in images],
    )
    started = time.monotonic()
    try:
        response = httpx.post(target, content=payload.body, headers=payload.headers(), timeout=60)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"could not POST to {_redact(target)}: {exc}") from None
    click.echo(
        f"POST {_redact(target)} ({payload.mode}, {len(payload.body)} bytes, Message-ID "
        f"{payload.message_id}) -> {response.status_code}",
        err=as_json,
    )
    if not response.is_success:
        raise click.ClickException(f"the webhook answered {response.status_code}: {response.text[:300]}")

    outcome = follow(database, payload.message_id, deadline=started + timeout)
    outcome["seconds"] = round(time.monotonic() - started, 3)
    if as_json:
        from .base import echo_json

        echo_json(outcome)
    else:
        _print(outcome)
    if outcome["state"] != "done":
        raise click.ClickException(f"not finished after {timeout:.0f} s: {outcome['state']}")


def follow(database, message_id: str | None, *, deadline: float, interval: float = 0.2) -> dict[str, Any]:
    """Poll until the email's images are scored and every delivery of their alert(s) is final."""
    trace, inbound, deliveries = (
        EmailTrace(database),
        InboundRepository(database),
        DeliveryRepository(database),
    )
    out: dict[str, Any] = {"state": "email not recorded", "email": None, "images": [], "alerts": []}
    while True:
        email = trace.email_by_message_id(message_id) if message_id else None
        if email is not None:
            out["email"] = email
            out["state"] = f"email {email['status']}"
            images = [_image_view(img) for img in inbound.images_of(email["id"])]
            for img in images:
                img["detections"] = [
                    {**d, "conf": round(float(d["conf"]), 3)} for d in deliveries.detections(img["id"])
                ]
            out["images"] = images
            pending = [i for i in images if i["status"] == "stored"]
            if email["status"] in ("quarantined", "rejected"):
                out["state"] = "done"
                return out
            if images and not pending:
                alerts = trace.alerts_of_images([i["id"] for i in images])
                final = True
                for a in alerts:
                    a["deliveries"] = [_delivery(d) for d in deliveries.deliveries_of(a["id"])]
                    done = {
                        d["channel"]
                        for d in a["deliveries"]
                        if d["status"] == "delivered"
                        and d["delivered_version"] >= a["version"]
                        or d["status"] == "failed"
                    }
                    if len(done) < len(a["channel_ids"]):
                        final = False
                out["alerts"] = alerts
                out["state"] = "done" if final else "delivering"
                if final:
                    return out
            else:
                out["state"] = "scoring"
        if time.monotonic() >= deadline:
            return out
        time.sleep(interval)


def _attachment(image_file, path: Path):
    """A photo, or a video clip with its container's content type (functions/inbound/video.py)."""
    from ..inbound.video import VIDEO_FORMATS, sniff_video

    data = path.read_bytes()
    fmt = sniff_video(data)
    return image_file(path.name, data, VIDEO_FORMATS[fmt][0] if fmt else "image/jpeg")


def _image_view(img: dict[str, Any]) -> dict[str, Any]:
    out = {k: img[k] for k in ("id", "filename", "status", "reason", "alert_id")}
    if img.get("clip_image_id") is not None:  # a frame of a clip: its number and time in the clip
        out |= {k: img[k] for k in ("clip_image_id", "frame_number", "frame_time_s")}
    if img.get("video"):  # a clip: the frames the scoring service sampled and scored
        v = img["video"]
        out["video"] = {
            "frames_scored": len(v.get("frames_processed") or []),
            **{
                k: v.get(k)
                for k in (
                    "frames_processed",
                    "frames_with_detections",
                    "frame_rate",
                    "duration_s",
                    "codec",
                    "truncated",
                )
            },
        }
    return out


def _delivery(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "channel": row["channel_name"],
        "kind": row["channel_kind"],
        **{
            k: row[k]
            for k in ("status", "attempts", "delivered_version", "external_id", "last_error", "delivered_at")
        },
    }


def _print(outcome: dict[str, Any]) -> None:
    email = outcome["email"]
    if email is None:
        click.echo("the email was not recorded (is process-email running?)")
        return
    click.echo(
        f"email {email['id']}: {email['status']}" + (f" ({email['reason']})" if email["reason"] else "")
    )
    for img in outcome["images"]:
        click.echo(
            f"  image {img['id']} {img['filename']}: {img['status']}"
            + (f" ({img['reason']})" if img["reason"] else "")
        )
        if img.get("video"):
            v = img["video"]
            click.echo(
                f"    clip: {v['frames_scored']} frames scored ({v['codec']}, {v['duration_s']} s), "
                f"detections in frames {v['frames_with_detections'] or 'none'}"
            )
        for d in img["detections"]:
            click.echo(
                f"    {_category(d['category'])} {float(d['conf']):.0%} at "
                f"[{d['bbox_x']:.2f}, {d['bbox_y']:.2f}, {d['bbox_w']:.2f}, {d['bbox_h']:.2f}]"
            )
        if not img["detections"] and img["status"] == "scored":
            click.echo("    no detections")
    if not outcome["alerts"] and outcome["state"] == "done":
        click.echo("no alert")
    for a in outcome["alerts"]:
        click.echo(
            f"alert {a['id']} v{a['version']}: {', '.join(map(_category, a['categories']))} "
            f"{float(a['max_conf'] or 0):.0%}, {a['image_count']} photo(s)"
        )
        if not a["channel_ids"]:
            click.echo("  the park has no alert channel (`trapalert channels add`)")
        for d in a["deliveries"]:
            extra = f" -> {d['external_id']}" if d["status"] == "delivered" and d["external_id"] else ""
            if d["status"] == "failed":
                extra = f": {d['last_error']}"
            click.echo(
                f"  {d['channel']} ({d['kind']}): {d['status']} after {d['attempts']} attempt(s){extra}"
            )
    click.echo(f"{outcome['state']} in {outcome['seconds']} s")


def _category(c: str) -> str:
    return CATEGORY_NAMES.get(str(c), str(c))


def _redact(url: str) -> str:
    """The function key in ?code= is a credential: never print it."""
    import re

    return re.sub(r"([?&]code=)[^&]+", r"\1***", url)
