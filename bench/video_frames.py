"""Video benchmark: frames per second of sampling and scoring one clip (scoring/video.py through the real
scoring app, in this process), with the null backend (no model time: decoding, sampling, preprocessing,
batching, JPEG of the kept frames) and OpenCV's HOG people detector (the CPU fallback).

The clip is generated here with OpenCV (default: 30 s, 1920x1080, 30 fps, mp4v/MP4; moving textured
frames, so the encoder and decoder do real work), then posted ``--repeat`` times to ``/v1/detect-video``.

    .venv/bin/python bench/video_frames.py                        # 30 s 1080p, null and hog
    .venv/bin/python bench/video_frames.py --fourcc MJPG --ext avi --backends null

Prints, per backend: wall seconds per clip (median), frames decoded per second (every frame of the clip
passes through the decoder: ``grab()``), frames scored per second (the sampled frames), and the service's
own split (decode+sample / preprocess / model) from ``info.timing_ms``. JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def make_clip(path: Path, seconds: float, fps: float, size: tuple[int, int], fourcc: str) -> bytes:
    w, h = size
    rng = np.random.default_rng(0)
    base = cv2.resize(
        rng.integers(30, 220, size=(h // 24, w // 24, 3), dtype=np.uint8), (w + 400, h), cv2.INTER_CUBIC
    )
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write {fourcc} here")
    for i in range(int(seconds * fps)):
        x = int(i * 400 / max(1, seconds * fps))  # a slow pan: every frame differs
        writer.write(np.ascontiguousarray(base[:, x : x + w]))
    writer.release()
    return path.read_bytes()


def run(backend: str, clip: bytes, repeat: int, every_s: float, max_frames: int) -> dict:
    from fastapi.testclient import TestClient

    from scoring.app import create_app
    from scoring.settings import load_settings

    settings = load_settings(
        backend=backend, video_every_s=every_s, video_max_frames=max_frames, video_max_duration_s=600
    )
    walls, timings, frames = [], [], 0
    with TestClient(create_app(settings), base_url="http://scoring") as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(repeat):
            t0 = time.perf_counter()
            r = client.post(
                "/v1/detect-video?file=bench.mp4", content=clip, headers={"Content-Type": "video/mp4"}
            )
            walls.append(time.perf_counter() - t0)
            body = r.json()
            entry = body["images"][0]
            if entry["failure"]:
                raise SystemExit(f"{backend}: {entry['failure']}")
            frames = len(entry["frames_processed"])
            timings.append(body["info"]["timing_ms"])
            decoded = entry["video"]["frames_read"]
    wall = statistics.median(walls)
    return {
        "backend": backend,
        "wall_s_per_clip": round(wall, 3),
        "frames_decoded": decoded,
        "frames_scored": frames,
        "decoded_fps": round(decoded / wall, 1),
        "scored_fps": round(frames / wall, 2),
        "decode_sample_ms": round(statistics.median(t["decode"] for t in timings), 1),
        "preprocess_ms": round(statistics.median(t["preprocess"] for t in timings), 1),
        "model_ms": round(statistics.median(t["model"] for t in timings), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--fourcc", default="mp4v")
    ap.add_argument("--ext", default="mp4")
    ap.add_argument("--every-s", type=float, default=1.0)
    ap.add_argument("--max-frames", type=int, default=20)
    ap.add_argument("--backends", default="null,hog")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        clip = make_clip(Path(tmp) / f"clip.{args.ext}", args.seconds, args.fps, (w, h), args.fourcc)
        made = time.perf_counter() - t0
    out = {
        "clip": {
            "seconds": args.seconds,
            "fps": args.fps,
            "size": args.size,
            "fourcc": args.fourcc,
            "bytes": len(clip),
            "generated_s": round(made, 1),
        },
        "sampling": {"every_s": args.every_s, "max_frames": args.max_frames},
        "cpus": os.cpu_count(),
        "results": [
            run(b.strip(), clip, args.repeat, args.every_s, args.max_frames) for b in args.backends.split(",")
        ],
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    c = out["clip"]
    print(f"clip: {c['seconds']:g} s {c['size']} {c['fps']:g} fps {c['fourcc']}, {c['bytes']} bytes")
    for r in out["results"]:
        print(
            f"{r['backend']:>5}: {r['wall_s_per_clip']:.2f} s/clip, {r['frames_decoded']} frames decoded "
            f"({r['decoded_fps']:.0f}/s), {r['frames_scored']} scored ({r['scored_fps']:.1f}/s); "
            f"decode+sample {r['decode_sample_ms']:.0f} ms, preprocess {r['preprocess_ms']:.0f} ms, "
            f"model {r['model_ms']:.0f} ms"
        )


if __name__ == "__main__":
    main()
