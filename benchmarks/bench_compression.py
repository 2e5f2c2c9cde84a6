"""Compression lab speed, side by side: 1-D k-means vs scikit-learn, slider -> accuracy, file load, codec MB/s, CSR.

Goals (issue 19): k-means of a 400K-weight layer into 32 clusters >= 5x faster than scikit-learn's ``KMeans`` at
equal or lower inertia; accuracy of 1,000 test images after a sparsity-slider move < 200 ms for every layer of
both LeNets and shapes-cnn's last two conv layers; loading the compressed LeNet-5 file into a ready model
< 100 ms; encode / decode throughput (MB/s of dense weights); batch-1 CSR vs dense product of the pruned fc
layers (reported, no goal; the paper's Fig. 9 saw about 3x on a CPU).

    python benchmarks/bench_compression.py [--threads 2] [--repeat 5] [--cpu-time]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import scipy.sparse
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from benchmarks._common import record, setup  # noqa: E402
from ipynetviz import zoo  # noqa: E402
from ipynetviz.methods import compression as C  # noqa: E402
from ipynetviz.methods.compression.kmeans import initial_centroids  # noqa: E402
from ipynetviz.methods.compression.prune import _keep_largest  # noqa: E402
from ipynetviz.zoo.compress import compressed_path  # noqa: E402


CLOCK = {"fn": time.perf_counter}


def timeit(fn, repeat: int = 3, warmup: int = 1) -> float:
    """Median time of ``fn()``: wall time, or process CPU time with ``--cpu-time`` (for a loaded machine)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = CLOCK["fn"]()
        fn()
        times.append(CLOCK["fn"]() - t)
    return float(np.median(times))


