"""Occlusion on resnet18 at 224x224: ours (incremental inference) vs Captum's Occlusion vs the forward-only floor.

Goal (issue 3): >= 3x faster than Captum at its best ``perturbations_per_eval``, at equal results, for
window 32 / stride 16 and window 16 / stride 8. The floor is the same number of occluded images through
``model(x)`` in batches (the occluded images built beforehand, outside the timing): what any method that runs
the whole network on every occluded image must pay. Also times our plain batched path (``incremental=False``).

    python benchmarks/bench_occlusion.py [--device cpu] [--threads 2] [--configs 32:16,16:8]
                                         [--ppe 16,32,64] [--batch-size 32] [--size 224] [--model resnet18]

``--model`` takes any torchvision classifier name (random weights). How much incremental inference can save
depends on the architecture: it is bounded by the layers whose whole map a window changes. In resnet18 every
map from layer3.1 on is changed by any 32-pixel window (35% of the multiply-adds), so exact incremental
inference cannot go below that; VGG's maps stay partly unchanged much deeper (vgg11: 14% left to compute).
Results are written to ``results/occlusion-<device>.json`` for resnet18 and ``occlusion-<model>-<device>.json``
otherwise.

Captum is swept over ``--ppe`` on every configuration (``--sweep first`` sweeps on the first one only and
reuses its best value). Every run is checked: our attribution against Captum's, incremental against plain.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from benchmarks._common import cuda_sync, record, setup  # noqa: E402
from ipynetviz.engine import Inspector, Preprocess  # noqa: E402
from ipynetviz.methods.attribution import occlusion  # noqa: E402
from ipynetviz.methods.attribution.occlusion import grid_positions  # noqa: E402
from ipynetviz.methods.attribution.incremental import _multiply_adds, build_runner, occlude  # noqa: E402


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def timed(fn, device, clock="wall"):
    """(seconds, result) of ``fn()``; the "cpu" clock counts this process's CPU time only, which a shared,
    busy machine disturbs far less than wall time (use it with --threads 1: no spinning worker threads)."""
    tick = CLOCKS[clock]
    cuda_sync(device)
    t = tick()
    out = fn()
    cuda_sync(device)
    return tick() - t, out


def all_boxes(size, window, stride):
    ys = grid_positions(size, window, stride)
    yy, xx = np.meshgrid(ys, ys, indexing="ij")
    return np.stack([yy.ravel(), np.minimum(yy.ravel() + window, size), xx.ravel(),
                     np.minimum(xx.ravel() + window, size)], 1)


@torch.no_grad()
def conv_work(model, x, window, stride, batch_size):
    """Fraction of the network's multiply-adds the incremental path still computes, over all windows."""
    runner = build_runner(model, x)
    if runner is None:
        return None
    mods = runner.modules
    full = sum(_multiply_adds(mods[n.target], runner.base[n]) for n in runner.nodes if n.op == "call_module")
    boxes = all_boxes(x.shape[-1], window, stride)
    a = runner.alignment
    boxes = boxes[np.lexsort((boxes[:, 2], boxes[:, 0], boxes[:, 2] % a, boxes[:, 0] % a))]
    done = 0.0
    for i in range(0, len(boxes), batch_size):
        chunk = boxes[i:i + batch_size]
        runner.trace_work = []
        with torch.no_grad():
            runner.run(chunk, x, torch.zeros_like(x))
        done += sum(runner.trace_work)
    return done / (full * len(boxes))


