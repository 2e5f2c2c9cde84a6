"""Embedding benchmark: our t-SNE (openTSNE, exact neighbours in torch) vs scikit-learn's TSNE, and torch PCA vs
scikit-learn's PCA, on a teaching CNN's features.

    python benchmarks/bench_embedding.py                  # CPU, 2 threads, 5,000 points
    python benchmarks/bench_embedding.py --device cuda    # PCA and neighbours on the GPU (t-SNE steps stay on CPU)
    python benchmarks/bench_embedding.py --sweep          # also time other t-SNE schedules / gradient methods

Features: the penultimate layer (``flatten``, 128 values) of ``zoo.load("shapes-cnn")`` on shapes images for
t-SNE, and its ``pool2`` output (64 x 8 x 8 = 4,096 values) on 10,000 images for PCA. Without shipped weights
the same network is trained briefly first (said in the output). Figures go to
``benchmarks/results/embedding-<device>.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from ipynetviz import zoo
from ipynetviz.methods.embedding import embed_features, layer_features, pca


def teaching_inspector(device: str):
    """The shapes teaching CNN, trained briefly here when its weights are not shipped."""
    try:
        return zoo.load("shapes-cnn", device=device), "shipped shapes-cnn weights"
    except Exception as err:  # no weights yet: train the same architecture for a few epochs
        from ipynetviz.engine import Inspector, Preprocess
        from ipynetviz.zoo.train import DEFAULTS, train
        config = replace(DEFAULTS["shapes-cnn"], epochs=3, n_train=6000, n_test=1000)
        model, info = train(config, device=device, log=lambda line: None)
        insp = Inspector(model, transform=Preprocess(info["mean"], info["std"]), device=device,
                         class_names=info["class_names"], input_size=tuple(info["input_size"]))
        return insp, (f"shapes-cnn trained here for {config.epochs} epochs on {config.n_train} images "
                      f"(test accuracy {info['test_accuracy']:.3f}; no shipped weights: {type(err).__name__})")


def features(insp, n: int, layer: str, seed: int):
    images, labels = zoo.shapes(n, split="test", seed=seed)
    f = layer_features(insp, (images, labels), layer, batch_size=500)
    return f.values.numpy().astype(np.float32), f.labels


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def timed(fn, repeat: int = 1, cpu: dict | None = None):
    """Best wall time of ``repeat`` runs (and, in ``cpu["seconds"]``, the process CPU time of the last)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - t)
        if cpu is not None:
            cpu["seconds"] = time.process_time() - c
    return best, out


def tsne_figures(x, labels, args, device):
    from sklearn.manifold import TSNE, trustworthiness

    frames, ours_cpu, sk_cpu = [], {}, {}
    ours_s, ours = timed(lambda: embed_features(x, "tsne", labels=labels, seed=0, n_jobs=args.threads,
                                                device=device, callback=frames.append, trustworthiness=False),
                         cpu=ours_cpu)
    ours_t = trustworthiness(x, ours.coords, n_neighbors=10)
    sk_s, sk = timed(lambda: TSNE(2, init="pca", random_state=0, n_jobs=args.threads).fit_transform(x),
                     cpu=sk_cpu)
    sk_t = trustworthiness(x, sk, n_neighbors=10)
    return {
        "points": len(x), "features": x.shape[1],
        "ours_seconds": ours_s, "sklearn_seconds": sk_s, "speedup": sk_s / ours_s,
        "ours_cpu_seconds": ours_cpu["seconds"], "sklearn_cpu_seconds": sk_cpu["seconds"],
        "cpu_time_ratio": sk_cpu["seconds"] / ours_cpu["seconds"],
        "ours_trustworthiness": ours_t, "sklearn_trustworthiness": sk_t,
        "trustworthiness_gap": ours_t - sk_t, "equal_trustworthiness": bool(abs(ours_t - sk_t) <= 0.01),
        "first_frame_seconds": frames[0].elapsed, "first_gradient_frame_seconds": frames[1].elapsed,
        "frames": len(frames), "neighbors": ours.settings["neighbors"],
        "affinity_seconds": ours.settings["affinity_seconds"],
        "ours_settings": {k: ours.settings[k] for k in ("perplexity", "early_exaggeration_iter", "n_iter",
                                                          "negative_gradient_method", "n_jobs", "pca_dims")},
        "sklearn_settings": "TSNE(2, init='pca', random_state=0) defaults: perplexity 30, 1,000 iterations, "
                            "Barnes-Hut, learning_rate 'auto'",
    }


def tsne_sweep(x, args, device):
    from sklearn.manifold import trustworthiness

    rows = []
    for method in ("fft", "bh"):
        for ee, it in ((250, 500), (250, 250), (150, 350), (125, 250)):
            s, e = timed(lambda: embed_features(x, "tsne", seed=0, n_jobs=args.threads, device=device,
                                                negative_gradient_method=method, early_exaggeration_iter=ee,
                                                n_iter=it, trustworthiness=False))
            rows.append({"method": method, "early_exaggeration_iter": ee, "n_iter": it, "seconds": s,
                         "trustworthiness": trustworthiness(x, e.coords, n_neighbors=10)})
            print(f"  sweep {method:3s} {ee:3d}+{it:3d} iterations: {s:6.2f} s, trustworthiness "
                  f"{rows[-1]['trustworthiness']:.4f}", flush=True)
    return rows