def bench_kmeans(repeat: int) -> dict:
    from sklearn.cluster import KMeans

    model, _ = zoo.load_teaching_model("lenet-5")
    w = model.fc1.weight.detach().numpy().ravel().astype(np.float64)  # 400,000 weights
    start = initial_centroids(np.sort(w), 32, "linear")
    ours = None

    def run_ours():
        nonlocal ours
        ours = C.kmeans_1d(w, 32, init="linear", max_iter=300)
    t_ours = timeit(run_ours, repeat=repeat)
    ref = None

    def run_ref():
        nonlocal ref
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = KMeans(32, init=start.reshape(-1, 1), n_init=1, max_iter=300).fit(w.reshape(-1, 1))
    t_ref = timeit(run_ref, repeat=max(1, repeat // 2), warmup=0)
    t0 = CLOCK["fn"]()
    pp = KMeans(32, n_init=1, random_state=0).fit(w.reshape(-1, 1))
    t_pp = CLOCK["fn"]() - t0
    fig = {"weights": len(w), "clusters": 32, "ours_s": t_ours, "ours_inertia": ours.inertia, "ours_iter": ours.n_iter,
           "sklearn_same_init_s": t_ref, "sklearn_same_init_inertia": float(ref.inertia_),
           "sklearn_kmeanspp_s": t_pp, "sklearn_kmeanspp_inertia": float(pp.inertia_),
           "speedup": t_ref / t_ours, "speedup_vs_kmeanspp": t_pp / t_ours}
    print(f"k-means 400K -> 32: ours {1e3 * t_ours:.1f} ms (inertia {ours.inertia:.5f}), scikit-learn same start "
          f"{1e3 * t_ref:.0f} ms ({ref.inertia_:.5f}) = {t_ref / t_ours:.1f}x; k-means++ {1e3 * t_pp:.0f} ms "
          f"({pp.inertia_:.5f}) = {t_pp / t_ours:.1f}x")
    return fig


def bench_slider(repeat: int) -> dict:
    out = {}
    cases = [("lenet-300-100", None), ("lenet-5", None), ("shapes-cnn", ["conv3", "conv4"])]
    for name, layers in cases:
        insp = zoo.load(name, device="cpu")
        if name == "shapes-cnn":
            x, y = zoo.shapes(1000, split="test")
        else:
            x, y = zoo.mnist("test")
        probe = C.AccuracyProbe(insp, x, y)
        modules = C.compressible_layers(insp.model)
        t_full = timeit(lambda: insp.forward(x), repeat=repeat)
        for layer in layers or list(modules):
            w = modules[layer].weight.detach()
            probe.accuracy({layer: w})  # the first move of this slider computes and keeps the input of the layer
            sparsities = iter(np.linspace(0.5, 0.95, 1000))

            def move():
                mask, _ = _keep_largest(w, float(next(sparsities)))
                return probe.accuracy({layer: w * mask})
            t = timeit(move, repeat=repeat)
            out[f"{name}/{layer}"] = {"ms": 1e3 * t, "full_forward_ms": 1e3 * t_full}
            print(f"slider {name}/{layer}: {1e3 * t:.1f} ms (a full forward of the 1,000 images: {1e3 * t_full:.1f} ms)")
    return out


def bench_file(repeat: int) -> dict:
    path = compressed_path("lenet-5")
    t_load = timeit(lambda: C.load_compressed(path, zoo.lenet_5()), repeat=repeat)
    model = zoo.lenet_5()
    C.load_compressed(path, model)
    dense_mb = 4 * sum(p.numel() for p in model.parameters()) / 1e6
    t_enc = timeit(lambda: C.to_bytes(C.encode(model)), repeat=repeat)
    data = path.read_bytes()
    t_dec = timeit(lambda: C.from_bytes(data).state_dict(), repeat=repeat)
    print(f"load compressed LeNet-5 ({len(data):,} bytes) into a ready model: {1e3 * t_load:.1f} ms; encode "
          f"{dense_mb / t_enc:.1f} MB/s, decode {dense_mb / t_dec:.1f} MB/s (of dense float32 weights)")
    return {"load_ms": 1e3 * t_load, "file_bytes": len(data), "encode_MB_s": dense_mb / t_enc,
            "decode_MB_s": dense_mb / t_dec, "encode_ms": 1e3 * t_enc, "decode_ms": 1e3 * t_dec}


def bench_csr(repeat: int) -> dict:
    out = {}
    for name, layers in (("lenet-300-100", ["fc1", "fc2", "fc3"]), ("lenet-5", ["fc1", "fc2"])):
        model = getattr(zoo, name.replace("-", "_"))()
        C.load_compressed(compressed_path(name), model)
        for layer in layers:
            w = model.get_submodule(layer).weight.detach().contiguous()
            csr = w.to_sparse_csr()
            x = torch.randn(w.shape[1])
            reps = 200
            t_dense = timeit(lambda: [torch.mv(w, x) for _ in range(reps)], repeat=repeat) / reps
            t_csr = timeit(lambda: [torch.mv(csr, x) for _ in range(reps)], repeat=repeat) / reps
            wn, xn = w.numpy(), x.numpy()
            sp = scipy.sparse.csr_matrix(wn)
            t_np = timeit(lambda: [wn @ xn for _ in range(reps)], repeat=repeat) / reps
            t_sp = timeit(lambda: [sp @ xn for _ in range(reps)], repeat=repeat) / reps
            out[f"{name}/{layer}"] = {"dense_us": 1e6 * t_dense, "csr_us": 1e6 * t_csr, "speedup": t_dense / t_csr,
                                      "numpy_dense_us": 1e6 * t_np, "scipy_csr_us": 1e6 * t_sp,
                                      "scipy_speedup": t_np / t_sp, "kept": float((w != 0).float().mean())}
            print(f"batch 1 {name}/{layer} ({100 * out[f'{name}/{layer}']['kept']:.0f}% kept): torch dense "
                  f"{1e6 * t_dense:.1f} us, CSR {1e6 * t_csr:.1f} us = {t_dense / t_csr:.2f}x; NumPy dense "
                  f"{1e6 * t_np:.1f} us, SciPy CSR {1e6 * t_sp:.1f} us = {t_np / t_sp:.2f}x")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cpu-time", action="store_true", help="time by process CPU time (use with --threads 1 on a "
                    "loaded machine: wall time there measures the other jobs)")
    args = ap.parse_args()
    setup(args.threads)
    if args.cpu_time:
        CLOCK["fn"] = time.process_time
    figures = {"kmeans": bench_kmeans(args.repeat), "slider": bench_slider(args.repeat),
               "file": bench_file(args.repeat), "csr": bench_csr(args.repeat)}
    figures["clock"] = "process CPU time" if args.cpu_time else "wall"
    print(f"wrote {record('compression', figures)}")


if __name__ == "__main__":
    main()
