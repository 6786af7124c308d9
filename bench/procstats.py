"""CPU and memory of the benchmark's processes (psutil): a process, its live descendants and the descendants
it has reaped. Shared by the benchmark scripts of this folder."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psutil


def tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_s(pid: int) -> float:
    """CPU seconds of a process, its live descendants and the descendants it has reaped. For the calling
    process itself (whose descendants are the services measured apart): its own threads only."""
    if pid == os.getpid():
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    total = 0.0
    for i, p in enumerate(tree(pid)):
        try:
            t = p.cpu_times()
            total += t.user + t.system + (t.children_user + t.children_system if i == 0 else 0.0)
        except psutil.NoSuchProcess:
            pass
    return total


def rss_mb(pid: int) -> float:
    total = 0
    for p in tree(pid) if pid != os.getpid() else [psutil.Process(pid)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 1e6


def postmaster_pid(pgdata: Path) -> int:
    return int((Path(pgdata) / "postmaster.pid").read_text().split()[0])


class Sampler(threading.Thread):
    """Peak RSS per named process tree, sampled every 0.5 s until ``stop_flag`` is set."""

    def __init__(self, pids: dict[str, int]):
        super().__init__(daemon=True)
        self.pids, self.peak = pids, dict.fromkeys(pids, 0.0)
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.wait(0.5):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], rss_mb(pid))


class CpuMeter:
    """CPU seconds used by each named process tree between ``start()`` and ``stop()``."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self.used: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self._t0 = {k: cpu_s(p) for k, p in self.pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        self.used = {k: cpu_s(p) - self._t0[k] for k, p in self.pids.items()}
        return self.used
