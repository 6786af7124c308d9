"""`trapalert batch`: score a folder of photos in the bulk lane, and follow, fetch or cancel a batch.

    trapalert batch submit --park P --dir PHOTOS/ [--camera C] [--wait]
    trapalert batch status ID        trapalert batch results ID [--out FILE]        trapalert batch cancel ID

``submit`` uploads every file of the folder (recursively, hidden files skipped) to
``images/batch/<park>/<sha256>.<ext>``: an upload is resumable, because a photo whose hash is already there
is not sent again. It shows the time and cost estimate (functions/cost/estimate.py ``estimate_batch``, the
same numbers as `trapalert plan --images N`), submits the batch (the same code as ``POST /api/batch``) and
waits for it with ``--wait``. Results are in the MegaDetector batch output format, with each photo's path
relative to the folder, so Timelapse opens them from that folder.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import time
from pathlib import Path

import click

from .. import names
from ..adapters.batch_repo import UPLOAD_PREFIX, BatchRepository, list_blob_names
from ..handlers import batch as batch_handler
from .base import cli, echo_json, services

POLL_S = 2.0


@cli.group(help="Batch scoring in the bulk lane (MegaDetector output format; never delays live alerts).")
def batch() -> None:
    pass


def photo_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def upload_folder(
    svc, park: dict, folder: Path, *, show_progress: bool = True
) -> tuple[list[str], list[str], int]:
    """Upload the folder's files (skipping those already uploaded); return (files, blobs, uploaded)."""
    prefix = f"{UPLOAD_PREFIX}{park['slug']}/"
    already = set(list_blob_names(svc.storage, prefix, batch_handler.MAX_ITEMS * 2))
    paths = photo_files(folder)
    if len(paths) > batch_handler.MAX_ITEMS:
        raise click.ClickException(f"{len(paths)} files: at most {batch_handler.MAX_ITEMS} in one batch")
    files, blobs, uploaded = [], [], 0
    stream = click.get_text_stream("stderr")
    with click.progressbar(
        paths, label="uploading", show_pos=True, file=stream, hidden=not show_progress
    ) as bar:
        for path in bar:
            data = path.read_bytes()
            ext = path.suffix.lower().lstrip(".")[:8] or "bin"
            blob = f"{prefix}{hashlib.sha256(data).hexdigest()}.{ext}"
            if blob not in already:
                content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                svc.storage.put_blob(names.IMAGES_CONTAINER, blob, data, content_type=content_type)
                already.add(blob)
                uploaded += 1
            files.append(path.relative_to(folder).as_posix())
            blobs.append(blob)
    return files, blobs, uploaded


def show_estimate(count: int, model: str, compute: str) -> None:
    try:
        from ..cost.estimate import estimate_batch

        est = estimate_batch(count, model, compute)
    except Exception as exc:  # noqa: BLE001 - an estimate is advice: a missing table never stops a batch
        click.echo(f"estimate unavailable: {exc}", err=True)
        return
    click.echo(
        f"estimate: {count:,} photos with {est['model']} on {est['hardware']}: about {est['finish']}, "
        f"${est['cost_usd']['total']:.2f} (trapalert plan --images {count})",
        err=True,
    )


def load(svc, ref: str) -> dict:
    found = BatchRepository(svc.db).get(ref)
    if found is None:
        raise click.ClickException(f"no batch {ref}")
    return found


def wait_for(svc, ref: str, *, quiet: bool = False) -> dict:
    """Poll until the batch is no longer running; return its status."""
    last = None
    while True:
        status = batch_handler.status(svc, load(svc, ref))
        line = (
            f"{status['state']}: {status['done']}/{status['total']} ({status['progress']['failed']} failed)"
        )
        if line != last and not quiet:
            click.echo(line, err=True)
            last = line
        if status["state"] != "running":
            return status
        time.sleep(POLL_S)


@batch.command("submit")
@click.option("--park", required=True, help="park slug or id")
@click.option("--dir", "folder", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--camera", help="camera name or id the photos come from (optional)")
@click.option("--wait/--no-wait", default=False, help="wait until the batch is finished")
@click.option("--model", default="mdv1000-redwood", show_default=True, help="model of the estimate")
@click.option("--compute", type=click.Choice(["gpu", "cpu"]), default="gpu", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def submit(park, folder, camera, wait, model, compute, as_json):
    svc = services()
    found = BatchRepository(svc.db).park(park)
    if found is None:
        raise click.ClickException(f"unknown park {park!r}")
    count = len(photo_files(folder))
    show_estimate(count, model, compute)
    files, blobs, uploaded = upload_folder(svc, found, folder, show_progress=not as_json)
    click.echo(f"{uploaded} uploaded, {len(blobs) - uploaded} already there", err=True)
    body = batch_handler.SubmitBody(
        park=found["slug"], camera=camera, blobs=blobs, files=files, created_by="cli"
    )
    try:
        status = batch_handler.submit(svc, body)
    except batch_handler.BatchRequestError as exc:
        raise click.ClickException(str(exc)) from None
    if wait:
        status = wait_for(svc, status["request_id"], quiet=as_json)
    if as_json:
        echo_json(status)
    else:
        click.echo(f"batch {status['request_id']}: {status['state']}, {status['total']} photos")
        if status.get("results_url"):
            click.echo(f"results: {status['results_url']}")


@batch.command("status")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
def status_cmd(ref, as_json):
    svc = services()
    status = batch_handler.status(svc, load(svc, ref))
    if as_json:
        echo_json(status)
        return
    p = status["progress"]
    click.echo(
        f"batch {status['request_id']} ({status['purpose']}): {status['state']}, "
        f"{status['done']}/{status['total']} done: {p['scored']} scored, {p['failed']} failed, "
        f"{p['cancelled']} cancelled, {p['pending']} pending"
    )
    for err in status["errors"]:
        click.echo(f"  {err['file']}: {err['failure']}")
    if status.get("results_url"):
        click.echo(f"results: {status['results_url']}")


@batch.command("results")
@click.argument("ref")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="write here (default: stdout)")
def results(ref, out):
    svc = services()
    found = load(svc, ref)
    if found["state"] == "running":
        raise click.ClickException(f"batch {found['request_id']} is still running (trapalert batch status)")
    doc = batch_handler.results_document(BatchRepository(svc.db), found)
    text = json.dumps(doc, indent=1)
    if out:
        out.write_text(text, encoding="utf-8")
        click.echo(f"{len(doc['images'])} photos written to {out}", err=True)
    else:
        click.echo(text)


@batch.command("cancel")
@click.argument("ref")
def cancel(ref):
    svc = services()
    status = batch_handler.cancel(svc, load(svc, ref))
    click.echo(f"batch {status['request_id']}: {status['state']}, {status['done']}/{status['total']} done")
