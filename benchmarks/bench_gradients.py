"""Gradient methods vs one forward + backward pass of the model (and Captum's versions side by side).

Goal (issue 3): each of gradient, saliency, guided backprop and deconvnet within 1.3x of one plain
forward + backward (``torch.autograd.grad(model(x)[:, k].sum(), x)``) on the same batch. Our times include
everything a caller waits for: input checks, the eval guard, the ReLU override, and building the result.

    python benchmarks/bench_gradients.py [--device cpu] [--threads 2] [--repeat 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from benchmarks._common import cuda_sync, record, setup  # noqa: E402
from ipynetviz.engine import Inspector  # noqa: E402
from ipynetviz.methods.attribution import deconvnet, gradient, guided_backprop, saliency  # noqa: E402

OURS = {"gradient": gradient, "saliency": saliency, "guided_backprop": guided_backprop, "deconvnet": deconvnet}


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def timeit(fn, repeat: int, sync, clock: str) -> float:
    """Median time of ``fn()`` after one warm-up; the "cpu" clock counts this process's CPU time only (steadier
    on a shared, busy machine; use it with --threads 1)."""
    tick = CLOCKS[clock]
    fn()
    times = []
    for _ in range(repeat):
        sync()
        t = tick()
        fn()
        sync()
        times.append(tick() - t)
    return statistics.median(times)


def cases(device, big: bool):
    import torchvision
    from ipynetviz import zoo
    torch.manual_seed(0)
    n = 32 if big else 8
    yield "resnet18 224x224", torchvision.models.resnet18(weights=None), (n, 3, 224, 224)
    yield "vgg11 224x224", torchvision.models.vgg11(weights=None), (n // 2, 3, 224, 224)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = zoo.load("shapes-cnn", device="cpu").model
        name = "shapes-cnn (trained) 64x64"
    except Exception:
        model, name = zoo.shapes_cnn(), "shapes-cnn (random) 64x64"
    yield name, model, (256 if big else 64, 3, 64, 64)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    args = ap.parse_args()
    setup(args.threads)
    device = torch.device(args.device)
    sync = (lambda: cuda_sync(device))
    from captum.attr import Deconvolution, GuidedBackprop, Saliency
    captum = {"saliency": Saliency, "guided_backprop": GuidedBackprop, "deconvnet": Deconvolution}
    figures = {"clock": args.clock, "repeat": args.repeat, "cases": []}
    for name, model, shape in cases(device, device.type == "cuda"):
        model = model.eval().to(device)
        insp = Inspector(model, device=device, input_size=shape[1:])
        x = torch.randn(shape, device=device)
        k = 3

        def forward_backward():
            xr = x.clone().requires_grad_(True)
            torch.autograd.grad(model(xr)[:, k].sum(), xr)
        t_ref = timeit(forward_backward, args.repeat, sync, args.clock)
        row = {"case": name, "batch": shape[0], "forward_backward_s": t_ref, "ours_s": {}, "ratio": {},
               "captum_s": {}}
        print(f"{name}, batch {shape[0]} on {device}: forward+backward {t_ref * 1000:8.1f} ms")
        for method, fn in OURS.items():
            def ours():
                insp.clear_cache()
                fn(insp, x, k)
            t = timeit(ours, args.repeat, sync, args.clock)
            row["ours_s"][method] = t
            row["ratio"][method] = t / t_ref
            line = f"  {method:16s} ours {t * 1000:8.1f} ms  ({t / t_ref:4.2f}x forward+backward)"
            if method in captum:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    peer = captum[method](model)
                    tc = timeit(lambda: peer.attribute(x.clone().requires_grad_(True), target=k),
                                args.repeat, sync, args.clock)
                row["captum_s"][method] = tc
                line += f"   captum {tc * 1000:8.1f} ms"
            print(line, flush=True)
        figures["cases"].append(row)
    out = record("gradients", figures, str(device))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
