"""Export a MegaDetector PyTorch checkpoint (v5, v1000) to the ONNX file the ``onnx`` backend serves.

    python -m scoring.export mdv5a --dir models/                # models/md_v5a.0.0.pt -> md_v5a.0.0.onnx
    python -m scoring.export --weights my.pt --framework yolov5 --image-size 1280 --out my.onnx

PyTorch is needed here and nowhere else: not in the serving image, not in the Function app, not in the
tests. It is imported when an export runs, and its absence is an error that says what to install. The
checkpoints are pickles of the YOLO framework they were trained with (``catalogue.ModelRelease.framework``):

* ``yolov5`` (MDv5a/b, MDv1000-redwood, -spruce): PyPI ``yolov5`` (the packaged YOLOv5 repository; its
  folder is put on ``sys.path`` so that the pickle's ``models.yolo`` resolves, as MegaDetector does);
* ``yolov9`` (MDv1000-cedar): PyPI ``yolov9pip`` (module ``yolov9``), the same way;
* ``ultralytics`` (MDv1000-larch, -sorrel): PyPI ``ultralytics``.

The detection head is switched to its export mode (raw predictions, no NMS), the model is traced at the
catalogue's input size with a dynamic batch dimension, and the file gets metadata (``imgsz``,
``megadetector.version``, ``megadetector.layout``) that the backend reads. The result is checked by
running it in ONNX Runtime against PyTorch on the same random input.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from scoring.catalogue import CATALOGUE, SERVABLE, YOLOV5, YOLOV8, ModelRelease, release

OPSET = 17
INSTALL_HINT = (
    "PyTorch is needed only to export (never in the serving image): in a separate environment, "
    "pip install torch==2.13.0 onnx=={onnx} onnxruntime=={ort} {framework}"
)
FRAMEWORK_PACKAGES = {
    "yolov5": "yolov5==7.0.14",
    "yolov9": "yolov9pip==0.0.4",
    "ultralytics": "ultralytics==8.4.190",
}
# What an export needs besides PyTorch (which is installed first, from the CPU index, in the images).
EXPORT_PACKAGES = ("onnx==1.23.2", "onnxruntime==1.31.1")


class ExportError(RuntimeError):
    """The export cannot run or produced a wrong file; the message says what to do."""


def _hint(framework: str | None) -> str:
    package = FRAMEWORK_PACKAGES.get(framework or "", "")
    return INSTALL_HINT.format(onnx="1.23.2", ort="1.31.1", framework=package)


def import_torch():
    try:
        import torch
    except ImportError:
        raise ExportError("PyTorch is not installed. " + _hint(None)) from None
    return torch


def _framework_on_path(framework: str) -> None:
    """Make the pickled module paths of a YOLO checkpoint importable (``models.yolo``, ``utils``...)."""
    module = {"yolov5": "yolov5", "yolov9": "yolov9"}.get(framework)
    if module is None:
        return
    try:
        package = __import__(module)
    except ImportError:
        raise ExportError(f"the {framework} framework is not installed. " + _hint(framework)) from None
    folder = os.path.dirname(package.__file__ or "")
    if folder not in sys.path:
        sys.path.insert(0, folder)


def load_checkpoint(weights: Path, framework: str):
    """The eval-mode float32 ``nn.Module`` of a YOLOv5/YOLOv9 checkpoint, its head in export mode."""
    torch = import_torch()
    _framework_on_path(framework)
    try:
        ckpt = torch.load(str(weights), map_location="cpu", weights_only=False)  # a trusted, verified file
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise ExportError(f"{weights} cannot be loaded as a {framework} checkpoint ({reason})") from None
    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else ckpt
    if model is None:
        raise ExportError(f"{weights}: no 'model' in the checkpoint (keys: {sorted(ckpt)})")
    model = model.float().eval()
    if hasattr(model, "fuse"):
        try:
            model = model.fuse()
        except Exception:  # fusing is an optimisation only
            pass
    for m in model.modules():
        if hasattr(m, "export"):
            m.export = True  # Detect heads: return the concatenated raw predictions only
        if hasattr(m, "inplace"):
            m.inplace = False
    return model


def _first_output(module):
    """Wrap a module so that the traced graph has exactly one output, the predictions."""
    torch = import_torch()

    class Wrapper(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            y = self.inner(x)
            while isinstance(y, (tuple, list)):
                y = y[0]
            return y

    return Wrapper(module)


def export_module(
    module,
    out: Path,
    *,
    image_size: int,
    dynamic_batch: bool = True,
    metadata: dict[str, str] | None = None,
    check: bool = True,
) -> Path:
    """Trace ``module`` (float32 [N,3,S,S] -> predictions) to ONNX at ``out``; add metadata; check it."""
    torch = import_torch()
    wrapped = _first_output(module).eval()
    dummy = torch.rand(1, 3, image_size, image_size)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".onnx.tmp")
    axes = {"images": {0: "batch"}, "output0": {0: "batch"}} if dynamic_batch else None
    with torch.no_grad():
        torch.onnx.export(
            wrapped,
            (dummy,),
            str(tmp),
            input_names=["images"],
            output_names=["output0"],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    if metadata:
        _add_metadata(tmp, metadata)
    os.replace(tmp, out)
    if check:
        compare_with_onnxruntime(wrapped, out, image_size)
    return out


def _add_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Write ``metadata`` into the ONNX file's metadata_props (skipped without the onnx package)."""
    try:
        import onnx
    except ImportError:
        return
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(proto, str(path))


