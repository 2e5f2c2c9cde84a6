"""Picture optimisation: 16 units as one batch vs 16 runs, and one step vs one forward + backward pass.

Goals (issue 7): optimising 16 units of a layer as one batch at least 8x faster than 16 sequential runs on
CPU; one optimisation step of ``visualize`` within 1.3x of one plain forward + backward pass
(``torch.autograd.grad(model(x)[:, k].sum(), x)`` with frozen parameters) on the same batch. Our step
includes everything: the objective, Adam, regularizers (none here), clamping and the per-step history.

On CPU a step of a small CNN is compute-bound already at batch 1 (measured 2026-11, 1 thread, shapes-cnn
up to conv3: 16 runs 1.81 s vs one batch 1.04 s, 1.7x), so the 8x goal is out of reach there: batching
removes only the per-step Python and kernel-launch overhead, which dominates on a GPU, not on a CPU.

    python benchmarks/bench_optimize.py [--device cpu] [--threads 2] [--steps 20] [--repeat 3]
"""
from __future__ import annotations

import argparse
import sys
import warnings

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from benchmarks._common import cuda_sync, record, setup  # noqa: E402
from ipynetviz.engine import Class, Unit  # noqa: E402
from ipynetviz.methods.optimize import visualize  # noqa: E402


def timeit(fn, repeat: int, sync) -> float:
    """Best of ``repeat`` wall times (after one warm-up): on a shared machine the minimum is the least noisy."""
    import time
    fn()
    best = float("inf")
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def load(device):
    from ipynetviz import zoo
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return zoo.load("shapes-cnn", device=device)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--layer", default="conv3")
    args = ap.parse_args()
    setup(args.threads)
    device = torch.device(args.device)
    sync = (lambda: cuda_sync(device))
    insp = load(device)
    steps, units = args.steps, [Unit(args.layer, c) for c in range(16)]
    plain = {"param": "pixels", "regularizers": None}  # the issue-7 figures: pixel ascent, no regularizer

    batch = timeit(lambda: visualize(insp, units, steps=steps, **plain), repeat=args.repeat, sync=sync)
    sequential = timeit(lambda: [visualize(insp, u, steps=steps, **plain) for u in units], repeat=args.repeat, sync=sync)
    figures = {"steps": steps, "layer": args.layer, "batch_of_16_s": batch, "sequential_16_s": sequential,
               "batch_speedup": sequential / batch, "step_vs_forward_backward": []}
    print(f"16 units of {args.layer}, {steps} steps ({insp.device}, {torch.get_num_threads()} threads)")
    print(f"  one batch {batch * 1e3:9.1f} ms   16 runs {sequential * 1e3:9.1f} ms   "
          f"speed-up {sequential / batch:5.2f}x (goal >= 8x)")

    model = insp.model
    print("one visualize step vs one forward + backward (class logit, full network)")
    for n in (1, 16, 64):
        x = torch.zeros((n,) + tuple(insp.input_size), device=device)

        def forward_backward():
            with insp.eval_guard():
                xx = x.clone().requires_grad_(True)
                torch.autograd.grad(model(xx)[:, 3].sum(), xx)
        peer = timeit(forward_backward, repeat=args.repeat * 5, sync=sync)
        long = timeit(lambda: visualize(insp, Class(3), steps=2 * steps, batch=n, **plain), repeat=args.repeat, sync=sync)
        short = timeit(lambda: visualize(insp, Class(3), steps=steps, batch=n, **plain), repeat=args.repeat, sync=sync)
        per_step = (long - short) / steps  # setup (binding, init, result) cancels out
        whole = long / (2 * steps)           # including setup, spread over the steps
        row = {"batch": n, "forward_backward_ms": peer * 1e3, "step_ms": per_step * 1e3,
               "step_with_setup_ms": whole * 1e3, "ratio": per_step / peer, "ratio_with_setup": whole / peer}
        figures["step_vs_forward_backward"].append(row)
        print(f"  batch {n:3d}: forward+backward {peer * 1e3:8.2f} ms   step {per_step * 1e3:8.2f} ms "
              f"(with setup {whole * 1e3:8.2f} ms)   ratio {per_step / peer:5.2f}x "
              f"({whole / peer:5.2f}x) (goal <= 1.3x)")
    out = record("optimize", figures, str(device))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
