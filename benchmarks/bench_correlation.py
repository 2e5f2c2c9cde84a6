"""Streamed unit-by-unit correlation on the device vs NumPy ``corrcoef`` on materialised activations.

Goal (issue 6): correlation between two 256-channel conv layers over 10,000 images, every spatial position a
sample, >= 5x faster than NumPy's corrcoef on the materialised activations, at O(C^2) memory.

Synthetic activations of a realistic size: two ReLU layers of 256 channels at 13x13 (AlexNet's conv5 size),
driven by shared latent maps so that the units are correlated, with ~10% dead units in each. Both sides see
the same float32 values: batches are generated on the device; the NumPy side copies them to host memory
first (that copy is not timed). The streamed time counts only the accumulator's work on batches that are
already on the device (in real use they come from the network's forward pass, which both sides need).
Peak memory: CUDA allocator peak beyond the batch (GPU), or the process RSS high-water mark during
streaming (CPU); NumPy's peak is measured with tracemalloc during corrcoef, plus the materialised input.

    python benchmarks/bench_correlation.py [--n-images 10000] [--size 13] [--device cuda] [--threads 16]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
import warnings

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from benchmarks._common import cuda_sync, record, setup  # noqa: E402
from ipynetviz.methods.correspondence import StreamingCorrelation  # noqa: E402
from ipynetviz.methods.correspondence._inputs import flatten_positions  # noqa: E402

GIB = 1024 ** 3


def make_batch(index: int, batch: int, channels: int, size: int, device: torch.device, latent: int = 32):
    """Two correlated ReLU conv layers (batch, channels, size, size), float32, ~10% dead channels each."""
    g = torch.Generator(device=device).manual_seed(1000 + index)
    shared = torch.Generator(device=device).manual_seed(7)  # the same mixing weights for every batch
    mix_a = torch.randn(channels, latent, generator=shared, device=device)
    mix_b = torch.randn(channels, latent, generator=shared, device=device)
    alive_a = (torch.rand(channels, generator=shared, device=device) > 0.1).float()
    alive_b = (torch.rand(channels, generator=shared, device=device) > 0.1).float()
    z = torch.randn(batch, latent, size, size, generator=g, device=device)
    a = torch.einsum("cl,nlhw->nchw", mix_a, z) + torch.randn(batch, channels, size, size, generator=g,
                                                               device=device) * 2
    b = torch.einsum("cl,nlhw->nchw", mix_b, z) + torch.randn(batch, channels, size, size, generator=g,
                                                               device=device) * 2
    return (torch.relu(a) * alive_a[:, None, None]), (torch.relu(b) * alive_b[:, None, None])


def rss_peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def streamed(args, device):
    """Accumulate over all batches; returns (seconds, peak bytes, result)."""
    batches = range(0, args.n_images, args.batch_size)
    warm = StreamingCorrelation()  # first-call costs (cuBLAS handles, kernels) are not the method's
    warm.update(*make_batch(0, 8, args.channels, args.size, device))
    warm.result()
    acc = StreamingCorrelation()
    seconds, peak_extra = 0.0, 0
    rss_before = rss_peak_bytes()
    for k, start in enumerate(batches):
        n = min(args.batch_size, args.n_images - start)
        a, b = make_batch(k, n, args.channels, args.size, device)
        cuda_sync(device)
        if device.type == "cuda":
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
        t = time.perf_counter()
        acc.update(a, b)
        cuda_sync(device)
        seconds += time.perf_counter() - t
        if device.type == "cuda":
            peak_extra = max(peak_extra, torch.cuda.max_memory_allocated(device) - base)
        del a, b
    t = time.perf_counter()
    res = acc.result()
    seconds += time.perf_counter() - t
    state = sum(x.numel() * x.element_size() for x in (acc.m2_ab, acc.m2_a, acc.m2_b, acc.mean_a, acc.mean_b))
    peak = peak_extra if device.type == "cuda" else max(0, rss_peak_bytes() - rss_before)
    return seconds, peak, state, res


def numpy_side(args, device):
    """Materialise both layers as (N*H*W, C) float32 in host memory, then time np.corrcoef."""
    rows = args.n_images * args.size * args.size
    a_all = np.empty((rows, args.channels), np.float32)
    b_all = np.empty((rows, args.channels), np.float32)
    r = 0
    for k, start in enumerate(range(0, args.n_images, args.batch_size)):
        n = min(args.batch_size, args.n_images - start)
        a, b = make_batch(k, n, args.channels, args.size, device)
        fa, fb = flatten_positions(a).cpu().numpy(), flatten_positions(b).cpu().numpy()
        a_all[r:r + len(fa)], b_all[r:r + len(fb)] = fa, fb
        r += len(fa)
    tracemalloc.start()
    t = time.perf_counter()
    with warnings.catch_warnings(), threadpool_limits(args.threads):
        warnings.simplefilter("ignore", RuntimeWarning)  # dead units: NumPy divides by zero -> NaN
        full = np.corrcoef(a_all, b_all, rowvar=False)
    seconds = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak, a_all.nbytes + b_all.nbytes, full[: args.channels, args.channels:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-images", type=int, default=10_000)
    ap.add_argument("--channels", type=int, default=256)
    ap.add_argument("--size", type=int, default=13, help="spatial size H = W of both maps")
    ap.add_argument("--batch-size", type=int, default=250, help="images per streamed batch")
    ap.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for torch and NumPy's BLAS")
    args = ap.parse_args()
    setup(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    rows = args.n_images * args.size * args.size
    print(f"two layers of {args.channels} channels at {args.size}x{args.size}, {args.n_images:,} images -> "
          f"{rows:,} samples (positions) per unit; device {device}, {args.threads} CPU threads")

    t_s, mem_s, state, res = streamed(args, device)
    t_n, mem_n, input_bytes, ref = numpy_side(args, device)
    live = np.ix_(~res.dead_a, ~res.dead_b)
    diff = float(np.max(np.abs(res.corr[live] - ref[live])))
    ratio = t_n / t_s
    where = "CUDA allocator peak beyond the batch" if device.type == "cuda" else "process RSS rise"
    print(f"{'':32s}{'seconds':>10s}{'peak memory':>16s}")
    print(f"{'streamed on ' + str(device):32s}{t_s:10.3f}{mem_s / GIB:13.3f} GiB  ({where}; "
          f"accumulator state {state / 2**20:.2f} MiB)")
    print(f"{'NumPy corrcoef (materialised)':32s}{t_n:10.3f}{mem_n / GIB:13.3f} GiB  (tracemalloc peak in "
          f"corrcoef, plus {input_bytes / GIB:.2f} GiB of materialised float32 activations)")
    print(f"speed ratio NumPy / streamed: {ratio:.1f}x (goal >= 5x); max |difference| on live units "
          f"{diff:.2e}; dead units {int(res.dead_a.sum())} in A, {int(res.dead_b.sum())} in B")
    out = record("correlation", {
        "n_images": args.n_images, "channels": args.channels, "spatial": [args.size, args.size],
        "samples": rows, "batch_size": args.batch_size, "threads": args.threads,
        "streamed_seconds": t_s, "numpy_seconds": t_n, "ratio": ratio,
        "streamed_peak_bytes": mem_s, "streamed_peak_kind": where, "accumulator_state_bytes": state,
        "numpy_peak_bytes": mem_n, "numpy_input_bytes": input_bytes, "max_abs_difference": diff,
        "dead_a": int(res.dead_a.sum()), "dead_b": int(res.dead_b.sum()),
    }, device=str(device))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