@torch.no_grad()
def time_split(model, x, window, stride, batch_size, clock="cpu"):
    """CPU seconds the incremental path spends in layers it computes on rectangles vs on whole maps.

    The whole-map part is what exact incremental inference cannot avoid: it bounds the speed-up from above.
    """
    from ipynetviz.methods.attribution.incremental import Delta
    runner = build_runner(model, x)
    if runner is None:
        return None
    boxes = all_boxes(x.shape[-1], window, stride)
    a = runner.alignment
    boxes = boxes[np.lexsort((boxes[:, 2], boxes[:, 0], boxes[:, 2] % a, boxes[:, 0] % a))]
    split = {"rectangles_s": 0.0, "whole_maps_s": 0.0}
    tick, inner = CLOCKS[clock], runner._node

    def node(n, env):
        t = tick()
        out = inner(n, env)
        split["rectangles_s" if isinstance(out, Delta) else "whole_maps_s"] += tick() - t
        return out
    runner._node = node
    for i in range(0, len(boxes), batch_size):
        runner.run(boxes[i:i + batch_size], x, torch.zeros_like(x))
    return split


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--model", default="resnet18", help="a torchvision classifier, random weights")
    ap.add_argument("--configs", default="32:16,16:8", help="window:stride pairs")
    ap.add_argument("--ppe", default="16,32,64", help="Captum perturbations_per_eval values to sweep")
    ap.add_argument("--sweep", choices=["each", "first"], default="each")
    ap.add_argument("--batch-size", type=int, default=64, help="the floor and our plain path")
    ap.add_argument("--no-plain", action="store_true", help="skip our plain batched path")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved repetitions; the minimum is kept")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    args = ap.parse_args()
    setup(args.threads)
    device = torch.device(args.device)

    import torchvision
    from captum.attr import Occlusion
    from ipynetviz import zoo

    torch.manual_seed(0)
    model = getattr(torchvision.models, args.model)(weights=None).eval().to(device)
    photo, _ = zoo.photos(size=args.size)
    pre = Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    insp = Inspector(model, transform=pre, device=device, input_size=(3, args.size, args.size))
    x = insp.prepare(photo[:1])
    with torch.no_grad():
        target = int(model(x).argmax())
    print(f"{args.model} (random weights) on {device}, {torch.get_num_threads()} threads, image {args.size}x{args.size}, "
          f"target class {target}; {args.clock} clock, best of {args.rounds} interleaved round(s)", flush=True)
    figures = {"model": f"{args.model} weights=None", "size": args.size, "batch_size": args.batch_size,
               "clock": args.clock, "rounds": args.rounds, "configs": []}
    best_ppe = None
    for cfg in args.configs.split(","):
        window, stride = (int(v) for v in cfg.split(":"))
        boxes = all_boxes(args.size, window, stride)
        n = len(boxes)
        row = {"window": window, "stride": stride, "occluded_images": n}
        with torch.no_grad():
            batches = [occlude(x, torch.zeros_like(x), boxes[i:i + args.batch_size])
                       for i in range(0, n, args.batch_size)]
        sweep = [int(p) for p in args.ppe.split(",")] if best_ppe is None or args.sweep == "each" else [best_ppe]

        def ours(incremental=True):
            insp.clear_cache()
            return occlusion(insp, x, target=target, window=window, stride=stride, incremental=incremental,
                             batch_size=None if incremental else args.batch_size)

        def floor():
            with torch.no_grad():
                return [model(b) for b in batches]

        def captum(ppe):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return Occlusion(model).attribute(
                    x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride), baselines=0.0,
                    target=target, perturbations_per_eval=ppe)
        contenders = {"ours": ours, "floor": floor}
        if not args.no_plain:
            contenders["plain"] = lambda: ours(False)
        for ppe in sweep:
            contenders[f"captum{ppe}"] = (lambda p: (lambda: captum(p)))(ppe)
        best, outputs = {}, {}
        for _ in range(args.rounds):  # interleaved, so a busier moment of the machine hits every contender
            for name, fn in contenders.items():
                t, out = timed(fn, device, args.clock)
                best[name] = min(best.get(name, float("inf")), t)
                outputs.setdefault(name, out)
        del batches
        ours_result = outputs["ours"]
        t_ours, t_floor = best["ours"], best["floor"]
        row["ours_s"] = t_ours
        row["incremental_used"] = ours_result.incremental
        row["floor_s"] = t_floor
        if "plain" in best:
            row["ours_plain_s"] = best["plain"]
            row["incremental_vs_plain_max_abs_score_diff"] = float(
                (ours_result.scores - outputs["plain"].scores).abs().max())
        captum_times = {ppe: best[f"captum{ppe}"] for ppe in sweep}
        for ppe, t in captum_times.items():
            print(f"  captum ppe={ppe:3d}: {t:8.2f} s", flush=True)
        best_ppe = min(captum_times, key=captum_times.get)
        ref = outputs[f"captum{best_ppe}"]
        ours = ours_result
        row["captum_s_by_ppe"] = captum_times
        row["captum_best_ppe"] = best_ppe
        row["captum_s"] = captum_times[best_ppe]
        row["max_abs_diff_vs_captum"] = float(np.abs(ours.attribution() - ref[:, 0].cpu().numpy()).max())
        row["speedup_vs_captum"] = row["captum_s"] / t_ours
        row["ratio_to_floor"] = t_ours / t_floor
        if x.device.type == "cpu":
            row["conv_work_fraction"] = conv_work(model, x, window, stride, args.batch_size)
            split = time_split(model, x, window, stride, args.batch_size, args.clock)
            if split:
                row.update(split)
                row["ceiling_vs_captum"] = row["captum_s"] / split["whole_maps_s"]
        figures["configs"].append(row)
        print(f"window {window} stride {stride}: {n} occluded images")
        print(f"  {'ours (incremental)':24s}{t_ours:8.2f} s")
        if "ours_plain_s" in row:
            print(f"  {'ours (plain batches)':24s}{row['ours_plain_s']:8.2f} s   "
                  f"incremental vs plain max |score diff| {row['incremental_vs_plain_max_abs_score_diff']:.2e}")
        print(f"  {'captum best (ppe=%d)' % best_ppe:24s}{row['captum_s']:8.2f} s   "
              f"max |attribution diff| vs ours {row['max_abs_diff_vs_captum']:.2e}")
        print(f"  {'forward-only floor':24s}{t_floor:8.2f} s")
        print(f"  speed-up vs Captum {row['speedup_vs_captum']:.2f}x   ours / floor {row['ratio_to_floor']:.2f}"
              + (f"   multiply-adds still computed: {row['conv_work_fraction']:.0%}"
                 if row.get("conv_work_fraction") else ""), flush=True)
        if "whole_maps_s" in row:
            print(f"  of which layers on rectangles {row['rectangles_s']:.2f} s, on whole maps "
                  f"{row['whole_maps_s']:.2f} s: even with free rectangles, at most "
                  f"{row['ceiling_vs_captum']:.1f}x Captum", flush=True)
    name = "occlusion" if args.model == "resnet18" else f"occlusion-{args.model}"
    out = record(name, figures, str(device))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
