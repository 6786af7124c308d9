"""`trapalert model list|download|export`: MegaDetector releases -> a file the scoring service serves.

    trapalert model download mdv1000-cedar      # models/md_v1000.0.0-cedar.pt, MD5 checked against the pin
    trapalert model export mdv1000-cedar        # models/md_v1000.0.0-cedar.onnx (needs PyTorch, here only)
    SCORING_MODEL_PATH=models/md_v1000.0.0-cedar.onnx python -m scoring
"""

from __future__ import annotations

from pathlib import Path

import click

from .base import cli


@cli.group("model", help="Detector models of the scoring service.")
def model() -> None:
    pass


def _release_or_fail(name: str, url: str | None = None):
    from scoring.catalogue import CATALOGUE, SERVABLE, release

    entry = release(name)
    if entry is None and not url:
        others = ", ".join(sorted(set(CATALOGUE) - set(SERVABLE)))
        raise click.ClickException(f"unknown model {name!r}; known: {', '.join(SERVABLE)} (also {others})")
    return entry


@model.command("list", help="The MegaDetector releases this service knows, with their trade-offs.")
def list_models() -> None:
    from scoring.catalogue import RELEASES

    click.echo(f"{'name':<17} {'version':<19} {'architecture':<10} {'px':>5} {'GFLOPs':>7} {'accuracy':>8} "
               f"{'speed':>6} {'threshold':>9}  checksum")
    for r in RELEASES:
        px = r.image_size or "any"
        gflops = f"{r.gflops:g}" if r.gflops else "-"
        acc = f"{r.relative_accuracy:.3f}" if r.relative_accuracy else "-"
        speed = f"{r.relative_speed:.1f}x" if r.relative_speed else "-"
        pin = f"MD5 {r.md5}" if r.md5 else "none published (SHA-256 recorded on first download)"
        click.echo(f"{r.name:<17} {r.version:<19} {r.architecture.split()[0]:<10} {px!s:>5} {gflops:>7} "
                   f"{acc:>8} {speed:>6} {r.typical_threshold:>9}  {pin}")
    click.echo("accuracy: animal AP relative to MDv5a; speed: images/s relative to MDv5a on the same GPU "
               "(MegaDetector's published figures). See docs/scoring.md.")


@model.command("download", help="Download a MegaDetector release (resumable, checksum-verified).")
@click.argument("name")
@click.option("--dir", "model_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("models"),
              show_default=True)
@click.option("--url", help="another address of the same file (a mirror; the pinned checksum still applies)")
@click.option("--sha256", help="expected SHA-256 of the file")
@click.option("--md5", help="expected MD5 of the file (the catalogue pins the published ones)")
def download(name: str, model_dir: Path, url: str | None, sha256: str | None, md5: str | None) -> None:
    from scoring.download import DownloadError, download_model

    entry = _release_or_fail(name, url)
    try:
        path = download_model(name, model_dir, url, sha256=sha256, md5=md5)
    except DownloadError as exc:
        raise click.ClickException(str(exc)) from None
    if entry is not None and entry.backend == "onnx":
        click.echo(f"{path}\nNext: trapalert model export {entry.name} --dir {model_dir}  (needs PyTorch, "
                   "in a separate environment)")
    else:
        click.echo(f"{path}\nStart the service with SCORING_MODEL_PATH={path}")


@model.command("export", help="Export a downloaded v5/v1000 release to ONNX (PyTorch at export time only).")
@click.argument("name")
@click.option("--dir", "model_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("models"),
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="default: <dir>/<release>.onnx")
def export(name: str, model_dir: Path, out: Path | None) -> None:
    from scoring.export import ExportError, export_release

    entry = _release_or_fail(name)
    try:
        path = export_release(entry, model_dir, out)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{path}\nStart the service with SCORING_MODEL_PATH={path} (backend onnx)")
