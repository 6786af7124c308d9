"""Benchmark of the scoring service over real HTTP: images/s and latency per backend, batch size, concurrency.

    .venv/bin/python -m scoring.bench --json scoring/bench-results/cpu.json

For each available backend it starts ``python -m scoring`` as a subprocess (batch size 1, then N), posts
1080p JPEGs at concurrency 1, 8 and 32 and reports images/s, p50/p95 latency (client side), the server's
own split (decode, preprocess, queue, model), and the service's RSS. The null backend gives the service
overhead without any model; the TensorFlow backends use the tiny controlled models of
tests/support/tiny_models.py (built on the fly, so run from the repository root), plus a convolutional
stand-in (random weights, OD API signature) to show what batching does for a real network on this machine.
The load generator runs on the same machine and takes CPU from the service: figures are conservative.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import httpx
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]


def photo_like_jpegs(count: int = 8, size: tuple[int, int] = (1920, 1080), seed: int = 0) -> list[bytes]:
    """1080p JPEGs with the statistics of a photo (smooth structure + sensor noise), ~0.3-0.6 MB each."""
    rng = np.random.default_rng(seed)
    out = []
    w, h = size
    for _ in range(count):
        base = rng.integers(0, 255, (h // 24, w // 24, 3), dtype=np.uint8)
        img = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        img += rng.normal(0, 7, img.shape).astype(np.float32)
        ok, buf = cv2.imencode(".jpg", np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.append(buf.tobytes())
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


async def load(url: str, images: list[bytes], concurrency: int, requests: int) -> dict:
    latencies: list[float] = []
    server: list[dict] = []
    batch_sizes: list[int] = []
    errors = {"http_503": 0, "other": 0}
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def worker():
            for i in counter:
                data = images[i % len(images)]
                t0 = time.perf_counter()
                r = await client.post(
                    f"{url}/v1/detect", content=data, headers={"Content-Type": "image/jpeg"}
                )
                elapsed = (time.perf_counter() - t0) * 1000
                if r.status_code != 200:
                    errors["http_503" if r.status_code == 503 else "other"] += 1
                    continue
                body = r.json()
                latencies.append(elapsed)
                server.append(body["info"]["timing_ms"])
                batch_sizes.append(body["info"]["batch_size"])

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0

    def mean(key):
        return round(statistics.fmean(s[key] for s in server), 2) if server else None

    return {
        "requests": requests,
        "ok": len(latencies),
        "errors": errors,
        "images_per_s": round(len(latencies) / wall, 2),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "server_mean_ms": {k: mean(k) for k in ("decode", "preprocess", "queue", "model", "total")},
        "mean_batch_size": round(statistics.fmean(batch_sizes), 2) if batch_sizes else None,
        "overhead_p50_ms": round(
            percentile([lat - s["model"] for lat, s in zip(latencies, server, strict=False)], 50), 1
        ),
    }


def rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return round(sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20, 1)


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the service has used: robust to other load on the machine."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def tensorflow_baseline_rss_mb() -> float:
    code = "import os, psutil, tensorflow as tf; tf.constant(1); print(psutil.Process().memory_info().rss)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=120,
    )
    return round(int(out.stdout.strip().splitlines()[-1]) / 2**20, 1)


def backend_configs(workdir: Path, with_standin: bool) -> dict[str, dict]:
    sys.path.insert(0, str(REPO_ROOT))
    from tests.support import tiny_models

    configs = {
        "null": {"SCORING_BACKEND": "null"},
        "hog": {},
        "frozen_graph (tiny)": {
            "SCORING_MODEL_PATH": str(tiny_models.build_controlled_frozen_graph(workdir / "md_v4.1.0.pb"))
        },
        "saved_model (tiny)": {
            "SCORING_BACKEND": "saved_model",
            "SCORING_MODEL_PATH": str(tiny_models.build_controlled_saved_model(workdir / "saved_model")),
        },
    }
    if with_standin:
        configs["saved_model (conv stand-in)"] = {
            "SCORING_BACKEND": "saved_model",
            "SCORING_MODEL_PATH": str(tiny_models.build_standin_saved_model(workdir / "standin")),
        }
    return configs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scoring.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="", help="comma-separated subset of the names in the table")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--batch", type=int, default=8, help="N, the dynamic batch size compared with 1")
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument(
        "--requests", type=int, default=64, help="requests per cell (at least 2x concurrency)"
    )
    parser.add_argument("--no-standin", action="store_true", help="skip the convolutional stand-in")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO_ROOT))
    from tests.support.scoring_process import run_scoring_service

    concurrencies = [int(c) for c in args.concurrency.split(",")]
    images = photo_like_jpegs()
    results: dict = {
        "command": "python -m scoring.bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "gpu": None,
        },
        "image": {"size": [1920, 1080], "mean_jpeg_bytes": int(statistics.fmean(len(i) for i in images))},
        "rows": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        configs = backend_configs(Path(tmp), with_standin=not args.no_standin)
        wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
        for name, env in configs.items():
            if wanted and not any(name.startswith(w) for w in wanted):
                continue
            for batch in (1, args.batch):
                full_env = env | {
                    "SCORING_MAX_BATCH": str(batch),
                    "SCORING_MAX_WAIT_MS": str(args.max_wait_ms),
                    "SCORING_QUEUE_LIMIT": str(max(64, 2 * max(concurrencies))),
                }
                with run_scoring_service(full_env, ready_timeout=300) as url:
                    info = httpx.get(f"{url}/v1/model").json()
                    if batch > 1 and not info["supports_batch"]:
                        continue
                    asyncio.run(load(url, images, 2, 8))  # warm the connection pool and caches
                    for concurrency in concurrencies:
                        cpu_before = cpu_s(url.pid)
                        row = asyncio.run(load(url, images, concurrency, max(args.requests, 2 * concurrency)))
                        cpu_ms = (cpu_s(url.pid) - cpu_before) * 1000 / max(1, row["ok"])
                        row |= {
                            "backend": name,
                            "batch": batch,
                            "concurrency": concurrency,
                            "rss_mb": rss_mb(url.pid),
                            "service_cpu_ms_per_image": round(cpu_ms, 1),
                            "loadavg_1m": round(os.getloadavg()[0], 2),
                        }
                        results["rows"].append(row)
                        print(
                            f"{name:28s} batch {batch:2d} conc {concurrency:2d}: "
                            f"{row['images_per_s']:7.2f} img/s "
                            f"p50 {row['p50_ms']:8.1f} ms p95 {row['p95_ms']:8.1f} ms  mean batch "
                            f"{row['mean_batch_size']}  cpu/img {row['service_cpu_ms_per_image']} ms  "
                            f"rss {row['rss_mb']} MB  load {row['loadavg_1m']}",
                            flush=True,
                        )
    results["tensorflow_import_rss_mb"] = tensorflow_baseline_rss_mb()
    print()
    print(markdown_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


def markdown_table(results: dict) -> str:
    lines = [
        "| backend | batch | concurrency | images/s | p50 ms | p95 ms | mean batch | decode ms | queue ms | "
        "model ms | overhead p50 ms | service CPU ms/image | RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        s = r["server_mean_ms"]
        lines.append(
            f"| {r['backend']} | {r['batch']} | {r['concurrency']} | {r['images_per_s']} | {r['p50_ms']} | "
            f"{r['p95_ms']} | {r['mean_batch_size']} | {s['decode']} | {s['queue']} | {s['model']} | "
            f"{r['overhead_p50_ms']} | {r['service_cpu_ms_per_image']} | {r['rss_mb']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
