"""Engine overhead: activation capture through the Inspector vs a plain ``model(x)`` loop, and cache latency.

Goals (issue 2): capture throughput >= 0.9x the plain loop at the same batch size; a repeated request
served from the cache in < 1 ms.

    python benchmarks/bench_engine.py [--n 2000] [--batch-size 128] [--device cpu]
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from benchmarks._common import cuda_sync, record, setup, timeit  # noqa: E402
from ipynetviz import zoo  # noqa: E402
from ipynetviz.engine import Inspector  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    setup(args.threads)
    insp0 = zoo.load("shapes-cnn", seed=0)
    insp = Inspector(insp0.model, transform=insp0.transform, device=args.device,
                     class_names=insp0.class_names, input_size=insp0.input_size)
    images, _ = zoo.shapes(args.n, split="test")
    x = insp.prepare(images)  # both sides start from model input on the device
    model, bs = insp.model.eval(), args.batch_size
    sync = lambda: cuda_sync(args.device)  # noqa: E731

    def plain():
        with torch.no_grad():
            for i in range(0, x.shape[0], bs):
                model(x[i:i + bs])

    last = insp.conv_layers[-1]
    figures = {"n_images": args.n, "batch_size": bs, "layers": {}}
    # on a shared machine, the best of several interleaved runs is the fair figure for both sides
    best = lambda fn: min(timeit(fn, repeat=1, warmup=0, sync=sync) for _ in range(5))  # noqa: E731
    plain()
    t_plain = best(plain)
    print(f"plain model(x) loop, {args.n} images: {t_plain:.3f} s ({args.n / t_plain:,.0f} img/s)")
    for label, layers in (("all conv layers + logits layer", insp.conv_layers + [insp.layers[-1]]),
                          (f"last conv layer ({last})", [last]), ("conv1 only (stops early)", ["conv1"])):
        t = best(lambda: insp.activations(x, layers, batch_size=bs, to_cpu=False))
        t_plain = min(t_plain, best(plain))
        ratio = t_plain / t
        figures["layers"][label] = {"seconds": t, "throughput_ratio": ratio}
        print(f"insp.activations [{label}]: {t:.3f} s  throughput ratio vs plain {ratio:.2f}x (goal >= 0.9)")
    figures["plain_seconds"] = t_plain

    small = images[:16]
    params = {"layer": last}
    insp.cached("acts", params, small, lambda: insp.activations(small, [last]))
    n = 200
    t0 = time.perf_counter()
    for _ in range(n):
        insp.cached("acts", params, small, lambda: insp.activations(small, [last]))
    lat = (time.perf_counter() - t0) / n
    figures["cache_hit_ms"] = lat * 1e3
    print(f"repeated request (16 images, from cache): {lat * 1e3:.3f} ms (goal < 1 ms); "
          f"hits={insp.cache.hits}")
    print("wrote", record("engine", figures, args.device))


if __name__ == "__main__":
    main()