def pca_figures(x, args, device):
    from sklearn.decomposition import PCA

    exact = pca(torch.from_numpy(x).to(device), 2, solver="exact").to_numpy()
    scale = np.abs(exact).max()

    def err(c):
        return float(np.abs(np.abs(c) - np.abs(exact)).max() / scale)

    def ours():
        r = pca(x, 2, device=device)  # from host memory: the transfer to the device is included
        return r.to_numpy()

    ours(), PCA(2, random_state=0).fit_transform(x[:500])  # warm-up (CUDA context, BLAS threads)
    ours_s, c = timed(ours, repeat=args.repeat)
    sk_s, s = timed(lambda: PCA(2, random_state=0).fit_transform(x), repeat=args.repeat)
    return {"shape": list(x.shape), "ours_seconds": ours_s, "sklearn_seconds": sk_s, "speedup": sk_s / ours_s,
            "ours_error_vs_exact": err(c), "sklearn_error_vs_exact": err(s)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch, BLAS, openTSNE, sklearn")
    parser.add_argument("--n", type=int, default=5000, help="points for t-SNE")
    parser.add_argument("--n-pca", type=int, default=10_000, help="rows for the PCA figure")
    parser.add_argument("--repeat", type=int, default=3, help="PCA timings: best of this many")
    parser.add_argument("--sweep", action="store_true", help="also time other t-SNE schedules")
    parser.add_argument("--pca-only", action="store_true", help="only the PCA figure (keeps the t-SNE figures "
                        "of an earlier run from the JSON)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    torch.set_num_threads(args.threads)
    results: dict = {"device": device, "threads": args.threads, "cpu": platform.processor() or platform.machine(),
                     "cpus_visible": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                     "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
                     "load_average_at_start": _load()}
    with threadpool_limits(args.threads):
        insp, source = teaching_inspector(device)
        results["model"] = source
        print(f"features: {source}", flush=True)
        path = args.out / f"embedding-{device.split(':')[0]}.json"
        # other work on the machine slows both sides alike but not always equally: keep the load beside each figure
        if args.pca_only and path.exists():
            earlier = json.loads(path.read_text())
            results.update({k: earlier[k] for k in ("tsne", "tsne_sweep") if k in earlier})
        else:
            x, labels = features(insp, args.n, "flatten", seed=0)
            results["tsne"] = {"load_average_before": _load(), **tsne_figures(x, labels, args, device)}
        xp, _ = features(insp, args.n_pca, "pool2", seed=1)
        results["pca"] = {"load_average_before": _load(), **pca_figures(xp, args, device)}
        if args.sweep and not args.pca_only:
            results["tsne_sweep"] = tsne_sweep(x, args, device)

    t, p = results["tsne"], results["pca"]
    gpu = ", " + results["gpu"] if results["gpu"] else ""
    tsne_label = "t-SNE %s x %d (s)" % (format(t["points"], ","), t["features"])
    pca_label = "PCA %s x %s (s)" % (format(p["shape"][0], ","), format(p["shape"][1], ","))
    print(f"\nembedding benchmark on {device} ({args.threads} CPU threads{gpu})")
    print(f"(1-minute load average before the t-SNE runs {t.get('load_average_before', float('nan')):.1f}, "
          f"before the PCA runs {p['load_average_before']:.1f}; other work on the machine slows both sides)")
    print(f"{'':40s}{'ours':>12s}{'scikit-learn':>14s}{'ratio':>9s}")
    print(f"{tsne_label:40s}{t['ours_seconds']:12.2f}{t['sklearn_seconds']:14.2f}{t['speedup']:8.1f}x")
    print(f"{'  process CPU time, all threads (s)':40s}{t['ours_cpu_seconds']:12.2f}{t['sklearn_cpu_seconds']:14.2f}"
          f"{t['cpu_time_ratio']:8.1f}x")
    print(f"{'  trustworthiness (10 neighbours)':40s}{t['ours_trustworthiness']:12.4f}"
          f"{t['sklearn_trustworthiness']:14.4f}   gap {t['trustworthiness_gap']:+.4f}")
    print(f"{'  first frame: the PCA start (s)':40s}{t['first_frame_seconds']:12.3f}")
    print(f"{'  first frame after gradient steps (s)':40s}{t['first_gradient_frame_seconds']:12.3f}")
    print(f"{pca_label:40s}{p['ours_seconds']:12.3f}{p['sklearn_seconds']:14.3f}{p['speedup']:8.1f}x")
    print(f"{'  max coordinate error vs exact':40s}{p['ours_error_vs_exact']:12.1e}{p['sklearn_error_vs_exact']:14.1e}")
    goals = {"tsne_2x_at_equal_trust": bool(t["speedup"] >= 2 and t["equal_trustworthiness"]),
             "first_frame_under_1s": bool(t["first_frame_seconds"] < 1.0),
             "first_gradient_frame_under_1s": bool(t["first_gradient_frame_seconds"] < 1.0),
             "pca_under_1s": bool(p["ours_seconds"] < 1.0)}
    results["goals"] = goals
    print("goals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in goals.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=float) + "\n")
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