def compare_with_onnxruntime(module, path: Path, image_size: int, batch: int = 2) -> float:
    """Run PyTorch and ONNX Runtime on the same random input; the largest relative difference."""
    torch = import_torch()
    import numpy as np
    import onnxruntime as ort

    x = torch.rand(batch, 3, image_size, image_size)
    with torch.no_grad():
        y = module(x)
        while isinstance(y, (tuple, list)):
            y = y[0]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    z = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    ref = y.numpy()
    if z.shape != ref.shape:
        raise ExportError(f"{path}: ONNX Runtime gives {z.shape}, PyTorch {ref.shape}")
    diff = float(np.max(np.abs(z - ref)) / (np.max(np.abs(ref)) + 1e-9))
    if diff > 1e-3:
        raise ExportError(f"{path}: ONNX Runtime and PyTorch differ by {diff:.2e} (relative)")
    return diff


def export_release(entry: ModelRelease, model_dir: Path, out: Path | None = None) -> Path:
    """``model_dir/<release .pt>`` -> ``model_dir/<release>.onnx`` (or ``out``)."""
    weights = Path(model_dir) / entry.filename
    if entry.backend != "onnx":
        raise ExportError(f"{entry.name} is served as downloaded ({entry.backend}); nothing to export")
    if not weights.is_file():
        raise ExportError(f"{weights} is missing: run `trapalert model download {entry.name}` first")
    assert entry.framework and entry.image_size, entry  # every onnx release names both
    return export_weights(
        weights,
        out or Path(model_dir) / entry.onnx_filename,
        framework=entry.framework,
        image_size=entry.image_size,
        version=entry.version,
        layout=entry.layout,
    )


def export_weights(
    weights: Path,
    out: Path,
    *,
    framework: str,
    image_size: int,
    version: str = "unknown",
    layout: str | None = None,
) -> Path:
    metadata = {"imgsz": str([image_size, image_size]), "megadetector.version": version,
                "megadetector.layout": layout or "", "exported_by": "trapalert scoring.export"}
    if framework == "ultralytics":
        return _export_ultralytics(weights, out, image_size, metadata)
    module = load_checkpoint(weights, framework)
    return export_module(module, out, image_size=image_size, metadata=metadata)


def _export_ultralytics(weights: Path, out: Path, image_size: int, metadata: dict[str, str]) -> Path:
    import_torch()
    try:
        from ultralytics import YOLO
    except ImportError:
        raise ExportError("the ultralytics framework is not installed. " + _hint("ultralytics")) from None
    # Ultralytics' own exporter: raw [N, 4+C, K] predictions, metadata imgsz/names/stride included.
    written = Path(YOLO(str(weights)).export(format="onnx", imgsz=image_size, dynamic=True, opset=OPSET,
                                             simplify=False, nms=False))
    os.replace(written, out)
    _add_metadata(out, {k: v for k, v in metadata.items() if k != "imgsz"})  # Ultralytics wrote imgsz
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scoring.export", description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help=f"a catalogue release: {', '.join(SERVABLE)}")
    parser.add_argument("--dir", type=Path, default=Path("models"), help="model directory (default: models/)")
    parser.add_argument("--out", type=Path, help="the .onnx file to write (default: <dir>/<release>.onnx)")
    parser.add_argument("--weights", type=Path, help="a .pt file outside the catalogue")
    parser.add_argument("--framework", choices=sorted(FRAMEWORK_PACKAGES), help="with --weights")
    parser.add_argument("--image-size", type=int, help="with --weights")
    parser.add_argument(
        "--requirements", action="store_true", help="print the pip requirements of an export (not PyTorch)"
    )
    args = parser.parse_args(argv)
    if args.requirements:
        entry = release(args.name or "")
        if entry is None or entry.framework is None:
            parser.error(f"{args.name!r} is not a release that needs an export")
        print("\n".join((*EXPORT_PACKAGES, FRAMEWORK_PACKAGES[entry.framework])))
        return 0
    try:
        if args.weights:
            if not (args.framework and args.image_size and args.out):
                parser.error("--weights needs --framework, --image-size and --out")
            path = export_weights(
                args.weights, args.out, framework=args.framework, image_size=args.image_size
            )
        else:
            entry = release(args.name or "")
            if entry is None:
                parser.error(f"unknown model {args.name!r}; known: {', '.join(sorted(CATALOGUE))}")
            path = export_release(entry, args.dir, args.out)
    except ExportError as exc:
        print(f"scoring.export: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


__all__ = ["ExportError", "YOLOV5", "YOLOV8", "export_module", "export_release", "export_weights"]

if __name__ == "__main__":
    sys.exit(main())
