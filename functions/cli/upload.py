"""`trapalert upload --park P --camera C [--tz Z] FILES...`: photos from an SD card or a phone (files or zips)
through the same path as emailed photos, on the bulk lane (functions/inbound/upload.py)."""

from __future__ import annotations

from pathlib import Path

import click

from ..adapters.audit_repo import cli_actor
from .base import cli, echo_json, echo_table, services


@cli.command("upload", help="Upload photos (or zips of photos) for one camera; they alert like emailed ones.")
@click.option("--park", required=True, help="park slug")
@click.option("--camera", required=True, help="camera name (or alias, or id)")
@click.option("--tz", help="time zone of the camera's clock (default: the camera's, else the park's)")
@click.option("--actor", help="who uploads (default: $TRAPALERT_ACTOR or the OS user)")
@click.option("--json", "as_json", is_flag=True)
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def upload(park, camera, tz, actor, as_json, files) -> None:
    from ..inbound.upload import UploadError, receive_upload

    svc = services()
    max_bytes = svc.settings.upload_max_bytes
    total = sum(f.stat().st_size for f in files)
    if total > max_bytes:
        raise click.ClickException(f"{total} bytes to upload; the limit is {max_bytes} (UPLOAD_MAX_BYTES)")
    try:
        results = receive_upload(
            svc,
            park_slug=park,
            camera_name=camera,
            files=[(f.name, f.read_bytes()) for f in files],
            tz=tz,
            uploader=cli_actor(actor),
            via="cli",
        )
    except UploadError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json(results)
    else:
        echo_table(results, ["file", "status", "image_id", "reason"])
    if results and not any(r["status"] in ("stored", "duplicate") for r in results):
        raise SystemExit(1)
