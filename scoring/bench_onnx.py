"""Benchmark of the onnx backend with MegaDetector-sized models (random weights): needs PyTorch, so it runs
in its own environment, never in the tests or the images:

    python3.11 -m venv /tmp/mdbench && /tmp/mdbench/bin/pip install torch==2.13.0 -r scoring/requirements.txt
    /tmp/mdbench/bin/python -m scoring.bench_onnx [--models mdv5a,mdv1000-spruce] [--images 4]

For each model it builds the YOLOv5 architecture of the release (YOLOv5x6 at 1280 like MDv5a, YOLOv5s at
640 like MDv1000-spruce; random weights: the speed does not depend on them), exports it with
``scoring.export.export_module`` (the code `trapalert model export` uses), and measures on this machine's
CPU, in one run: ONNX Runtime (the service's backend) vs PyTorch eager on the same weights and inputs,
images/s and ms/image at batch 1; and the service's own overhead per 1080p JPEG (decode, letterbox, NMS,
JSON) without the model. No timed assertion anywhere: it prints figures (docs/scoring.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

# YOLOv5 v6+ model definitions (backbone + head), as in its models/yolov5s.yaml and models/hub/yolov5x6.yaml.
P5 = {
    "backbone": [(-1, 1, "Conv", [64, 6, 2, 2]), (-1, 1, "Conv", [128, 3, 2]), (-1, 3, "C3", [128]),
                 (-1, 1, "Conv", [256, 3, 2]), (-1, 6, "C3", [256]), (-1, 1, "Conv", [512, 3, 2]),
                 (-1, 9, "C3", [512]), (-1, 1, "Conv", [1024, 3, 2]), (-1, 3, "C3", [1024]),
                 (-1, 1, "SPPF", [1024, 5])],
    "head": [(-1, 1, "Conv", [512, 1, 1]), (-1, 1, "Up", []), ([-1, 6], 1, "Concat", []),
             (-1, 3, "C3", [512, False]), (-1, 1, "Conv", [256, 1, 1]), (-1, 1, "Up", []),
             ([-1, 4], 1, "Concat", []), (-1, 3, "C3", [256, False]), (-1, 1, "Conv", [256, 3, 2]),
             ([-1, 14], 1, "Concat", []), (-1, 3, "C3", [512, False]), (-1, 1, "Conv", [512, 3, 2]),
             ([-1, 10], 1, "Concat", []), (-1, 3, "C3", [1024, False]), ([17, 20, 23], 1, "Detect", [])],
    "anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
}
P6 = {
    "backbone": [(-1, 1, "Conv", [64, 6, 2, 2]), (-1, 1, "Conv", [128, 3, 2]), (-1, 3, "C3", [128]),
                 (-1, 1, "Conv", [256, 3, 2]), (-1, 6, "C3", [256]), (-1, 1, "Conv", [512, 3, 2]),
                 (-1, 9, "C3", [512]), (-1, 1, "Conv", [768, 3, 2]), (-1, 3, "C3", [768]),
                 (-1, 1, "Conv", [1024, 3, 2]), (-1, 3, "C3", [1024]), (-1, 1, "SPPF", [1024, 5])],
    "head": [(-1, 1, "Conv", [768, 1, 1]), (-1, 1, "Up", []), ([-1, 8], 1, "Concat", []),
             (-1, 3, "C3", [768, False]), (-1, 1, "Conv", [512, 1, 1]), (-1, 1, "Up", []),
             ([-1, 6], 1, "Concat", []), (-1, 3, "C3", [512, False]), (-1, 1, "Conv", [256, 1, 1]),
             (-1, 1, "Up", []), ([-1, 4], 1, "Concat", []), (-1, 3, "C3", [256, False]),
             (-1, 1, "Conv", [256, 3, 2]), ([-1, 20], 1, "Concat", []), (-1, 3, "C3", [512, False]),
             (-1, 1, "Conv", [512, 3, 2]), ([-1, 16], 1, "Concat", []), (-1, 3, "C3", [768, False]),
             (-1, 1, "Conv", [768, 3, 2]), ([-1, 12], 1, "Concat", []), (-1, 3, "C3", [1024, False]),
             ([23, 26, 29, 32], 1, "Detect", [])],
    "anchors": [[19, 27, 44, 40, 38, 94], [96, 68, 86, 152, 180, 137], [140, 301, 303, 264, 238, 542],
                [436, 615, 739, 380, 925, 792]],
}
ARCHS = {  # release -> (definition, depth multiple, width multiple, input size)
    "mdv5a": (P6, 1.33, 1.25, 1280),  # YOLOv5x6
    "mdv1000-redwood": (P6, 1.33, 1.25, 1280),
    "mdv1000-spruce": (P5, 0.33, 0.50, 640),  # YOLOv5s
}


def build_yolov5(definition: dict, depth: float, width: float, num_classes: int = 3):
    """A YOLOv5 detection model (eval mode, export head: [N, K, 5+C] decoded boxes in input pixels)."""
    import torch
    from torch import nn

    class Conv(nn.Module):
        def __init__(self, c1, c2, k=1, s=1, p=None):
            super().__init__()
            self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, bias=False)
            self.bn = nn.BatchNorm2d(c2, eps=0.001, momentum=0.03)
            self.act = nn.SiLU()

        def forward(self, x):
            return self.act(self.bn(self.conv(x)))

    class Bottleneck(nn.Module):
        def __init__(self, c1, c2, shortcut=True):
            super().__init__()
            self.cv1, self.cv2 = Conv(c1, c2, 1), Conv(c2, c2, 3)
            self.add = shortcut and c1 == c2

        def forward(self, x):
            return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))

    class C3(nn.Module):
        def __init__(self, c1, c2, n=1, shortcut=True):
            super().__init__()
            c_ = c2 // 2
            self.cv1, self.cv2, self.cv3 = Conv(c1, c_), Conv(c1, c_), Conv(2 * c_, c2)
            self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut) for _ in range(n)))

        def forward(self, x):
            return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))

    class SPPF(nn.Module):
        def __init__(self, c1, c2, k=5):
            super().__init__()
            c_ = c1 // 2
            self.cv1, self.cv2 = Conv(c1, c_), Conv(c_ * 4, c2)
            self.m = nn.MaxPool2d(k, 1, k // 2)

        def forward(self, x):
            x = self.cv1(x)
            y1 = self.m(x)
            y2 = self.m(y1)
            return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))

    class Concat(nn.Module):
        def forward(self, xs):
            return torch.cat(xs, 1)

    class Detect(nn.Module):
        def __init__(self, anchors, ch, strides):
            super().__init__()
            self.no, self.nl, self.na = num_classes + 5, len(anchors), len(anchors[0]) // 2
            self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)
            a = torch.tensor(anchors, dtype=torch.float32).view(self.nl, -1, 2)
            self.register_buffer("anchor_grid", a.view(self.nl, 1, -1, 1, 1, 2))
            self.strides = strides

        def forward(self, xs):
            z = []
            for i, x in enumerate(xs):
                x = self.m[i](x)
                bs, _, ny, nx = x.shape
                x = x.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
                yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
                grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2).float() - 0.5
                xy = (x[..., :2] * 2 + grid) * self.strides[i]
                wh = (x[..., 2:4] * 2) ** 2 * self.anchor_grid[i]
                z.append(torch.cat((xy, wh, x[..., 4:]), -1).view(bs, -1, self.no))
            return torch.cat(z, 1)

    def ch(c):
        return int(math.ceil(c * width / 8) * 8)

    layers, channels, sources = nn.ModuleList(), [3], []
    stride_of = [1]
    for f, n, kind, args in definition["backbone"] + definition["head"]:
        n = max(round(n * depth), 1) if n > 1 else n
        c1 = channels[f] if isinstance(f, int) else None
        if kind == "Conv":
            c2 = ch(args[0])
            m = Conv(c1, c2, *args[1:])
            s = stride_of[f] * args[2]
        elif kind == "C3":
            c2 = ch(args[0])
            m = C3(c1, c2, n, *(args[1:] or [True]))
            s = stride_of[f]
        elif kind == "SPPF":
            c2, m, s = ch(args[0]), SPPF(c1, ch(args[0]), args[1]), stride_of[f]
        elif kind == "Up":
            c2, m, s = c1, nn.Upsample(None, 2, "nearest"), stride_of[f] // 2
        elif kind == "Concat":
            c2, m, s = sum(channels[x] for x in f), Concat(), stride_of[f[0]]
        else:
            chs = [channels[x] for x in f]
            m = Detect(definition["anchors"], chs, [stride_of[x] for x in f])
            c2, s = 0, 0
        layers.append(m)
        sources.append(f)
        if not layers[:-1]:  # the first layer read the image: from now on index i is layer i's output
            channels, stride_of = [], []
        channels.append(c2)
        stride_of.append(s)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = layers

        def forward(self, x):
            outs = []
            for m, f in zip(self.model, sources, strict=True):
                if isinstance(f, list):
                    x = m([x if j == -1 else outs[j] for j in f]) if not isinstance(m, Detect) else m(
                        [outs[j] for j in f])
                else:
                    x = m(x if f == -1 else outs[f])
                outs.append(x)
            return x

    model = Model().eval()
    with torch.no_grad():  # random but sane BatchNorm statistics
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_var.fill_(1.0)
    return model


def gflops(model, size: int) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def time_per_image(fn, n: int) -> float:
    fn()  # warm-up
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n


def service_overhead(n: int = 20) -> dict:
    """Decode + letterbox + NMS + JSON per 1080p JPEG, as the service does them, without the model."""
    import cv2

    from scoring.backends.onnx_yolo import candidates, letterbox, nms, unletterbox
    from scoring.preprocess import prepare
    from scoring.schemas import Detection
    from scoring.settings import ScoringSettings

    settings = ScoringSettings(_env_prefix="SCORING_BENCH_IGNORED_")
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8), (0, 0), 3)
    data = cv2.imencode(".jpg", base, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    pred = np.zeros((1, 25200, 8), np.float32)  # a typical 640 px YOLOv5 output with 100 candidates
    pred[0, :, :4] = rng.uniform(0, 640, (25200, 4))
    pred[0, :100, 4] = rng.uniform(0.2, 1, 100)
    pred[0, :, 5:] = rng.uniform(0, 1, (25200, 3))
    out = {}
    for size in (640, 1280):
        t = {"decode": 0.0, "letterbox": 0.0, "nms": 0.0, "json": 0.0}
        cpu_started = time.process_time()
        for _ in range(n):
            t0 = time.perf_counter()
            prepared = prepare(data, "a.jpg", settings)
            t1 = time.perf_counter()
            _canvas, lb = letterbox(prepared.image, size)
            t2 = time.perf_counter()
            xyxy, conf, cls = candidates(pred[0], "yolov5", 0.1)
            kept = nms(xyxy, conf, cls, 0.45)
            boxes = unletterbox(xyxy[kept], lb)
            dets = [Detection("1", float(c), (b[0], b[1], b[2] - b[0], b[3] - b[1]))
                    for b, c in zip(boxes.tolist(), conf[kept].tolist(), strict=True)]
            t3 = time.perf_counter()
            json.dumps({"images": [{"file": "a.jpg", "detections": [d.to_json() for d in dets]}]})
            t4 = time.perf_counter()
            for key, dt in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                t[key] += dt * 1000 / n
        cpu_ms = (time.process_time() - cpu_started) * 1000 / n  # CPU time of all threads: contention-proof
        out[size] = {k: round(v, 2) for k, v in t.items()} | {"total": round(sum(t.values()), 2),
                                                               "cpu_total": round(cpu_ms, 2)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scoring.bench_onnx", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mdv5a,mdv1000-spruce")
    parser.add_argument("--images", type=int, default=3, help="timed images per engine and model")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--overhead-only", action="store_true", help="only the service overhead (no PyTorch)")
    args = parser.parse_args(argv)
    if args.overhead_only:
        for size, t in service_overhead(40).items():
            print(f"service overhead per 1080p JPEG at {size}px input: {t}")
        return 0

    import onnxruntime as ort
    import torch

    from scoring.export import export_module

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    report = {"machine": f"{platform.machine()}, {threads} cores", "load_average": os.getloadavg(),
              "torch": torch.__version__, "onnxruntime": ort.__version__, "models": {}}
    print(f"{report['machine']} (load average {os.getloadavg()[0]:.1f}); torch {torch.__version__}, "
          f"onnxruntime {ort.__version__}, no GPU")
    for name in args.models.split(","):
        definition, depth, width, size = ARCHS[name]
        torch.manual_seed(0)
        model = build_yolov5(definition, depth, width)
        flops = gflops(model, 640)
        with tempfile.TemporaryDirectory() as tmp:
            path = export_module(model, Path(tmp) / f"{name}.onnx", image_size=size)
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            x = torch.rand(1, 3, size, size)
            feed = {session.get_inputs()[0].name: x.numpy()}
            ort_s = time_per_image(lambda: session.run(None, feed), args.images)  # noqa: B023
            with torch.inference_mode():
                torch_s = time_per_image(lambda: model(x), args.images)  # noqa: B023
        row = {"input": size, "gflops_at_640": round(flops, 1), "onnxruntime_ms": round(ort_s * 1000, 1),
               "onnxruntime_img_s": round(1 / ort_s, 3), "torch_eager_ms": round(torch_s * 1000, 1),
               "torch_eager_img_s": round(1 / torch_s, 3), "ort_speedup": round(torch_s / ort_s, 2)}
        report["models"][name] = row
        print(f"{name:<16} {size}px {flops:6.1f} GFLOPs@640  ORT {row['onnxruntime_ms']:8.1f} ms/img "
              f"({row['onnxruntime_img_s']:.3f} img/s)  PyTorch eager {row['torch_eager_ms']:8.1f} ms/img "
              f"({row['torch_eager_img_s']:.3f} img/s)  ORT/PyTorch speed {row['ort_speedup']}x")
    report["service_overhead_ms_per_1080p"] = overhead = service_overhead()
    for size, t in overhead.items():
        parts = ", ".join(f"{k} {v} ms" for k, v in t.items() if k != "cpu_total")
        print(f"service overhead per 1080p JPEG at {size}px input (wall): {parts}; "
              f"CPU time {t['cpu_total']} ms")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
