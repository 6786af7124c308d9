"""`trapalert model download NAME`: fetch an official MegaDetector release into the model folder."""

from __future__ import annotations

from pathlib import Path

import click

from .base import cli


@cli.group("model", help="Detector models of the scoring service.")
def model() -> None:
    pass


@model.command("download", help="Download a MegaDetector release (resumable, checksum-verified).")
@click.argument("name")
@click.option("--dir", "model_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("models"),
              show_default=True)
@click.option("--url", help="another address of the same file (a mirror)")
@click.option("--sha256", help="expected SHA-256 of the file")
def download(name: str, model_dir: Path, url: str | None, sha256: str | None) -> None:
    from scoring.download import CATALOGUE, DownloadError, download_model

    if name not in CATALOGUE and not url:
        raise click.ClickException(f"unknown model {name!r}; known: {', '.join(sorted(CATALOGUE))}")
    try:
        path = download_model(name, model_dir, url, sha256=sha256)
    except DownloadError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{path}\nStart the service with SCORING_MODEL_PATH={path}")
