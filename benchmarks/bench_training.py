"""Training throughput with the Training lab attached vs a plain PyTorch loop; Start -> first point of the curve.

Goals (issue 14): training with the lab's recording (per-layer norms, update ratios and histograms every 20 steps,
test loss and accuracy every epoch) and its live views (curves, conv1 filters, feature maps, bars) at least 0.9x
the speed of a plain PyTorch loop on the same model and data; the first point of the loss curve drawn less than
1 s after Start on 2 CPU cores.

The plain loop is what one would write by hand: the same model built from the same seed, the same data order
(``torch.randperm`` from a seeded generator), per-batch normalisation of the uint8 images, Adam,
``zero_grad / backward / step``, and one ``loss.item()`` per step. Outside a Jupyter kernel the widgets have no
front end, so the drawing cost measured here is the Python side (pictures, PNG encoding, trait updates), which is
what the training thread pays in a notebook too.

    python benchmarks/bench_training.py [--model shapes-cnn] [--n-train 1000] [--epochs 2] [--threads 2] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

import torch
from torch import nn

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from benchmarks._common import record, setup  # noqa: E402
from ipynetviz.methods import training as T  # noqa: E402


def plain_loop(model_name: str, x, y, epochs: int, batch_size: int, seed: int, device) -> tuple[float, int]:
    """The hand-written loop; returns (seconds of its loop, steps)."""
    mean, std = T.channel_stats(x)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    torch.manual_seed(seed)
    model = T.build(model_name).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(10_000 + seed)
    m = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=device).view(1, -1, 1, 1)
    model.train()
    steps = 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen).to(device)
        for start in range(0, len(xt), batch_size):
            idx = perm[start:start + batch_size]
            loss = nn.functional.cross_entropy(model((xt[idx].float() / 255 - m) / s), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()
            steps += 1
    return time.perf_counter() - t0, steps


def bare_loop(model_name: str, x, y, args, device) -> tuple[float, int]:
    """The shared loop alone: no test set, no records, no views."""
    run = T.train(model_name, (x, y), epochs=args.epochs, batch_size=args.batch_size, optimizer="adam", lr=1e-3,
                  seed=0, device=device, background=False)
    return run.elapsed, run.step


def lab_loop(model_name: str, args) -> tuple[float, int, int]:
    from ipynetviz.widgets.training_lab import TrainingLab
    lab = TrainingLab(model_name, epochs=args.epochs, n_train=args.n_train, n_test=args.n_test,
                      batch_size=args.batch_size, optimizer="adam", lr=1e-3, background=False)
    run = lab.start()
    return run.elapsed, run.step, lab.draws


def first_point(model_name: str, args) -> dict:
    """Seconds from Start to the first curve point: Start at once on a new lab (the data set still being drawn),
    Start on a lab shown a moment earlier (its data set drawn in the background meanwhile), a second Start;
    and ``build_s``: how long building the first lab took (it imports what torch's first optimiser imports).

    Run it in a fresh process (as ``main`` does, before anything else trains) for the first-lab figures."""
    from ipynetviz.widgets.training_lab import TrainingLab
    out = {}
    for case in ("at_once", "prefetched", "second"):
        if case != "second":
            T.resolve._zoo_data.cache_clear()
            t0 = time.perf_counter()
            lab = TrainingLab(model_name, epochs=50, n_train=args.n_train, n_test=args.n_test,
                              batch_size=args.batch_size, compare=True)
            out.setdefault("build_s", time.perf_counter() - t0)
            if case == "prefetched":
                lab._prefetch_thread.join()
        t0 = time.perf_counter()
        lab.start()
        while lab.points == 0 and not lab.run.done:
            time.sleep(0.002)
        out[case] = time.perf_counter() - t0
        lab.stop()
        lab.wait(60)
        lab.points = 0
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="shapes-cnn", choices=["shapes-cnn", "digits-cnn"])
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--first-point-only", action="store_true",
                    help="only the Start -> first point figures, printed as JSON (main runs this in a fresh process)")
    args = ap.parse_args()
    setup(args.threads)
    if args.first_point_only:
        print(json.dumps(first_point(args.model, args)))
        return
    # first: a fresh process, where the first lab pays the one-off imports (data, torch's optimiser machinery)
    fresh = subprocess.run([sys.executable, __file__, "--first-point-only", "--model", args.model,
                            "--n-train", str(args.n_train), "--n-test", str(args.n_test),
                            "--batch-size", str(args.batch_size), "--threads", str(args.threads)],
                           capture_output=True, text=True, check=True)
    first = json.loads(fresh.stdout.strip().splitlines()[-1])
    device = T.resolve_device(args.device)
    dataset = "shapes" if args.model == "shapes-cnn" else "digits"
    (x, y), _ = T.zoo_data(dataset, args.n_train, args.n_test)
    print(f"{args.model} on {len(x)} {dataset} images, batch {args.batch_size}, {args.epochs} epochs, "
          f"{torch.get_num_threads()} threads, {device}")
    # Wall time and CPU time (of the whole process: every thread, drawing included) of each variant, interleaved,
    # best of N. On a machine shared with other jobs the wall time mostly measures the others; CPU time does not.
    variants = {"plain": lambda: plain_loop(args.model, x, y, args.epochs, args.batch_size, 0, device)[1],
                "loop": lambda: bare_loop(args.model, x, y, args, device)[1],
                "lab": lambda: lab_loop(args.model, args)}
    wall = {k: math.inf for k in variants}
    cpu = {k: math.inf for k in variants}
    steps, draws = {}, 0
    for _ in range(args.repeat):
        for k, fn in variants.items():
            t0, c0 = time.perf_counter(), time.process_time()
            out = fn()
            wall[k] = min(wall[k], time.perf_counter() - t0)
            cpu[k] = min(cpu[k], time.process_time() - c0)
            if k == "lab":
                steps[k], draws = out[1], out[2]
            else:
                steps[k] = out
    ratio_wall = {k: (steps[k] / wall[k]) / (steps["plain"] / wall["plain"]) for k in variants}
    ratio_cpu = {k: (steps[k] / cpu[k]) / (steps["plain"] / cpu["plain"]) for k in variants}
    for k in variants:
        print(f"  {k:6s} wall {wall[k]:6.2f} s ({ratio_wall[k]:.3f}x plain)   CPU {cpu[k]:6.2f} s "
              f"({ratio_cpu[k]:.3f}x plain)   {steps[k]} steps")
    print(f"  the lab drew {draws} times; the times include each variant's setup (data to tensors, model, views)")
    print(f"  Start -> first curve point (fresh process): {first['at_once']:.3f} s (Start at once on the first lab, "
          f"built in {first['build_s']:.2f} s), {first['prefetched']:.3f} s (lab shown, data drawn meanwhile), "
          f"{first['second']:.3f} s (second Start)")
    out = record("bench_training", {
        "model": args.model, "n_train": args.n_train, "epochs": args.epochs, "batch_size": args.batch_size,
        "wall_s": wall, "cpu_s": cpu, "steps": steps, "ratio_wall": ratio_wall, "ratio_cpu": ratio_cpu,
        "draws": draws, "first_point_s": first,
        "load_average": list(__import__("os").getloadavg())}, device=str(device))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
