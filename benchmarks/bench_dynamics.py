"""Learning dynamics: the cost of one more checkpoint against one forward pass plus the CCA solves; full settings.

Goal (issue 15): one checkpoint's similarity for all layers over 1,000 probe images within 1.5x of one forward pass
over those images (capturing the layers) plus the CCA solves. The cost of a checkpoint is the median time
between two of ``learning_dynamics``'s per-checkpoint callbacks over five checkpoints (forward pass, moments and
solves of one checkpoint), diagonal only (``grid=False``) and with the layer x layer grid. The reference is a plain
PyTorch forward pass with hooks on the same layers plus ``svcca`` solved from ready moments for every layer.

``--full`` also runs the notebooks' full settings and records their measured times: learning dynamics of
digits-cnn over 10 epochs and 11 checkpoints (probe: the 450 test digits), freeze training at 30-75% of 10 epochs
beside the unfrozen run, and the transfer experiment with n = 1..4, seeds (0, 1), 5 epochs (36 networks).

    python benchmarks/bench_dynamics.py [--model shapes-cnn] [--n 1000] [--threads 2] [--repeat 3] [--full]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from benchmarks._common import record, setup, timeit  # noqa: E402
from ipynetviz.methods.correspondence import StreamingMoments  # noqa: E402
from ipynetviz.methods.dynamics import default_layers, learning_dynamics  # noqa: E402
from ipynetviz.methods.dynamics.learning import similarity_from_moments  # noqa: E402
from ipynetviz.methods.training import build, zoo_data  # noqa: E402


def speed(model_name: str, n: int, repeat: int, method: str) -> dict:
    torch.manual_seed(0)
    nets = [build(model_name) for _ in range(5)]
    for net in nets:
        net.eval()
    data = "shapes" if model_name == "shapes-cnn" else "digits"
    (x, _), (xt, _) = zoo_data(data, n_train=100, n_test=max(n, 500)) if data == "shapes" else zoo_data(data)
    probe = np.concatenate([xt, x])[:n]
    xf = torch.from_numpy(probe).float() / 255.0
    layers = default_layers(nets[0])

    def forward_and_solves():
        acts = {}
        hooks = [dict(nets[0].named_modules())[name].register_forward_hook(
            lambda m, i, o, name=name: acts.setdefault(name, []).append(o.detach())) for name in layers]
        with torch.no_grad():
            for s in range(0, n, 250):
                nets[0](xf[s:s + 250])
        for h in hooks:
            h.remove()
        return acts

    acts = forward_and_solves()
    moments = {}
    for name in layers:
        acc = StreamingMoments()
        for a in acts[name]:
            acc.update(a, a + 0.01 * torch.randn_like(a))
        moments[name] = acc
    t_forward = timeit(forward_and_solves, repeat=repeat)
    t_solves = timeit(lambda: [similarity_from_moments(m, method) for m in moments.values()], repeat=repeat)
    out = {"model": model_name, "probe_images": n, "layers": layers, "method": method,
           "forward_s": t_forward, "solves_s": t_solves}
    for grid in (False, True):
        per_checkpoint = []
        for _ in range(repeat):
            stamps = []
            learning_dynamics(nets, xf, layers, method, grid=grid,
                              callback=lambda r: stamps.append(time.perf_counter()))
            per_checkpoint += list(np.diff(stamps[:-1]))  # callbacks after each checkpoint (the last is the end)
        key = "grid" if grid else "diagonal"
        out[f"checkpoint_{key}_s"] = float(np.median(per_checkpoint))
        out[f"ratio_{key}"] = out[f"checkpoint_{key}_s"] / (t_forward + t_solves)
    return out


def full() -> dict:
    from ipynetviz.methods.dynamics import freeze_training, transfer_experiment
    from ipynetviz.methods.training import train
    (_, _), (xt, _) = zoo_data("digits")
    out = {}
    t = time.time()
    run = train("digits-cnn", "digits", epochs=10, batch_size=64, optimizer="adam", lr=2e-3,
                checkpoints=np.linspace(0, 1, 11).tolist(), device="cpu", seed=0, background=False)
    t_train = time.time() - t
    t = time.time()
    r = learning_dynamics(run, xt, method="svcca")
    out["dynamics"] = {"train_s": t_train, "dynamics_s": time.time() - t, "steps": r.steps.tolist(),
                       "layers": list(r.layers), "similarity": r.similarity.round(4).tolist(),
                       "first_step_0.9": r.convergence_step(0.9), "first_step_0.95": r.convergence_step(0.95)}
    t = time.time()
    f = freeze_training("digits-cnn", "digits", epochs=10, batch_size=64, optimizer="adam", lr=2e-3,
                        device="cpu", seed=0, fractions=[0.3, 0.45, 0.6, 0.75])
    out["freeze"] = dict(f.summary(), wall_s=time.time() - t)
    t = time.time()
    tr = transfer_experiment("digits", n_layers=(1, 2, 3, 4), seeds=(0, 1), epochs=5)
    out["transfer"] = {"wall_s": time.time() - t, "table": tr.table(), "text": str(tr)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="shapes-cnn")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--method", default="svcca")
    p.add_argument("--full", action="store_true")
    args = p.parse_args()
    setup(args.threads)
    figures = speed(args.model, args.n, args.repeat, args.method)
    print(f"{args.model}, {args.n} probe images, {len(figures['layers'])} layers ({args.method}):")
    print(f"  forward pass {figures['forward_s']:.2f} s + CCA solves {figures['solves_s']:.2f} s")
    for key in ("diagonal", "grid"):
        print(f"  one more checkpoint ({key}): {figures[f'checkpoint_{key}_s']:.2f} s = "
              f"{figures[f'ratio_{key}']:.2f}x (goal <= 1.5x for the diagonal)")
    if args.full:
        figures["full"] = full()
        print(figures["full"])
    print("recorded in", record("dynamics", figures))


if __name__ == "__main__":
    main()
