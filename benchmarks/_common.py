"""Shared helpers for the benchmarks: timing, thread settings, the JSON record."""
from __future__ import annotations

import json
import os
import pathlib
import platform
import statistics
import time

import torch

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def setup(threads: int = 2) -> None:
    torch.set_num_threads(threads)


def timeit(fn, repeat: int = 3, warmup: int = 1, sync=None) -> float:
    """Median wall time of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if sync:
            sync()
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cuda_sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def machine() -> dict:
    d = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
         "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    if torch.cuda.is_available():
        d["gpu"] = torch.cuda.get_device_name(0)
    return d


def record(name: str, figures: dict, device: str = "cpu") -> pathlib.Path:
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}-{torch.device(device).type}.json"
    out.write_text(json.dumps({"benchmark": name, "device": str(device), "machine": machine(),
                               "figures": figures}, indent=2))
    return out
